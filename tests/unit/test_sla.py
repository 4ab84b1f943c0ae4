"""SLA rules with a fake clock: lights, priority score, green channel, chasing policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.cases import CASES
from dispatch.cases.actions import (
    CompleteCase,
    ConfirmCase,
    DecideExtension,
    DispatchCase,
    GiveFeedback,
    RejectCase,
    RequestExtension,
)
from dispatch.cases.events import CallerInfo, Place
from dispatch.cases.read_model import case_clocks
from dispatch.cases.registration import RegisterCase
from dispatch.cases.sla import (
    Clocks,
    SlaConfig,
    Urgency,
    complexity_of,
    importance_of,
    light,
    priority_score,
    queue_key,
)
from dispatch.cases.state import load_case
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import FakeClock
from dispatch.core.timers import Reschedule
from dispatch.supervision import SUPERVISION
from dispatch.supervision.chasing import ChaseCase
from eventstore.memory import MemoryEventStore
from gateway.settings import SettingsError, from_env

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CFG = SlaConfig()


def at(minutes: float = 0, days: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, days=days)


def test_deadline_rule_green_yellow_red() -> None:
    c = Clocks("accepted", deadline=at(60), deadline_from=T0)
    assert light(c, CFG, at(47)) == "green"
    assert light(c, CFG, at(48)) == "yellow"  # the last 20 % of the limit
    assert light(c, CFG, at(60)) == "red"


def test_day_rule_for_transferred_cases() -> None:
    c = Clocks("confirmed", deadline=at(days=30), deadline_from=T0, dispatched_at=T0, last_touched_at=T0)
    assert light(c, CFG, at(days=3)) == "green"
    assert light(c, CFG, at(days=5)) == "yellow"  # untouched past 5 days
    touched = Clocks("in_progress", deadline=at(days=30), deadline_from=T0, dispatched_at=T0,
                     last_touched_at=at(days=4))
    assert light(touched, CFG, at(days=6)) == "green"
    assert light(touched, CFG, at(days=7)) == "red"  # past 7 days since transfer


def test_finished_case_keeps_the_light_it_finished_with() -> None:
    on_time = Clocks("completed", deadline=at(60), deadline_from=T0, finished_at=at(30))
    late = Clocks("completed", deadline=at(60), deadline_from=T0, finished_at=at(61))
    assert light(on_time, CFG, at(days=30)) == "green"
    assert light(late, CFG, at(days=30)) == "red"


def test_priority_score_rises_as_elapsed_nears_the_limit() -> None:
    limit = timedelta(minutes=60)
    scores = [priority_score(Urgency(3, timedelta(minutes=m), limit)) for m in (0, 30, 50, 57, 60, 90)]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert scores[3] / scores[0] > 10  # steep near T
    plain = priority_score(Urgency(3, timedelta(minutes=30), limit))
    weighted = priority_score(Urgency(3, timedelta(minutes=30), limit, complexity_of("power_fault", "area"),
                                      importance_of(("vip",))))
    assert weighted > plain * 3
    assert priority_score(Urgency(1, timedelta(0), limit)) > priority_score(Urgency(4, timedelta(0), limit))


def test_green_channel_skips_the_queue() -> None:
    urgent = queue_key(1, 1.0, at(10))
    busy = queue_key(3, 500.0, T0)
    assert sorted([busy, urgent]) == [urgent, busy]
    assert sorted([queue_key(3, 2.0, T0), queue_key(3, 9.0, at(5))])[0][1] == -9.0


def test_configuration_from_environment() -> None:
    cfg = from_env({"INTAKE_SLA_CONFIRM_MINUTES": "10", "INTAKE_SLA_COMPLETE_HOURS": "1:2",
                    "INTAKE_SUPPLEMENT_AFTER_DAYS": "0", "INTAKE_CHASE_INTERVAL_MINUTES": "5"}).sla
    assert cfg.confirm_limit() == timedelta(minutes=10)
    assert cfg.complete_limit(1) == timedelta(hours=2) and cfg.complete_limit(4) == timedelta(hours=72)
    assert cfg.supplement_after() == timedelta(0) and cfg.chase_interval() == timedelta(minutes=5)
    assert cfg.response_limit(1) == timedelta(minutes=15) and cfg.response_limit(4) == timedelta(minutes=90)
    with pytest.raises(SettingsError, match="INTAKE_SLA_CALLBACK_HOURS"):
        from_env({"INTAKE_SLA_CALLBACK_HOURS": "soon"})


async def test_chasing_a_silent_unit_at_the_set_interval(clock: FakeClock) -> None:
    store = MemoryEventStore(clock.now)
    bus = MessageBus(collect_handlers((CASES, SUPERVISION)),
                     {"store": store, "clock": clock, "sla": SlaConfig()})
    case_id = (await bus.handle(RegisterCase(
        category="complaint", channel="phone", description="x", caller=CallerInfo(phone="13800138000"),
        location=Place(34.3, 108.7)))).case_id
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    confirm_by = clock.now() + timedelta(minutes=30)
    chase = ChaseCase(case_id, "confirmation")
    assert await bus.handle(chase) == Reschedule(confirm_by)  # not overdue yet
    clock.set(confirm_by)
    assert await bus.handle(chase) == Reschedule(confirm_by + timedelta(minutes=15))
    assert await bus.handle(chase) == Reschedule(confirm_by + timedelta(minutes=15))  # idempotent refire
    clock.advance(timedelta(minutes=15))
    await bus.handle(chase)
    chased = [e.data for e in await store.read_stream(f"case-{case_id}") if e.type == "CaseChased"]
    assert [(c["stage"], c["attempt"], c["unit"]) for c in chased] == [
        ("confirmation", 1, "U001"), ("confirmation", 2, "U001")]
    state = await bus.handle(ConfirmCase(case_id=case_id, expected_version=3, actor="unit:U001"))
    assert await bus.handle(chase) is None  # the unit answered: the chase timer ends
    completion = ChaseCase(case_id, "completion")
    assert await bus.handle(completion) == Reschedule(state.complete_by)
    clock.set(state.complete_by - timedelta(minutes=5))
    await bus.handle(GiveFeedback(case_id=case_id, expected_version=4, text="在办", actor="unit:U001"))
    clock.set(state.complete_by)
    assert await bus.handle(completion) == Reschedule(state.complete_by + timedelta(minutes=10))  # not silent
    clock.advance(timedelta(minutes=10))
    await bus.handle(completion)
    stream = await store.read_stream(f"case-{case_id}")
    assert stream[-1].type == "CaseChased" and stream[-1].data["stage"] == "completion"


async def test_a_unit_given_the_case_again_is_chased_again(clock: FakeClock) -> None:
    """Every run of a stage is chased: the unit a case is re-dispatched to after a rejection is
    chased for its overdue confirmation, and a unit past an extended deadline for its completion,
    although an earlier run of the same stage was chased already (attempts count from 1 again)."""
    store = MemoryEventStore(clock.now)
    bus = MessageBus(collect_handlers((CASES, SUPERVISION)),
                     {"store": store, "clock": clock, "sla": SlaConfig()})
    case_id = (await bus.handle(RegisterCase(
        category="complaint", channel="phone", description="x", caller=CallerInfo(phone="13800138000"),
        location=Place(34.3, 108.7)))).case_id
    s = await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    clock.advance(timedelta(minutes=30))
    await bus.handle(ChaseCase(case_id, "confirmation"))  # U001 chased once
    s = await load_case(store, case_id)
    s = await bus.handle(RejectCase(case_id=case_id, expected_version=s.version, reason="非本单位",
                                    actor="unit:U001"))
    s = await bus.handle(DispatchCase(case_id=case_id, expected_version=s.version, to="U002"))
    clock.advance(timedelta(minutes=30))
    await bus.handle(ChaseCase(case_id, "confirmation"))
    s = await load_case(store, case_id)
    s = await bus.handle(ConfirmCase(case_id=case_id, expected_version=s.version, actor="unit:U002"))
    assert s.complete_by is not None
    clock.set(s.complete_by)
    await bus.handle(ChaseCase(case_id, "completion"))
    s = await load_case(store, case_id)
    until = clock.now() + timedelta(hours=2)
    s = await bus.handle(RequestExtension(case_id=case_id, expected_version=s.version, until=until,
                                          reason="等材料", actor="unit:U002"))
    s = await bus.handle(DecideExtension(case_id=case_id, expected_version=s.version, approve=True))
    clock.set(until)
    await bus.handle(ChaseCase(case_id, "completion"))
    chased = [e.data for e in await store.read_stream(f"case-{case_id}") if e.type == "CaseChased"]
    assert [(c["stage"], c["attempt"], c["unit"]) for c in chased] == [
        ("confirmation", 1, "U001"), ("confirmation", 1, "U002"), ("completion", 1, "U002"),
        ("completion", 1, "U002")]


async def test_a_case_overdue_for_confirmation_is_red(clock: FakeClock) -> None:
    """A transferred case its unit has not confirmed by `confirm_by` (30 min) is overdue - on the
    overdue-confirmation list and chased - so its light is red (yellow in the last 20 % of the
    30 minutes), even while the response deadline of its priority (90 min for 4) is still ahead."""
    store = MemoryEventStore(clock.now)
    bus = MessageBus(collect_handlers((CASES, SUPERVISION)),
                     {"store": store, "clock": clock, "sla": SlaConfig()})
    case_id = (await bus.handle(RegisterCase(
        category="consultation", channel="phone", description="x", caller=CallerInfo(phone="13800138000"),
        priority=4))).case_id
    clock.advance(timedelta(minutes=5))
    s = await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    assert s.confirm_by is not None and s.deadline == s.accepted_at + timedelta(minutes=90)
    assert light(case_clocks(s), CFG, s.confirm_by - timedelta(minutes=7)) == "green"
    assert light(case_clocks(s), CFG, s.confirm_by - timedelta(minutes=6)) == "yellow"
    assert light(case_clocks(s), CFG, s.confirm_by) == "red"
    clock.set(s.confirm_by + timedelta(minutes=1))
    late = await bus.handle(CompleteCase(case_id=case_id, expected_version=s.version, actor="unit:U001"))
    assert light(case_clocks(late), CFG, clock.now() + timedelta(days=1)) == "red"  # finished overdue
    s = await bus.handle(RegisterCase(
        category="consultation", channel="phone", description="y", caller=CallerInfo(phone="13800138000"),
        priority=4))
    s = await bus.handle(DispatchCase(case_id=s.case_id, expected_version=0, to="U001"))
    s = await bus.handle(ConfirmCase(case_id=s.case_id, expected_version=s.version, actor="unit:U001"))
    assert s.confirm_by is not None
    assert light(case_clocks(s), CFG, s.confirm_by + timedelta(minutes=1)) == "green"  # confirmed in time
