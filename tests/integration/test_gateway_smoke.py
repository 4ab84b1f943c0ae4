"""The gateway starts on a real database and answers its basic endpoints."""

from __future__ import annotations

import io
from typing import Any


async def test_health_reports_dependencies(client: Any) -> None:
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["dependencies"]["postgres"] == {"ok": True}
    assert body["dependencies"]["redis"] == {"ok": True}


async def test_openapi_lists_health(client: Any) -> None:
    body = await (await client.get("/openapi.json")).json()
    assert body["openapi"].startswith("3.")
    assert "/health" in body["paths"]


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
