"""Duplicate-case linking: the pure decision, the candidate index and the link commands."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.linking import ScanCandidates
from dispatch.cases.events import CallerInfo, CaseLinked, Place
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.cases.state import load_case
from dispatch.core.clock import FakeClock
from dispatch.core.errors import InvalidCommand, NotAllowed, StaleVersion
from dispatch.linking.clustering import (
    CaseSketch,
    LinkCases,
    LinkParams,
    MemoryCandidates,
    UnlinkCases,
    decide,
    incident_id_for,
    link_cases,
    unlink_cases,
)
from dispatch.linking.policy import LinkingPolicy
from eventstore.memory import MemoryEventStore
from gateway.settings import SettingsError, from_env

T0 = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)
LAT, LON = 34.33, 108.70  # Qindu district, Xianyang
P = LinkParams()


def sketch(cid: str, *, category: str = "power_fault", minutes: float = 0, north_m: float = 0,
           phone: str | None = None, openid: str | None = None, district: str | None = "610402",
           placed: bool = True) -> CaseSketch:
    lat = LAT + north_m / 111_320 if placed else None
    return CaseSketch(cid, category, T0 + timedelta(minutes=minutes), lat, LON if placed else None,
                      district, phone, openid)


def test_same_place_within_radius_and_window_links() -> None:
    decision = decide(sketch("C2", minutes=20, north_m=400), [sketch("C1")], P)
    assert [(m.case_id, m.reason) for m in decision.links] == [("C1", "same_place")]
    assert 0 < decision.links[0].score < 1


@pytest.mark.parametrize(("north_m", "minutes"), [(1200, 10), (100, 75)])
def test_too_far_or_too_late_does_not_link(north_m: float, minutes: float) -> None:
    assert decide(sketch("C2", minutes=minutes, north_m=north_m), [sketch("C1")], P).links == ()


def test_same_caller_links_anywhere_within_the_caller_window() -> None:
    first = sketch("C1", phone="13800138000", placed=False)
    again = sketch("C2", minutes=600, north_m=20_000, phone="13800138000")
    late = sketch("C3", minutes=1500, phone="13800138000")
    assert [(m.case_id, m.reason, m.score) for m in decide(again, [first], P).links] == [
        ("C1", "same_caller", 1.0)]
    assert decide(late, [first], P).links == ()
    wechat = decide(sketch("C4", openid="oWX1", placed=False), [sketch("C5", openid="oWX1")], P)
    assert [m.case_id for m in wechat.links] == ["C5"]


def test_never_across_categories() -> None:
    other = sketch("C1", category="complaint", phone="13800138000")
    assert decide(sketch("C2", phone="13800138000"), [other], P).links == ()


def test_at_most_max_links_best_first() -> None:
    earlier = [sketch(f"C{i}", minutes=i, north_m=100 * i) for i in range(1, 8)]
    links = decide(sketch("C9", minutes=8), earlier, P).links
    assert len(links) == P.max_links
    assert [m.score for m in links] == sorted((m.score for m in links), reverse=True)


def test_dense_power_cluster_opens_an_incident_then_others_join() -> None:
    a, b = sketch("C1"), sketch("C2", minutes=5, north_m=200)
    opened = decide(sketch("C3", minutes=9, north_m=-150), [a, b], P).incident
    assert opened is not None and opened.open
    assert opened.incident_id == incident_id_for("C3") and set(opened.case_ids) == {"C1", "C2", "C3"}
    assert opened.district == "610402" and opened.lat is not None
    member = replace(sketch("C2", minutes=5, north_m=200), incident_id="I1")
    joined = decide(sketch("C4", minutes=12), [member], P).incident
    assert joined is not None and not joined.open and joined.incident_id == "I1"
    assert joined.case_ids == ("C4",)


def test_no_incident_for_other_categories_other_districts_or_sparse_cases() -> None:
    two = [sketch("C1", category="complaint"), sketch("C2", category="complaint")]
    assert decide(sketch("C3", category="complaint"), two, P).incident is None
    elsewhere = [sketch("C1", district="610404"), sketch("C2", district="610404")]
    assert decide(sketch("C3"), elsewhere, P).incident is None
    assert decide(sketch("C3"), [sketch("C1")], P).incident is None


def test_params_from_settings() -> None:
    params = from_env({"INTAKE_LINK_RADIUS_M": "750", "INTAKE_LINK_WINDOW_MIN": "45"}).linking
    assert (params.radius_m, params.window_min, params.max_links) == (750.0, 45.0, 3)
    with pytest.raises(SettingsError, match="INTAKE_LINK_RADIUS_M"):
        from_env({"INTAKE_LINK_RADIUS_M": "far"})
    with pytest.raises(SettingsError, match="INTAKE_INCIDENT_MIN_CASES='0' must be a whole number >= 1"):
        from_env({"INTAKE_INCIDENT_MIN_CASES": "0"})


cases = st.lists(
    st.tuples(st.sampled_from(["power_fault", "complaint", "voltage_anomaly"]),
              st.floats(0, 240), st.floats(-3000, 3000),
              st.sampled_from([None, "13800000001", "13800000002"]),
              st.booleans()),
    min_size=1, max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(cases)
def test_property_links_stay_in_category_and_index_equals_full_scan(rows: list[tuple]) -> None:  # type: ignore[type-arg]
    """The grid index finds exactly what a full scan finds, and no link crosses a category."""
    sketches = sorted((sketch(f"C{i:03d}", category=c, minutes=m, north_m=n, phone=ph, placed=placed)
                       for i, (c, m, n, ph, placed) in enumerate(rows)), key=lambda s: s.at)

    async def both() -> None:
        indexed = LinkingPolicy(MemoryCandidates(P), P)
        scanned = LinkingPolicy(ScanCandidates(P), P)
        category = {s.case_id: s.category for s in sketches}
        for s in sketches:
            mine, theirs = await indexed.decide_for(s), await scanned.decide_for(s)
            assert mine == theirs
            assert all(category[m.case_id] == s.category for m in mine.links)
            if mine.incident is not None:
                assert {category[c] for c in mine.incident.case_ids} == {s.category}

    asyncio.run(both())


# ---- commands on the in-memory store ---------------------------------------------------------


async def _register(store: MemoryEventStore, clock: FakeClock, category: str = "power_fault",
                    phone: str = "13800138000") -> str:
    cmd = RegisterCase(category=category, channel="phone", description="停电",
                       caller=CallerInfo(name="王", phone=phone), location=Place(LAT, LON, "610402"))
    return (await register_case(cmd, store=store, clock=clock)).case_id


async def test_link_is_recorded_on_both_streams_and_undone_by_unlink() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    a, b = await _register(store, clock), await _register(store, clock)
    result = await link_cases(LinkCases(a, b, 0, "same street", "agent:A001"), store=store)
    assert result.changed and result.version == 1
    state_a, state_b = await load_case(store, a), await load_case(store, b)
    assert state_a.linked_case_ids == (b,) and state_b.linked_case_ids == (a,)
    record = (await store.read_stream(f"case-{b}"))[-1]
    assert record.type == "CaseLinked" and record.data["other_case_id"] == a
    assert record.metadata["actor"] == "agent:A001"
    again = await link_cases(LinkCases(a, b, None, "again"), store=store)
    assert not again.changed
    undone = await unlink_cases(UnlinkCases(b, a, None, "not the same", "agent:A001"), store=store)
    assert undone.changed
    assert (await load_case(store, a)).linked_case_ids == () == (await load_case(store, b)).linked_case_ids
    assert [r.type for r in await store.read_stream(f"case-{a}")][-1] == "CaseUnlinked"


async def test_link_refuses_other_categories_self_and_stale_versions() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    a, b = await _register(store, clock), await _register(store, clock, "complaint")
    with pytest.raises(NotAllowed, match="never linked"):
        await link_cases(LinkCases(a, b, None), store=store)
    with pytest.raises(InvalidCommand):
        await link_cases(LinkCases(a, a, None), store=store)
    c = await _register(store, clock)
    with pytest.raises(StaleVersion):
        await link_cases(LinkCases(a, c, 5), store=store)
    assert (await load_case(store, a)).linked_case_ids == ()


async def test_repeated_idempotency_key_writes_nothing_even_after_unlink() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    a, b = await _register(store, clock), await _register(store, clock)
    await link_cases(LinkCases(a, b, None, idempotency_key="linking:7:x"), store=store)
    await unlink_cases(UnlinkCases(a, b, None), store=store)
    await link_cases(LinkCases(a, b, None, idempotency_key="linking:7:x"), store=store)
    assert (await load_case(store, a)).linked_case_ids == ()


pairs = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.booleans()), max_size=25)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["power_fault", "complaint"]), min_size=6, max_size=6), pairs)
def test_property_links_are_symmetric_and_never_cross_categories(
        categories: list[str], ops: list[tuple[int, int, bool]]) -> None:
    """After any sequence of link / unlink commands, A lists B exactly when B lists A."""

    async def scenario() -> None:
        store, clock = MemoryEventStore(), FakeClock()
        ids = [await _register(store, clock, c, f"1380000000{i}") for i, c in enumerate(categories)]
        for i, j, linking in ops:
            cmd = (LinkCases if linking else UnlinkCases)(ids[i], ids[j], None)
            try:
                await (link_cases(cmd, store=store) if linking  # type: ignore[arg-type]
                       else unlink_cases(cmd, store=store))  # type: ignore[arg-type]
            except (NotAllowed, InvalidCommand):
                assert i == j or categories[i] != categories[j]
        states = {cid: await load_case(store, cid) for cid in ids}
        for cid, state in states.items():
            for other in state.linked_case_ids:
                assert cid in states[other].linked_case_ids
                assert states[other].category == state.category

    asyncio.run(scenario())


def test_case_linked_event_round_trips() -> None:
    from dispatch.core.messages import from_data, to_data

    evt = CaseLinked("C1", "C2", "same_place", 0.8)
    assert from_data(CaseLinked, to_data(evt)) == evt
