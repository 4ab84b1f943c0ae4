"""Three worker processes' worth of services behind one gateway: what must be global stays so.

The app under test serves the gateway role only; three worker services (each
with its own pool, `Leadership`, runners, assigner and outbox sender, as a
`INTAKE_ROLE=worker` process has) share the partitions. A burst of missed
calls, cases and one outage goes in at once; then: one open call-back task
per caller and a fair spread (max - min <= 1), one acknowledgement SMS per
case, one incident for the outage. `intake status` and `GET /api/v1/status`
show the three workers holding the partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from dispatch.gis.reference import RecordReference, parse_feature
from gateway.bootstrap import build_services, close_services, run_background
from gateway.cli import status as status_cli
from gateway.settings import ProcessSettings, Settings
from tests.conftest import auth
from tests.integration.test_linking_pg import DISTRICTS

AGENTS = ("A001", "A002", "A003")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app serves the gateway role; the workers are started by the test."""
    return dataclasses.replace(settings, process=ProcessSettings(role="gateway", log_format="console",
                                                                 lease_seconds=0.5))


@pytest.fixture
async def worker_services(settings: Settings) -> AsyncIterator[list[Any]]:
    """Three worker roles running their background tasks."""
    role = dataclasses.replace(settings, process=dataclasses.replace(settings.process, role="worker"))
    started = [await build_services(role) for _ in range(3)]
    running = [run_background(s) for s in started]
    for background in running:
        await anext(background)
    try:
        yield started
    finally:
        for background in running:
            await background.aclose()
        for services in started:
            await close_services(services)


async def until(check: Callable[[], Awaitable[Any]], seconds: float = 40.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def abandon(client: Any, n: int, caller: str) -> None:
    body = {"event_id": f"e{n}", "type": "abandoned", "call_id": f"c{n}", "caller": caller,
            "queue": "95598", "at": f"2026-11-23T08:{n % 60:02d}:00Z"}
    response = await client.post("/channels/cti/events", json=body, headers=auth("t-channel"))
    assert response.status == 201, await response.text()


async def register(client: Any, n: int, category: str, lat: float) -> str:
    body = {"category": category, "channel": "phone", "description": "整栋楼停电",
            "caller": {"name": "赵", "phone": f"138001380{n:02d}"},
            "location": {"lat": lat, "lon": 108.70}, "address": "秦都区人民路",
            "account_number": f"6104020{n:02d}", "fault": {"type": "outage", "began_at": "19:00",
                                                            "scope": "building"}}
    response = await client.post("/api/v1/cases", json=body, headers=auth("t-agent"))
    assert response.status == 201, await response.text()
    return str((await response.json())["case_id"])


async def test_three_workers_keep_fairness_one_task_per_caller_one_sms_and_one_incident(
    client: Any, services: Any, worker_services: list[Any], capsys: Any,
) -> None:
    pool = services.pool
    features = json.loads(DISTRICTS.read_text("utf-8"))["features"]
    await services.bus.handle(RecordReference(parse_feature(
        next(f for f in features if f["properties"]["adcode"] == "610402"))))

    async def located() -> bool:  # the gateway places a case in its district as it registers it
        return services.districts is not None and services.districts.locate(34.33, 108.70) is not None
    await until(located)
    for agent in AGENTS:
        response = await client.put(f"/api/v1/agents/{agent}/presence", json={"status": "online"},
                                    headers=auth("t-dispatcher"))
        assert response.status == 200

    callers = [f"1390000{n:04d}" for n in range(12)]
    calls = [callers[n % 12] for n in range(30)]  # 12 callers, 2 or 3 misses each
    outage = [register(client, n, "power_fault", 34.33 + n * 0.001) for n in range(4)]
    others = [register(client, 10 + n, "consultation", 34.20) for n in range(6)]
    results = await asyncio.gather(*(abandon(client, n, c) for n, c in enumerate(calls)),
                                   *outage, *others)
    cases = [r for r in results if isinstance(r, str)]
    assert len(cases) == 10

    async def all_assigned() -> Any:
        for agent in AGENTS:  # the agents keep their presence alive
            await client.put(f"/api/v1/agents/{agent}/presence", json={"status": "online"},
                             headers=auth("t-dispatcher"))
        body = await (await client.get("/api/v1/missed-calls?status=open",
                                        headers=auth("t-dispatcher"))).json()
        items = body["items"]
        done = len(items) == 12 and all(t["assigned_to"] for t in items)
        return items if done and sum(t["attempts"] for t in items) == 30 else None
    tasks = await until(all_assigned)
    assert Counter(t["caller"] for t in tasks) == Counter(callers) and len(callers) == 12
    assert {t["caller"]: t["attempts"] for t in tasks} == Counter(calls)
    spread = Counter(t["assigned_to"] for t in tasks)
    assert set(spread) == set(AGENTS) and max(spread.values()) - min(spread.values()) <= 1
    opened = await pool.fetch("SELECT stream, count(*) AS n FROM events "
                              "WHERE type = 'CallbackTaskOpened' GROUP BY stream")
    assert len(opened) == 12 and {r["n"] for r in opened} == {1}

    async def incident() -> Any:
        body = await (await client.get("/api/v1/incidents?status=open", headers=auth("t-agent"))).json()
        items = body["items"]
        return items if items and items[0]["case_count"] == 4 else None
    [found] = await until(incident)
    assert found["district"] == "610402"
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'IncidentOpened'") == 1

    async def acknowledged() -> Any:
        rows = await pool.fetch("SELECT stream, count(*) AS n FROM events "
                                "WHERE type = 'NotificationRequested' AND stream LIKE 'notification-ack:%' "
                                "GROUP BY stream")
        return rows if len(rows) == 10 else None
    rows = await until(acknowledged)
    assert {r["n"] for r in rows} == {1}
    assert {r["stream"].removeprefix("notification-ack:") for r in rows} == set(cases)

    workers = {w.leadership.worker for w in worker_services}

    async def shared() -> Any:  # all three share the work (a loaded machine may delay a heartbeat)
        response = await client.get("/api/v1/status", headers=auth("t-admin"))
        assert response.status == 200
        body = await response.json()
        owners = {r["owner"] for r in await pool.fetch("SELECT owner FROM reader_leases")}
        alive = {w["worker"] for w in body["workers"] if w["alive"]}
        cases = next(r for r in body["runners"] if r["name"] == "cases")
        spread = sorted(Counter(p["owner"] for p in cases["partitions"] if p["leased"]).values())
        return body if owners == alive == workers and spread == [5, 5, 6] else None
    runners = {r["name"]: r for r in (await until(shared))["runners"]}
    assert runners["cases"]["partition_count"] == 16 and runners["linking"]["partition_count"] == 1

    async def caught_up() -> Any:
        body = await (await client.get("/api/v1/status", headers=auth("t-admin"))).json()
        return all(r["lag_events"] == 0 for r in body["runners"]
                   if r["name"] in ("cases", "linking", "notifications-ack"))
    await until(caught_up)
    capsys.readouterr()
    assert await status_cli.run(argparse.Namespace(json=False), services.settings) == 0
    text = capsys.readouterr().out
    assert "workers: 3 alive" in text and "cases (projection, 16 partitions)" in text
    assert "linking (reactor, 1 partition): lag 0 events" in text


async def test_status_is_for_admins_only(client: Any) -> None:
    assert (await client.get("/api/v1/status")).status == 401
    for token in ("t-dispatcher", "t-agent", "t-auditor", "t-channel"):
        response = await client.get("/api/v1/status", headers=auth(token))
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"
    response = await client.get("/api/v1/status", headers=auth("t-admin"))
    assert response.status == 200 and set(await response.json()) == {"workers", "runners"}


def _lags(services: Any) -> dict[str, float]:
    """`intake_projection_lag_seconds` of one process's `/metrics`, by runner."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    text = generate_latest(services.metrics.registry).decode()
    return {sample.labels["name"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "intake_projection_lag_seconds" for sample in family.samples}


async def test_each_worker_exposes_every_runners_lag_in_its_metrics(
    client: Any, services: Any, worker_services: list[Any],
) -> None:
    """A worker's `/metrics` says how far each of its runners is behind; 0 once caught up.

    The gauge was declared but never set: a worker's `/metrics` had no sample of it.
    """
    await abandon(client, 1, "13900009999")

    async def caught_up() -> Any:
        lags = [_lags(w) for w in worker_services]
        every = all({"cases", "callers", "missed-calls", "linking"} <= set(lag) for lag in lags)
        return lags if every and all(v == 0.0 for lag in lags for v in lag.values()) else None
    lags = await until(caught_up, 20.0)
    assert all(value >= 0.0 for lag in lags for value in lag.values())
    assert _lags(services) == {}, "the gateway role runs no runner"
