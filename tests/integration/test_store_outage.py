"""With PostgreSQL or Redis gone, intake answers as CONTRACT.md says and recovers by itself."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.app import create_app
from gateway.bootstrap import build_services, close_services
from gateway.settings import Settings
from tests.conftest import auth
from tests.integration.tcp_proxy import TcpProxy

CASE = {
    "category": "consultation",
    "channel": "phone",
    "caller": {"name": "赵六", "phone": "13800000001"},
    "description": "咨询电费",
}


def _target(dsn: str) -> tuple[str, int]:
    parts = urlsplit(dsn)
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    if socket_dir and socket_dir.startswith("/"):
        return str(Path(socket_dir) / f".s.PGSQL.{parts.port or 5432}"), 0
    return parts.hostname or "127.0.0.1", parts.port or 5432


@pytest.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(*_target(pg_dsn))
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def outage_client(
    aiohttp_client: Any, settings: Settings, pg_dsn: str, proxy: TcpProxy
) -> AsyncIterator[Any]:
    database = urlsplit(pg_dsn).path
    proxied = dataclasses.replace(settings, stores=dataclasses.replace(
        settings.stores, database_url=f"postgresql://postgres@127.0.0.1:{proxy.port}{database}"))
    services = await build_services(proxied)
    try:
        yield await aiohttp_client(create_app(proxied, services=services))
    finally:
        await close_services(services)


async def test_writes_answer_503_quickly_and_resume(outage_client: Any, proxy: TcpProxy) -> None:
    ok = await outage_client.post("/api/v1/cases", json=CASE, headers=auth("t-agent"))
    assert ok.status == 201

    await proxy.cut()
    started = time.monotonic()
    down = await outage_client.post("/api/v1/cases", json=CASE, headers=auth("t-agent"))
    assert down.status == 503
    assert time.monotonic() - started < 5
    assert "Retry-After" in down.headers
    assert (await down.json())["error"]["code"] == "store_unavailable"

    health = await outage_client.get("/health")
    assert health.status == 503
    assert (await health.json())["dependencies"]["postgres"]["ok"] is False

    await proxy.start()
    deadline = time.monotonic() + 10
    while True:
        again = await outage_client.post("/api/v1/cases", json=CASE, headers=auth("t-agent"))
        if again.status == 201 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert again.status == 201
    assert (await outage_client.get("/health")).status == 200


async def test_intake_works_without_redis(aiohttp_client: Any, settings: Settings) -> None:
    no_redis = dataclasses.replace(
        settings, stores=dataclasses.replace(settings.stores, redis_url="redis://127.0.0.1:1/0"))
    services = await build_services(no_redis)
    try:
        client = await aiohttp_client(create_app(no_redis, services=services))
        created = await client.post("/api/v1/cases", json=CASE, headers=auth("t-agent"))
        assert created.status == 201
        health = await client.get("/health")
        assert health.status == 200
        body = await health.json()
        assert body["status"] == "degraded"
        assert body["dependencies"]["redis"]["ok"] is False
    finally:
        await close_services(services)
