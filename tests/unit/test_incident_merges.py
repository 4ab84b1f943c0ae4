"""Incident merges: the pure decision, the merge command and the policy (in memory, fake clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.cases import CASES
from dispatch.cases.actions import ClassifyCase
from dispatch.cases.events import CallerInfo, Place
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import load_case
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import FakeClock
from dispatch.core.errors import NotAllowed
from dispatch.linking import LINKING
from dispatch.linking.clustering import CaseSketch, LinkParams, MemoryCandidates, decide
from dispatch.linking.incidents import (
    AddCaseToIncident,
    IncidentBroadcast,
    MergeIncidents,
    OpenIncident,
    ResolveIncident,
    SetIncidentCause,
    load_incident,
    merge_incidents,
    open_incident,
    set_incident_cause,
)
from dispatch.linking.policy import LinkingPolicy
from dispatch.notify.outbox import RequestNotification
from eventstore import Checkpoint
from eventstore.memory import MemoryEventStore
from eventstore.subscriptions import ReactorRunner

T0 = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)
LAT, LON = 34.33, 108.70
P = LinkParams()
RESTORED = datetime(2026, 7, 15, 14, 0, tzinfo=UTC)


def _sketch(cid: str, north_m: float, *, incident: str | None = None, opened_min: float | None = None,
            category: str = "power_fault", district: str = "610402") -> CaseSketch:
    return CaseSketch(cid, category, T0, LAT + north_m / 111_320, LON, district, incident_id=incident,
                      incident_at=None if opened_min is None else T0 - timedelta(minutes=opened_min))


def _place(north_m: float) -> tuple[float, float]:
    return LAT + north_m / 111_320, LON


def test_a_case_near_two_incidents_joins_the_oldest_and_merges_the_younger() -> None:
    new = _sketch("C9", 700)
    candidates = [_sketch("C1", 100, incident="IA", opened_min=30), _sketch("C2", 1300, incident="IB",
                                                                            opened_min=10)]
    step = decide(new, candidates, P, {"IA": _place(50), "IB": _place(1350)}).incident
    assert step is not None and not step.open
    assert (step.incident_id, step.absorbed, step.case_ids) == ("IA", ("IB",), ("C9",))
    older_b = [_sketch("C1", 100, incident="IA", opened_min=5), _sketch("C2", 1300, incident="IB",
                                                                         opened_min=10)]
    step = decide(new, older_b, P, {"IA": _place(50), "IB": _place(1350)}).incident
    assert step is not None and (step.incident_id, step.absorbed) == ("IB", ("IA",))


def test_incidents_whose_places_are_apart_or_unknown_are_not_merged() -> None:
    new = _sketch("C9", 700)
    candidates = [_sketch("C1", 100, incident="IA", opened_min=30), _sketch("C2", 1300, incident="IB",
                                                                            opened_min=10)]
    far = decide(new, candidates, P, {"IA": _place(-300), "IB": _place(2100)}).incident
    assert far is not None and (far.incident_id, far.absorbed) == ("IA", ())
    unknown = decide(new, candidates, P).incident
    assert unknown is not None and (unknown.incident_id, unknown.absorbed) == ("IA", ())


def test_a_case_joins_an_incident_only_near_its_place_not_near_one_member() -> None:
    """Single linkage chained neighbouring outages: the edge of one lies within a radius of
    the edge of the other. A case joins (and links into) an incident only within 1.2 radii
    of its place; beside an edge member of a far one it stays out of it."""
    edge = _sketch("C1", 900, incident="IA", opened_min=30)
    free = [_sketch("C2", 1500), _sketch("C3", 1550)]
    new = _sketch("C9", 1600)  # 700 m from IA's edge member, 1.6 km from IA's place
    decision = decide(new, [edge, *free], P, {"IA": _place(0)})
    assert decision.incident is not None and decision.incident.open
    assert set(decision.incident.case_ids) == {"C9", "C2", "C3"}
    assert {m.case_id for m in decision.links} == {"C2", "C3"}
    inside = decide(new, [edge, *free], P, {"IA": _place(500)})  # 1.1 km: within 1.2 radii
    step = inside.incident
    assert step is not None and (step.incident_id, step.open) == ("IA", False)
    assert {m.case_id for m in inside.links} == {"C1"}


def test_a_case_links_only_into_the_incident_it_joins() -> None:
    """A case between a free case and an incident's member links into its incident only, so
    no link bridges two matters; the same caller's earlier case is always linked."""
    member = _sketch("C1", 200, incident="IA", opened_min=30)
    loose = replace(_sketch("C2", 900), district="610404")  # near, but not of the incident
    again = replace(_sketch("C3", 5000, incident="IB"), phone="13800138000")
    new = replace(_sketch("C9", 500), phone="13800138000")
    decision = decide(new, [member, loose, again], P, {"IA": _place(0), "IB": _place(5000)})
    assert decision.incident is not None and decision.incident.incident_id == "IA"
    assert {m.case_id for m in decision.links} == {"C1", "C3"}


def test_incidents_of_another_district_are_not_merged() -> None:
    new = _sketch("C9", 700)
    candidates = [_sketch("C1", 100, incident="IA", opened_min=30),
                  _sketch("C2", 1300, incident="IB", opened_min=10, district="610404")]
    step = decide(new, candidates, P, {"IA": _place(50), "IB": _place(1350)}).incident
    assert step is not None and (step.incident_id, step.absorbed) == ("IA", ())


INCIDENTS = {"I1": ("power_fault", "610402"), "I2": ("voltage_anomaly", "610402"),
             "I3": ("power_fault", "610404"), "I4": ("power_fault", "610402")}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([None, *INCIDENTS]), st.floats(-900, 900),
                          st.floats(0, 60)), min_size=1, max_size=12),
       st.sampled_from(["power_fault", "voltage_anomaly"]))
def test_merging_never_crosses_categories_or_districts(
        members: list[tuple[str | None, float, float]], category: str) -> None:
    candidates = []
    for n, (incident, north, opened) in enumerate(members):
        cat, district = INCIDENTS[incident] if incident else (category, "610402")
        candidates.append(_sketch(f"C{n}", north, incident=incident, opened_min=opened, category=cat,
                                  district=district))
    places = {i: _place(0) for i in INCIDENTS}
    step = decide(_sketch("CX", 0, category=category), candidates, P, places).incident
    if step is None or step.open:
        return
    for incident in (step.incident_id, *step.absorbed):
        assert INCIDENTS[incident] == (category, "610402")


async def _case(store: MemoryEventStore, clock: FakeClock, phone: str, category: str = "power_fault") -> str:
    cmd = RegisterCase(category=category, channel="phone", description="停电",
                       caller=CallerInfo(name="李", phone=phone), location=Place(LAT, LON, "610402"))
    return (await register_case(cmd, store=store, clock=clock)).case_id


async def _open(store: MemoryEventStore, clock: FakeClock, incident: str, ids: list[str],
                category: str = "power_fault") -> None:
    await open_incident(OpenIncident(incident, "610402", category, tuple(ids), LAT, LON, f"k:{incident}"),
                        store=store, clock=clock)


async def test_merge_moves_the_members_on_every_stream_once_and_closes_the_absorbed() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    a = [await _case(store, clock, f"1380013800{i}") for i in range(2)]
    b = [await _case(store, clock, f"1380013801{i}") for i in range(2)]
    await _open(store, clock, "IA", a)
    await _open(store, clock, "IB", b)
    cmd = MergeIncidents("IA", "IB", "linking:9:merge:IB", "policy:linking")
    state = await merge_incidents(cmd, store=store, clock=clock)
    assert state.case_ids == [*a, *b] and state.merged_from == ["IB"] and state.status == "open"
    absorbed = await load_incident(store, "IB")
    assert (absorbed.status, absorbed.merged_into, absorbed.case_ids) == ("merged", "IA", b)
    for cid in b:
        history = await store.read_stream(f"case-{cid}")
        assert history[-1].type == "CaseAddedToIncident" and history[-1].data["merged_from"] == "IB"
        assert (await load_case(store, cid)).incident_id == "IA"
    written = len(await store.read_all(Checkpoint(), limit=1000))
    assert (await merge_incidents(cmd, store=store, clock=clock)).version == state.version
    assert len(await store.read_all(Checkpoint(), limit=1000)) == written
    with pytest.raises(NotAllowed):
        await open_incident(OpenIncident("IB", "610402", "power_fault", (a[0],)), store=store, clock=clock)
    for command in (AddCaseToIncident("IB", await _case(store, clock, "13800138099")),
                    SetIncidentCause("IB", "x", RESTORED), ResolveIncident("IB")):
        with pytest.raises(NotAllowed):
            await MessageBus(collect_handlers((LINKING,)),
                             {"store": store, "clock": clock}).handle(command)


async def test_merge_refuses_other_categories_and_closed_incidents() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    await _open(store, clock, "IA", [await _case(store, clock, "13800138001")])
    await _open(store, clock, "IV", [await _case(store, clock, "13800138002", "voltage_anomaly")],
                "voltage_anomaly")
    with pytest.raises(NotAllowed, match="never merged"):
        await merge_incidents(MergeIncidents("IA", "IV"), store=store, clock=clock)
    await _open(store, clock, "IB", [await _case(store, clock, "13800138003")])
    bus = MessageBus(collect_handlers((LINKING,)), {"store": store, "clock": clock})
    await bus.handle(ResolveIncident("IB"))
    with pytest.raises(NotAllowed, match="resolved"):
        await merge_incidents(MergeIncidents("IA", "IB"), store=store, clock=clock)


async def test_absorbed_callers_get_the_survivors_cause_not_their_own() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    a = [await _case(store, clock, "13800138001")]
    b = [await _case(store, clock, "13800138002")]
    await _open(store, clock, "IA", a)
    await _open(store, clock, "IB", b)
    await set_incident_cause(SetIncidentCause("IA", "主线故障", RESTORED), store=store, clock=clock)
    await set_incident_cause(SetIncidentCause("IB", "支线故障", RESTORED), store=store, clock=clock)
    await merge_incidents(MergeIncidents("IA", "IB"), store=store, clock=clock)
    sent: list[RequestNotification] = []

    async def send(cmd: object) -> None:
        assert isinstance(cmd, RequestNotification)
        sent.append(cmd)

    broadcast = IncidentBroadcast(store, send)
    for stream in ("incident-IB", "incident-IA"):  # a replay of both: the absorbed one tells nobody
        for record in await store.read_stream(stream):
            await broadcast.react(record)
    assert sorted((n.dedup_key, n.to) for n in sent) == sorted([
        (f"incident:IA:{a[0]}:1", "13800138001"), (f"incident:IA:{b[0]}:1", "13800138002")])
    assert all("主线故障" in n.text for n in sent)


def _wire() -> tuple[MemoryEventStore, FakeClock, MessageBus, LinkingPolicy]:
    clock = FakeClock()
    store = MemoryEventStore(clock.now)
    bus = MessageBus(collect_handlers((CASES, LINKING)),
                     {"store": store, "clock": clock, "sla": SlaConfig()})
    return store, clock, bus, LinkingPolicy(MemoryCandidates(P), P, store=store, send=bus.handle)


async def _register(bus: MessageBus, clock: FakeClock, north_m: float, phone: str) -> str:
    clock.advance(timedelta(minutes=3))
    cmd = RegisterCase(category="power_fault", channel="phone", description="停电",
                       caller=CallerInfo(name="张", phone=phone), location=Place(*_place(north_m), "610402"))
    return str((await bus.handle(cmd)).case_id)


async def test_two_groups_that_meet_become_one_incident_and_a_rebuild_agrees() -> None:
    store, clock, bus, policy = _wire()
    runner = ReactorRunner(store, policy)
    a = [await _register(bus, clock, 50 * i, f"1380013800{i}") for i in range(3)]
    await runner.run_until_caught_up()
    b = [await _register(bus, clock, 1300 + 50 * i, f"1380013801{i}") for i in range(3)]
    await runner.run_until_caught_up()
    first, second = (await load_case(store, a[0])).incident_id, (await load_case(store, b[0])).incident_id
    assert first and second and first != second
    bridge = await _register(bus, clock, 700, "13800138020")
    await runner.run_until_caught_up()
    await runner.run_until_caught_up()
    survivor = await load_incident(store, first)
    assert sorted(survivor.case_ids) == sorted([*a, *b, bridge]) and survivor.merged_from == [second]
    assert (await load_incident(store, second)).merged_into == first
    for cid in [*a, *b, bridge]:
        assert (await load_case(store, cid)).incident_id == first
    assert isinstance(policy.source, MemoryCandidates)
    live = dict(policy.source.cases)
    assert {c.incident_id for c in live.values()} == {first}
    await policy.source.assign(list(live), None)
    await runner.rebuild()
    assert policy.source.cases == live


async def test_cases_an_opening_incident_refuses_are_not_marked_as_members() -> None:
    store, clock, bus, policy = _wire()
    runner = ReactorRunner(store, policy)
    a = [await _register(bus, clock, 50 * i, f"1380013800{i}") for i in range(3)]
    third = await _register(bus, clock, 100, "13800138009")
    version = (await load_case(store, a[0])).version  # reclassified before the policy reacts
    await bus.handle(ClassifyCase(case_id=a[0], expected_version=version, category="complaint", priority=3))
    # a[2] decided an incident of three, refused (two are free: under the minimum); `third` one
    # of all four, opened with the three the command did not refuse
    await runner.run_until_caught_up()
    assert isinstance(policy.source, MemoryCandidates)
    marks = {cid: s.incident_id for cid, s in policy.source.cases.items()}
    incident = marks[third]
    assert incident is not None
    members = (await load_incident(store, incident)).case_ids
    assert a[0] not in members and marks[a[0]] is None
    assert {cid for cid, i in marks.items() if i == incident} == set(members)
