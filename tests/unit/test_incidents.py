"""Incidents: membership on both streams, cause revisions, the broadcast to callers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.cases.events import CallerInfo, Place
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.cases.state import load_case
from dispatch.core.clock import FakeClock
from dispatch.core.errors import InvalidCommand, NotAllowed, StaleVersion
from dispatch.linking.incidents import (
    AddCaseToIncident,
    IncidentBroadcast,
    OpenIncident,
    ResolveIncident,
    SetIncidentCause,
    add_case_to_incident,
    load_incident,
    open_incident,
    resolve_incident,
    set_incident_cause,
)
from dispatch.notify.outbox import RequestNotification
from eventstore.memory import MemoryEventStore

RESTORED = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)


async def _case(store: MemoryEventStore, clock: FakeClock, *, category: str = "power_fault",
                phone: str | None = "13800138000", openid: str | None = None) -> str:
    cmd = RegisterCase(category=category, channel="phone", description="停电",
                       caller=CallerInfo(name="李", phone=phone, openid=openid),
                       location=Place(34.33, 108.70, "610402"))
    return (await register_case(cmd, store=store, clock=clock)).case_id


async def _incident(store: MemoryEventStore, clock: FakeClock, ids: list[str]) -> str:
    cmd = OpenIncident("I1", "610402", "power_fault", tuple(ids), 34.33, 108.70, "linking:1:incident")
    await open_incident(cmd, store=store, clock=clock)
    return "I1"


async def test_open_records_members_on_both_streams_once() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    ids = [await _case(store, clock) for _ in range(3)]
    other = await _case(store, clock, category="complaint")
    cmd = OpenIncident("I1", "610402", "power_fault", (*ids, other), 34.33, 108.70, "linking:1:incident")
    state = await open_incident(cmd, store=store, clock=clock)
    assert state.status == "open" and state.case_ids == ids
    for cid in ids:
        assert (await load_case(store, cid)).incident_id == "I1"
    assert (await load_case(store, other)).incident_id is None
    before = len(await store.read_stream("incident-I1"))
    again = await open_incident(cmd, store=store, clock=clock)
    assert again.case_ids == ids and len(await store.read_stream("incident-I1")) == before
    assert [r.type for r in await store.read_stream(f"case-{ids[0]}")] == [
        "CaseRegistered", "CaseAddedToIncident"]


async def test_add_joins_once_and_refuses_other_categories_and_resolved_incidents() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    incident = await _incident(store, clock, [await _case(store, clock) for _ in range(3)])
    late = await _case(store, clock)
    state = await add_case_to_incident(AddCaseToIncident(incident, late, "k"), store=store)
    assert late in state.case_ids
    repeat = await add_case_to_incident(AddCaseToIncident(incident, late), store=store)
    assert repeat.version == state.version
    complaint = await _case(store, clock, category="complaint")
    with pytest.raises(NotAllowed):
        await add_case_to_incident(AddCaseToIncident(incident, complaint), store=store)
    await resolve_incident(ResolveIncident(incident, "restored"), store=store, clock=clock)
    with pytest.raises(NotAllowed, match="resolved"):
        await add_case_to_incident(AddCaseToIncident(incident, await _case(store, clock)), store=store)


async def test_cause_revisions_and_their_checks() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    incident = await _incident(store, clock, [await _case(store, clock) for _ in range(3)])
    first = await set_incident_cause(SetIncidentCause(incident, "10kV线路故障", RESTORED), store=store,
                                     clock=clock)
    assert (first.cause, first.cause_revision, first.expected_restoration_at) == ("10kV线路故障", 1, RESTORED)
    with pytest.raises(StaleVersion):
        await set_incident_cause(SetIncidentCause(incident, "x", RESTORED, expected_version=0), store=store,
                                 clock=clock)
    second = await set_incident_cause(
        SetIncidentCause(incident, "变压器烧毁", RESTORED + timedelta(hours=2), first.version),
        store=store, clock=clock)
    assert second.cause_revision == 2
    with pytest.raises(InvalidCommand):
        await set_incident_cause(SetIncidentCause(incident, "  ", RESTORED), store=store, clock=clock)
    with pytest.raises(InvalidCommand):
        await set_incident_cause(SetIncidentCause(incident, "x", datetime(2026, 11, 23, 12)), store=store,
                                 clock=clock)


async def test_broadcast_tells_each_caller_once_per_revision_and_late_joiners() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    ids = [await _case(store, clock, phone="13800138001"),
           await _case(store, clock, phone=None, openid="oWX9"),
           await _case(store, clock, phone="13800138003")]
    incident = await _incident(store, clock, ids)
    sent: list[RequestNotification] = []

    async def send(cmd: object) -> None:
        assert isinstance(cmd, RequestNotification)
        sent.append(cmd)

    broadcast = IncidentBroadcast(store, send)
    await set_incident_cause(SetIncidentCause(incident, "线路故障", RESTORED), store=store, clock=clock)
    for record in await store.read_stream("incident-I1"):
        await broadcast.react(record)
    assert sorted(n.dedup_key for n in sent) == sorted(f"incident:I1:{c}:1" for c in ids)
    assert {(n.channel, n.to) for n in sent} == {("sms", "13800138001"), ("wechat", "oWX9"),
                                                 ("sms", "13800138003")}
    assert all("线路故障" in n.text and "20:30" in n.text for n in sent)  # Beijing time
    sent.clear()
    late = await _case(store, clock, phone="13800138004")
    await add_case_to_incident(AddCaseToIncident(incident, late), store=store)
    await broadcast.react((await store.read_stream("incident-I1"))[-1])
    assert [(n.dedup_key, n.to) for n in sent] == [(f"incident:I1:{late}:1", "13800138004")]
    sent.clear()
    await set_incident_cause(SetIncidentCause(incident, "更换变压器", RESTORED), store=store, clock=clock)
    records = await store.read_stream("incident-I1")
    cause_events = [r for r in records if r.type == "IncidentCauseSet"]
    await broadcast.react(cause_events[0])  # a replayed old revision is superseded: nothing sent
    assert sent == []
    await broadcast.react(cause_events[1])
    assert len(sent) == 4 and {n.dedup_key.rsplit(":", 1)[1] for n in sent} == {"2"}


async def test_incident_state_folds_and_is_found() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    incident = await _incident(store, clock, [await _case(store, clock) for _ in range(3)])
    state = await load_incident(store, incident)
    body = state.as_json()
    assert body["case_count"] == 3 and body["district"] == "610402" and body["status"] == "open"


async def test_broadcast_tells_a_caller_with_two_cases_in_the_incident_once() -> None:
    """A caller who reported the outage twice (an SMS, then a call: two cases, linked as
    `same_caller`) is one person: one message per revision, on the first case."""
    from dispatch.linking.clustering import LinkCases, link_cases

    store, clock = MemoryEventStore(), FakeClock()
    first = await _case(store, clock, phone="13800138001")
    again = await _case(store, clock, phone="13800138001")
    other = await _case(store, clock, phone="13800138003")
    incident = await _incident(store, clock, [first, again, other])
    await link_cases(LinkCases(again, first, reason="same_caller", score=1.0), store=store)
    sent: list[RequestNotification] = []

    async def send(cmd: object) -> None:
        assert isinstance(cmd, RequestNotification)
        sent.append(cmd)

    broadcast = IncidentBroadcast(store, send)
    await set_incident_cause(SetIncidentCause(incident, "线路故障", RESTORED), store=store, clock=clock)
    for record in await store.read_stream("incident-I1"):
        await broadcast.react(record)
    assert sorted((n.dedup_key, n.to) for n in sent) == sorted([
        (f"incident:I1:{first}:1", "13800138001"), (f"incident:I1:{other}:1", "13800138003")])
    sent.clear()
    third = await _case(store, clock, phone="+86 138 0013 8001")  # the same caller once more, late
    await link_cases(LinkCases(third, again, reason="same_caller", score=1.0), store=store)
    await add_case_to_incident(AddCaseToIncident(incident, third), store=store)
    await broadcast.react((await store.read_stream("incident-I1"))[-1])
    assert sent == []
    stranger = await _case(store, clock, phone="13800138009")
    await link_cases(LinkCases(stranger, third, reason="same_place", score=0.9), store=store)
    await add_case_to_incident(AddCaseToIncident(incident, stranger), store=store)
    await broadcast.react((await store.read_stream("incident-I1"))[-1])
    assert [n.to for n in sent] == ["13800138009"]
