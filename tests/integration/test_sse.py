"""`GET /api/v1/stream`: live changes within 1 s, resume by Last-Event-ID, masking, Redis outage."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis.asyncio as aioredis

from eventstore.subscriptions import Change
from tests.conftest import auth


async def _events(response: Any, count: int, within: float = 3.0) -> list[dict[str, Any]]:
    """The next `count` SSE events (comments skipped) as {id, event, data}."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while len(found) < count:
            block = (await response.content.readuntil(b"\n\n")).decode()
            fields: dict[str, Any] = {}
            for line in block.splitlines():
                if line and not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    fields[key] = value
            if "event" in fields:
                fields["data"] = json.loads(fields["data"])
                found.append(fields)
    return found


async def _open(client: Any, token: str = "t-dispatcher", last_id: str | None = None) -> Any:
    headers = auth(token) | ({"Last-Event-ID": last_id} if last_id else {})
    response = await client.get("/api/v1/stream", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


async def test_a_published_change_arrives_within_one_second(client: Any, services: Any) -> None:
    response = await _open(client)
    assert (await _events(response, 1))[0] == {"event": "mode", "data": {"mode": "live"}}
    started = time.monotonic()
    await services.publish([Change("case", {"case_id": "C1", "status": "accepted", "desc": "城东停电"})])
    (event,) = await _events(response, 1)
    assert time.monotonic() - started < 1.0
    assert event["event"] == "change"
    assert event["data"] == {"topic": "case",
                             "data": {"case_id": "C1", "status": "accepted", "desc": "城东停电"}}
    assert event["id"].count("-") == 1
    response.close()


async def test_reconnect_with_last_event_id_replays_what_was_missed(client: Any, services: Any) -> None:
    first = await _open(client)
    await _events(first, 1)
    await services.publish([Change("case", {"case_id": "C1"})])
    (seen,) = await _events(first, 1)
    first.close()
    await services.publish([Change("case", {"case_id": "C2"}), Change("missed_call", {"task_id": "T1"})])

    resumed = await _open(client, last_id=seen["id"])
    events = await _events(resumed, 3)
    assert [e["event"] for e in events] == ["mode", "change", "change"]
    assert [e["data"]["data"] for e in events[1:]] == [{"case_id": "C2"}, {"task_id": "T1"}]
    assert events[1]["id"] > seen["id"]
    resumed.close()


async def test_an_unusable_last_event_id_asks_for_a_resync(client: Any, services: Any) -> None:
    await services.publish([Change("case", {"case_id": "C1"})])
    response = await _open(client, last_id="poll-12345")
    events = await _events(response, 2)
    assert [e["event"] for e in events] == ["resync", "mode"]
    await services.publish([Change("case", {"case_id": "C9"})])
    (event,) = await _events(response, 1)
    assert event["data"]["data"] == {"case_id": "C9"}
    response.close()


async def test_a_unit_sees_personal_data_masked_except_on_its_own_cases(client: Any, services: Any) -> None:
    response = await _open(client, token="t-unit")
    await _events(response, 1)
    data = {"case_id": "C1", "caller_phone": "13800138000", "caller_name": "李四", "address": "人民路1号"}
    await services.publish([Change("case", {**data, "assigned_to": "U999"}),
                            Change("case", {**data, "assigned_to": "U001"})])
    other, own = await _events(response, 2)
    assert other["data"]["data"]["caller_phone"] == "*******8000"
    assert other["data"]["data"]["caller_name"] == "***"
    assert other["data"]["data"]["address"] == "***"
    assert other["data"]["data"]["case_id"] == "C1"
    assert own["data"]["data"]["caller_phone"] == "13800138000"
    response.close()


async def test_channel_tokens_and_anonymous_callers_are_refused(client: Any) -> None:
    assert (await client.get("/api/v1/stream")).status == 401
    assert (await client.get("/api/v1/stream", headers=auth("t-channel"))).status == 403


async def test_with_redis_down_the_stream_polls_postgres_and_says_resync(client: Any, services: Any) -> None:
    working = services.redis
    services.redis = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    try:
        response = await _open(client)
        mode, resync = await _events(response, 2)
        assert mode["data"] == {"mode": "polling"}
        assert resync["event"] == "resync" and resync["id"].startswith("poll-")
        async with services.pool.acquire() as conn:  # a read model commits meanwhile
            await conn.execute("INSERT INTO checkpoints (name, tx_id, position) "
                               "VALUES ('test-projection', '1'::xid8, 1)")
        (moved,) = await _events(response, 1, within=3.0)
        assert moved["event"] == "resync"
        response.close()
    finally:
        await services.redis.aclose()
        services.redis = working


async def test_a_stopping_gateway_ends_its_streams_at_once(client: Any, services: Any) -> None:
    """SIGTERM: the app's shutdown ends every open stream (the browser reconnects to another
    gateway with Last-Event-ID), instead of the gateway waiting out its drain timeout for streams
    that never end - 23 s for one open console, past Docker's 10 s stop timeout, after which the
    gateway was SIGKILLed with whatever requests it still had in flight."""
    response = await _open(client)
    await _events(response, 1)
    started = time.monotonic()
    await client.server.app.shutdown()  # what `runner.cleanup()` runs first on SIGTERM
    async with asyncio.timeout(3.0):
        while await response.content.read(1024):
            pass
    assert time.monotonic() - started < 3.0
    response.close()
