"""Liveness, dependency status, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from dispatch.core.messages import Json
from eventstore.postgres import UNAVAILABLE
from gateway.http import json_response
from gateway.services import SERVICES

CHECK_TIMEOUT = 2.0
_DOWN: tuple[type[BaseException], ...] = (*UNAVAILABLE, TimeoutError)


async def _check_postgres(request: web.Request) -> Json:
    services = request.app[SERVICES]
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            async with services.pool.acquire() as conn:
                read_only = await conn.fetchval("SELECT current_setting('transaction_read_only')")
    except _DOWN as exc:
        return {"ok": False, "error": type(exc).__name__}
    if read_only == "on":  # a standby after a failover, or writes switched off: every write answers 503
        return {"ok": False, "error": "read_only"}
    return {"ok": True}


async def _check_redis(request: web.Request) -> Json:
    client = request.app[SERVICES].redis
    if client is None:
        return {"ok": False, "error": "not configured"}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


async def health(request: web.Request) -> web.Response:
    """`GET /health`: 200 while PostgreSQL answers (Redis only degrades), else 503."""
    postgres, redis_status = await asyncio.gather(_check_postgres(request), _check_redis(request))
    status = "ok" if postgres["ok"] and redis_status["ok"] else ("degraded" if postgres["ok"] else "down")
    body = {"status": status, "dependencies": {"postgres": postgres, "redis": redis_status}}
    return json_response(body, 200 if postgres["ok"] else 503)


async def metrics(request: web.Request) -> web.Response:
    """`GET /metrics`: Prometheus text format."""
    registry = request.app[SERVICES].metrics.registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


OPENAPI_PATHS_KEY: web.AppKey[Json] = web.AppKey("openapi_paths")
"""Every route module's `OPENAPI_PATHS`, merged as the routes are added."""


def openapi_document(paths: Json) -> Json:
    """The OpenAPI 3 document of the given paths."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "intake", "version": "0.1.0",
                 "description": "Event-sourced omnichannel intake gateway with GIS dispatch."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {
                "type": "object", "properties": {"code": {"type": "string"},
                                                 "message": {"type": "string"}}}}}},
        },
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }


async def openapi(request: web.Request) -> web.Response:
    """`GET /openapi.json`."""
    return json_response(openapi_document(request.app[OPENAPI_PATHS_KEY]))


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)


_NO_AUTH: list[dict[str, list[str]]] = []
OPENAPI_PATHS: Json = {
    "/health": {"get": {"summary": "Liveness and dependency status", "security": _NO_AUTH,
                        "responses": {"200": {"description": "PostgreSQL reachable"},
                                      "503": {"description": "PostgreSQL unreachable"}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "security": _NO_AUTH,
                         "responses": {"200": {"description": "text exposition format"}}}},
    "/openapi.json": {"get": {"summary": "This document", "security": _NO_AUTH,
                              "responses": {"200": {"description": "OpenAPI 3"}}}},
}
