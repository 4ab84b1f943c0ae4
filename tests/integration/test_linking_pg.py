"""Linking on real PostgreSQL: the reactor decides exactly what the benchmark's path decides,
the read models follow, and the HTTP API shows links and incidents and tells callers the cause."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.linking import generate
from dispatch.cases import CASES
from dispatch.cases.actions import ClassifyCase
from dispatch.cases.events import CallerInfo, CaseRegistered, Place
from dispatch.cases.read_model import CasesProjection
from dispatch.cases.registration import RegisterCase
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import load_case
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import FakeClock
from dispatch.core.messages import from_data
from dispatch.gis.reference import RecordReference, parse_feature
from dispatch.linking import LINKING
from dispatch.linking.clustering import CaseSketch, LinkParams, MemoryCandidates
from dispatch.linking.incidents import ResolveIncident
from dispatch.linking.policy import LinkingPolicy, PgCandidates
from dispatch.linking.read_model import LinksProjection
from dispatch.notify import NOTIFY
from dispatch.notify.outbox import Lane
from eventstore import Checkpoint
from eventstore.postgres import PostgresEventStore
from eventstore.subscriptions import ProjectionRunner, ReactorRunner
from gateway.cli import rebuild
from gateway.settings import Settings
from tests.conftest import auth

CAPABILITIES = (CASES, LINKING)
DISTRICTS = Path(__file__).resolve().parents[2] / "gis_data" / "districts.geojson"


async def _register_storm(store: PostgresEventStore, pool: asyncpg.Pool) -> tuple[MessageBus, int]:
    clock = FakeClock()
    bus = MessageBus(collect_handlers(CAPABILITIES), {"store": store, "clock": clock, "pool": pool,
                                                 "sla": SlaConfig()})
    contacts = generate(seed=5, incidents=2, contacts=100)
    for c in contacts:
        s = c.sketch
        clock.set(s.at)
        place = Place(s.lat, s.lon, s.district) if s.lat is not None and s.lon is not None else None
        await bus.handle(RegisterCase(category=s.category, channel=c.channel, description="storm",
                                      caller=CallerInfo(phone=s.phone, openid=s.openid), location=place))
    return bus, len(contacts)


async def _links_in_store(store: PostgresEventStore) -> set[tuple[str, str]]:
    pairs = set()
    for _, record in await store.read_all(Checkpoint(), limit=100_000):
        if record.type == "CaseLinked":
            pairs.add((record.data["case_id"], record.data["other_case_id"]))
    return pairs


async def test_reactor_on_postgres_decides_what_the_pure_path_decides(
        pg_store: PostgresEventStore, pg_pool: asyncpg.Pool) -> None:
    bus, count = await _register_storm(pg_store, pg_pool)
    params = LinkParams()
    policy = LinkingPolicy(PgCandidates(pg_pool, params), params, store=pg_store, send=bus.handle)
    await ReactorRunner(pg_store, policy).run_until_caught_up()

    log = await pg_store.read_all(Checkpoint(), limit=100_000)
    registered = [from_data(CaseRegistered, r.data) for _, r in log if r.type == "CaseRegistered"]
    assert len(registered) == count
    twin = LinkingPolicy(MemoryCandidates(params), params)
    expected: set[tuple[str, str]] = set()
    incidents: dict[str, str] = {}
    for evt in registered:
        decision = await twin.decide_for(CaseSketch.of(evt))
        for m in decision.links:
            expected |= {(evt.case_id, m.case_id), (m.case_id, evt.case_id)}
        if decision.incident is not None:
            for cid in decision.incident.case_ids:
                incidents.setdefault(cid, decision.incident.incident_id)
    assert expected and await _links_in_store(pg_store) == expected
    assert incidents
    for cid, incident_id in incidents.items():
        assert (await load_case(pg_store, cid)).incident_id == incident_id

    await ProjectionRunner(pg_store, CasesProjection(FakeClock())).run_until_caught_up()
    await ProjectionRunner(pg_store, LinksProjection()).run_until_caught_up()
    async with pg_pool.acquire() as conn:
        rows = {r["case_id"]: r for r in await conn.fetch(
            "SELECT case_id, linked_case_ids, incident_id FROM cases")}
        sides = {(r["case_id"], r["other_case_id"]) for r in await conn.fetch(
            "SELECT case_id, other_case_id FROM case_links")}
        counts = {r["incident_id"]: r["case_count"] for r in await conn.fetch(
            "SELECT incident_id, case_count FROM incidents")}
    assert sides == expected
    assert {(a, b) for a, row in rows.items() for b in row["linked_case_ids"]} == expected
    assert {cid: row["incident_id"] for cid, row in rows.items() if row["incident_id"]} == incidents
    assert sum(counts.values()) == len(incidents)


async def _until(check: Callable[[], Awaitable[Any]], seconds: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _load_district(services: Any, adcode: str) -> None:
    features = json.loads(DISTRICTS.read_text("utf-8"))["features"]
    feature = next(f for f in features if f["properties"]["adcode"] == adcode)
    await services.bus.handle(RecordReference(parse_feature(feature)))

    async def located() -> bool:
        districts = services.districts
        return districts is not None and districts.locate(34.33, 108.70) is not None
    await _until(located)


async def test_http_storm_view_links_incident_cause_broadcast_and_unlink(client: Any, services: Any) -> None:
    await _load_district(services, "610402")
    agent, dispatcher = auth("t-agent"), auth("t-dispatcher")
    ids = []
    for i in range(4):
        body = {"category": "power_fault", "channel": "phone", "description": "整栋楼停电",
                "caller": {"name": "赵", "phone": f"1380013801{i}"},
                "location": {"lat": 34.33 + i * 0.001, "lon": 108.70}, "address": "秦都区人民路",
                "account_number": f"61040200{i}", "fault": {"type": "outage", "began_at": "19:00",
                                                             "scope": "building"}}
        response = await client.post("/api/v1/cases", json=body, headers=agent)
        assert response.status == 201, await response.text()
        ids.append((await response.json())["case_id"])

    async def incident() -> Any:
        r = await client.get("/api/v1/incidents?status=open", headers=agent)
        items = (await r.json())["items"]
        return items[0] if items and items[0]["case_count"] == 4 else None
    found = await _until(incident)
    assert sorted(found["case_ids"]) == sorted(ids) and found["district"] == "610402"

    async def board() -> Any:
        r = await client.get(f"/api/v1/cases?linked_to={ids[0]}", headers=agent)
        items = (await r.json())["items"]
        return items if items else None
    linked = await _until(board)
    assert all(ids[0] in item["linked_case_ids"] for item in linked)
    case = await (await client.get(f"/api/v1/cases/{ids[1]}", headers=agent)).json()
    assert case["incident_id"] == found["incident_id"] and case["linked_case_ids"]

    url = f"/api/v1/incidents/{found['incident_id']}/cause"
    restore = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert (await client.post(url, json={"cause": "x", "expected_restoration_at": restore},
                              headers=agent)).status == 403
    bad = await client.post(url, json={"cause": "x", "expected_restoration_at": "soon"}, headers=dispatcher)
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "bad_field"
    set_cause = await client.post(url, json={"cause": "10kV线路故障", "expected_restoration_at": restore},
                                  headers=dispatcher)
    assert set_cause.status == 200 and (await set_cause.json())["cause_revision"] == 1

    async def told() -> Any:
        r = await client.get(f"/api/v1/notifications?case_id={ids[2]}", headers=dispatcher)
        items = [n for n in (await r.json())["items"] if n.get("reason") == "incident_cause"]
        return items or None
    notes = await _until(told)
    assert len(notes) == 1 and "10kV线路故障" in notes[0]["text"] and notes[0]["to"] == "13800138012"

    other = next(c for c in case["linked_case_ids"])
    unlink = await client.post(f"/api/v1/cases/{ids[1]}/unlink",
                               json={"other_case_id": other, "expected_version": case["version"]},
                               headers=agent)
    assert unlink.status == 200, await unlink.text()
    assert other not in (await unlink.json())["linked_case_ids"]
    missing = await client.get("/api/v1/incidents/INOPE", headers=agent)
    assert missing.status == 404
    await _until(lambda: _quiet(services.pool))  # stop the app with its runners idle


async def _quiet(pool: asyncpg.Pool) -> bool:
    """Whether the runners this test relies on have applied every event of their categories."""
    runners = {"cases": ["case"], "links": ["case", "incident"], "linking": ["case", "incident"],
               "incident_broadcast": ["incident"]}
    for name, categories in runners.items():
        last = await pool.fetchval("SELECT max(position) FROM events WHERE category = ANY($1)", categories)
        done = await pool.fetchval(  # the oldest of its partitions' (eventstore/partitions.py)
            "SELECT min(position) FROM checkpoints WHERE name = $1 OR name LIKE $1 || '/%'", name)
        if done != last:
            return False
    return True


async def _candidate_rows(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch("SELECT * FROM link_candidates ORDER BY case_id")]


async def test_rebuild_refolds_link_candidates_from_the_log_without_new_events(
        settings: Settings, pg_store: PostgresEventStore, pg_pool: asyncpg.Pool,
        capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    bus = MessageBus(collect_handlers(CAPABILITIES),
                     {"store": pg_store, "clock": clock, "pool": pg_pool, "sla": SlaConfig()})
    params = LinkParams()

    def restarted() -> ReactorRunner:  # a worker's fresh policy over the table
        policy = LinkingPolicy(PgCandidates(pg_pool, params), params, store=pg_store, send=bus.handle)
        return ReactorRunner(pg_store, policy)

    async def register(lat: float, phone: str) -> str:
        clock.advance(timedelta(minutes=2))
        cmd = RegisterCase(category="power_fault", channel="phone", description="停电",
                           caller=CallerInfo(name="张", phone=phone), location=Place(lat, 108.70, "610402"))
        return str((await bus.handle(cmd)).case_id)

    async def events() -> int:
        return int(await pg_pool.fetchval("SELECT count(*) FROM events"))

    a = [await register(34.33 + i * 0.0005, f"1380013801{i}") for i in range(4)]
    b = [await register(34.40 + i * 0.0005, f"1380013802{i}") for i in range(4)]
    runner = restarted()
    await runner.run_until_caught_up()
    a_incident = (await load_case(pg_store, a[0])).incident_id
    b_incident = (await load_case(pg_store, b[0])).incident_id
    assert a_incident and b_incident and a_incident != b_incident
    a3 = await load_case(pg_store, a[3])
    await bus.handle(ClassifyCase(case_id=a[3], expected_version=a3.version, category="complaint",
                                  priority=3))
    await bus.handle(ResolveIncident(b_incident))
    await runner.run_until_caught_up()
    # One more case reacted to, the events its reaction caused not read yet (a worker stopped there).
    x = await register(34.3312, "13800138030")
    registered_at = (await pg_store.read_stream(f"case-{x}"))[0].position
    for _ in range(50):  # a step may stop short of x while its commit is not yet visible to all
        await runner.step()
        checkpoint = await pg_store.load_checkpoint("linking")
        if checkpoint.position >= registered_at:
            break
    assert checkpoint.position == registered_at
    before, written = await _candidate_rows(pg_pool), await events()
    assert {r["case_id"]: r["incident_id"] for r in before} == {
        **dict.fromkeys([*a, x], a_incident), **dict.fromkeys(b)}
    assert next(r for r in before if r["case_id"] == a[3])["category"] == "complaint"

    await pg_pool.execute("DELETE FROM link_candidates WHERE case_id = ANY($1)", a[:2])
    await pg_pool.execute("UPDATE link_candidates SET incident_id = 'stale', category = 'junk'")
    assert await rebuild.run(argparse.Namespace(projection="linking"), settings) == 0
    read = await pg_pool.fetchval(  # the policy reads the events of its types alone
        "SELECT count(*) FROM events WHERE category IN ('case', 'incident') AND type = ANY($1::text[])",
        sorted(LinkingPolicy.types))
    assert f"rebuilt linking: {read} events applied" in capsys.readouterr().out
    assert await _candidate_rows(pg_pool) == before
    assert await events() == written
    assert await pg_store.load_checkpoint("linking") == checkpoint

    await restarted().run_until_caught_up()  # reads the effects of its last reaction: nothing new
    assert await events() == written
    y, z = await register(34.3308, "13800138040"), await register(34.4008, "13800138041")
    await restarted().run_until_caught_up()
    near_a, near_b = await load_case(pg_store, y), await load_case(pg_store, z)
    assert near_a.incident_id == a_incident
    assert near_a.linked_case_ids and set(near_a.linked_case_ids) <= {*a[:3], x}
    assert near_b.incident_id != b_incident  # resolved: takes no new cases
    assert near_b.linked_case_ids and set(near_b.linked_case_ids) <= set(b)


async def test_two_groups_that_meet_merge_and_callers_of_both_get_the_survivors_cause(
        settings: Settings, pg_store: PostgresEventStore, pg_pool: asyncpg.Pool) -> None:
    from dispatch.linking.incidents import IncidentBroadcast, SetIncidentCause

    clock = FakeClock()
    bus = MessageBus(collect_handlers((*CAPABILITIES, NOTIFY)),
                     {"store": pg_store, "clock": clock, "pool": pg_pool, "sla": SlaConfig()})
    params = LinkParams()
    policy = LinkingPolicy(PgCandidates(pg_pool, params), params, store=pg_store, send=bus.handle)
    runner = ReactorRunner(pg_store, policy)

    async def register(north_m: float, phone: str) -> str:
        clock.advance(timedelta(minutes=3))
        cmd = RegisterCase(category="power_fault", channel="phone", description="停电",
                           caller=CallerInfo(name="张", phone=phone),
                           location=Place(34.33 + north_m / 111_320, 108.70, "610402"))
        return str((await bus.handle(cmd)).case_id)

    a = [await register(50 * i, f"1380013805{i}") for i in range(3)]
    await runner.run_until_caught_up()
    b = [await register(1300 + 50 * i, f"1380013806{i}") for i in range(3)]
    await runner.run_until_caught_up()
    first = (await load_case(pg_store, a[0])).incident_id
    second = (await load_case(pg_store, b[0])).incident_id
    assert first and second and first != second
    await bus.handle(SetIncidentCause(first, "10kV线路故障", datetime(2026, 11, 23, 14, 30, tzinfo=UTC)))
    bridge = await register(700, "13800138070")
    await runner.run_until_caught_up()
    await runner.run_until_caught_up()

    await ReactorRunner(pg_store, IncidentBroadcast(pg_store, bus.handle)).run_until_caught_up()
    await ProjectionRunner(pg_store, LinksProjection()).run_until_caught_up()
    rows = {r["incident_id"]: r for r in await pg_pool.fetch(
        "SELECT incident_id, status, merged_into, merged_from, case_count FROM incidents")}
    assert rows[second]["status"] == "merged" and rows[second]["merged_into"] == first
    assert rows[first]["merged_from"] == [second] and rows[first]["case_count"] == 7
    members = {r["case_id"] for r in await pg_pool.fetch(
        "SELECT case_id FROM incident_cases WHERE incident_id = $1", first)}
    assert members == {*a, *b, bridge}
    told = {r["case_id"]: (r["text"], r["lane"]) for r in await pg_pool.fetch(
        "SELECT case_id, body AS text, lane FROM notification_outbox WHERE reason = 'incident_cause'")}
    assert set(told) == {*a, *b, bridge} and all("10kV线路故障" in t for t, _ in told.values())
    assert {lane for _, lane in told.values()} == {Lane.BULK}  # behind single cases' messages

    before = await _candidate_rows(pg_pool)
    assert {r["incident_id"] for r in before} == {first}
    await pg_pool.execute("UPDATE link_candidates SET incident_id = NULL")
    assert await rebuild.run(argparse.Namespace(projection="linking"), settings) == 0
    assert await _candidate_rows(pg_pool) == before
