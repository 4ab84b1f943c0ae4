"""The gateway starts on a real database and answers its basic endpoints."""

from __future__ import annotations

import io
import re
from typing import Any

from aiohttp import web


async def test_health_reports_dependencies(client: Any) -> None:
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["dependencies"]["postgres"] == {"ok": True}
    assert body["dependencies"]["redis"] == {"ok": True}


def _served(app: web.Application) -> set[tuple[str, str]]:
    """(path in OpenAPI's `{name}` form, method) of every route but static file trees and HEAD."""
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if route.method in ("HEAD", "*") or "directory" in info:
            continue
        path = re.sub(r"\{(\w+)[^}]*\}", r"{\1}", info.get("path") or info["formatter"])
        served.add((path, route.method.lower()))
    return served


async def test_openapi_lists_every_route_the_app_serves_and_no_other(client: Any) -> None:
    body = await (await client.get("/openapi.json")).json()
    assert body["openapi"].startswith("3.")
    listed = {(path, method) for path, item in body["paths"].items() for method in item
              if method in ("get", "post", "put", "patch", "delete")}
    served = _served(client.server.app)
    assert ("/health", "get") in served and ("/api/v1/cases", "post") in served
    assert sorted(served - listed) == [], "served but not in the spec"
    assert sorted(listed - served) == [], "in the spec but not served"
    for path, item in body["paths"].items():
        for method, operation in item.items():
            assert operation.get("summary") and operation.get("responses"), (path, method)
            declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), (path, method, declared)


async def test_metrics_are_prometheus_text(client: Any) -> None:
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status == 200
    assert "intake_http_requests_total" in await response.text()


async def test_oversized_body_gets_413_json(client: Any) -> None:
    response = await client.post("/api/v1/cases", data=io.BytesIO(b"x" * (1024 * 1024 + 1)),
                                 headers={"Authorization": "Bearer t-agent"})
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"


async def test_unknown_token_gets_401_json(client: Any) -> None:
    response = await client.get("/api/v1/cases", headers={"Authorization": "Bearer nope"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_unknown_paths_and_methods_get_the_json_error_envelope(client: Any) -> None:
    missing = await client.get("/api/v1/no-such-thing")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    wrong = await client.delete("/health")
    assert wrong.status == 405
    assert (await wrong.json())["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]


async def test_a_query_parameter_a_get_route_cannot_do_without_is_required_in_the_spec(client: Any) -> None:
    """Each GET route of the operator API asked with no query at all: one that answers 400 names a
    parameter the spec marks `required` (and the message names it). Were optional in the spec while
    served as required: `kind` of /api/v1/overdue, `category` of /api/v1/cases/candidates, `text`
    of /api/v1/places/match."""
    body = await (await client.get("/openapi.json")).json()
    for path, item in body["paths"].items():
        if "get" not in item or "{" in path or not path.startswith("/api/v1/") or path.endswith("/stream"):
            continue
        response = await client.get(path, headers={"Authorization": "Bearer t-admin"})
        if response.status != 400:
            continue
        message = (await response.json())["error"]["message"]
        required = {p["name"] for p in item["get"].get("parameters", []) if p.get("required")}
        assert any(name in message for name in required), (path, message, required)
