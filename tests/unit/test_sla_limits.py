"""Every priority's response limit and every light threshold, each pinned on its own.

CONTRACT.md / DOMAIN.md: respond within 15 / 30 / 60 / 90 minutes for priority
1 / 2 / 3 / 4; yellow in the last 20 % of a deadline, or after 5 days untouched
once transferred; red at the deadline, or 7 days after the transfer; a unit
confirms within 30 minutes. One test per priority, so that changing any single
limit fails the test that names it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dispatch.cases import CASES
from dispatch.cases.actions import ClassifyCase, ConfirmCase, DispatchCase
from dispatch.cases.events import CallerInfo
from dispatch.cases.read_model import case_clocks
from dispatch.cases.registration import RegisterCase
from dispatch.cases.sla import Clocks, SlaConfig, light
from dispatch.cases.state import load_case
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import FakeClock
from eventstore.memory import MemoryEventStore

CFG = SlaConfig()
TICK = timedelta(seconds=1)
LIMITS = {1: 15, 2: 30, 3: 60, 4: 90}
"""Priority -> response limit in minutes (CONTRACT.md)."""
COMPLETE_HOURS = {1: 4, 2: 12, 3: 72, 4: 72}
"""Priority -> hours from confirmation to completion (docs/cases-sla.md defaults)."""


def _bus(clock: FakeClock) -> tuple[MessageBus, MemoryEventStore]:
    store = MemoryEventStore(clock.now)
    bus = MessageBus(collect_handlers((CASES,)), {"store": store, "clock": clock, "sla": SlaConfig()})
    return bus, store


async def _register(bus: MessageBus, priority: int) -> str:
    registered = await bus.handle(RegisterCase(
        category="complaint", channel="phone", description="x", caller=CallerInfo(phone="13800138000"),
        priority=priority))
    return str(registered.case_id)


def _assert_lights(clocks: Clocks, start: datetime, limit: timedelta) -> None:
    """Green until 80 % of the limit, yellow from there, red from the deadline on."""
    near = start + limit * 0.8
    assert light(clocks, CFG, near - TICK) == "green"
    assert light(clocks, CFG, near) == "yellow"
    assert light(clocks, CFG, start + limit - TICK) == "yellow"
    assert light(clocks, CFG, start + limit) == "red"


async def _check_priority(priority: int, clock: FakeClock) -> None:
    bus, store = _bus(clock)
    accepted = clock.now()
    limit = timedelta(minutes=LIMITS[priority])
    case_id = await _register(bus, priority)
    state = await load_case(store, case_id)
    assert (state.priority, state.deadline) == (priority, accepted + limit)
    assert SlaConfig.response_limit(priority) == limit
    _assert_lights(case_clocks(state), accepted, limit)


async def test_priority_1_responds_within_15_minutes(clock: FakeClock) -> None:
    await _check_priority(1, clock)


async def test_priority_2_responds_within_30_minutes(clock: FakeClock) -> None:
    await _check_priority(2, clock)


async def test_priority_3_responds_within_60_minutes(clock: FakeClock) -> None:
    await _check_priority(3, clock)


async def test_priority_4_responds_within_90_minutes(clock: FakeClock) -> None:
    await _check_priority(4, clock)


@pytest.mark.parametrize(("old", "new"), [(4, 1), (1, 2), (2, 3), (3, 4)])
async def test_reclassifying_moves_the_deadline_to_the_new_limit(
    clock: FakeClock, old: int, new: int
) -> None:
    bus, store = _bus(clock)
    accepted = clock.now()
    case_id = await _register(bus, old)
    clock.advance(timedelta(minutes=5))
    await bus.handle(ClassifyCase(case_id=case_id, expected_version=0, priority=new))
    state = await load_case(store, case_id)
    assert state.deadline == accepted + timedelta(minutes=LIMITS[new])  # counted from acceptance


@pytest.mark.parametrize("priority", [1, 2, 3, 4])
async def test_confirm_within_30_minutes_then_complete_within_the_priority_limit(
    clock: FakeClock, priority: int
) -> None:
    bus, store = _bus(clock)
    accepted = clock.now()
    case_id = await _register(bus, priority)
    clock.advance(timedelta(minutes=3))
    dispatched = clock.now()
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    state = await load_case(store, case_id)
    assert state.confirm_by == dispatched + timedelta(minutes=30)
    assert state.deadline == accepted + timedelta(minutes=LIMITS[priority])  # until the unit responds
    clock.advance(timedelta(minutes=10))
    confirmed = clock.now()
    await bus.handle(ConfirmCase(case_id=case_id, expected_version=1, actor="unit:U001"))
    state = await load_case(store, case_id)
    assert state.complete_by == confirmed + timedelta(hours=COMPLETE_HOURS[priority])
    clocks = case_clocks(state)
    if COMPLETE_HOURS[priority] * 60 < 5 * 24 * 60:  # the deadline rule decides before the day rule
        _assert_lights(clocks, confirmed, timedelta(hours=COMPLETE_HOURS[priority]))


def test_day_rule_thresholds_are_5_days_untouched_and_7_days_transferred() -> None:
    t0 = datetime(2026, 11, 23, 8, 0)
    far = t0 + timedelta(days=60)
    untouched = Clocks("confirmed", deadline=far, deadline_from=t0, dispatched_at=t0)
    assert light(untouched, CFG, t0 + timedelta(days=5) - TICK) == "green"
    assert light(untouched, CFG, t0 + timedelta(days=5)) == "yellow"
    touched = Clocks("in_progress", deadline=far, deadline_from=t0, dispatched_at=t0,
                     last_touched_at=t0 + timedelta(days=3))
    assert light(touched, CFG, t0 + timedelta(days=7) - TICK) == "green"
    assert light(touched, CFG, t0 + timedelta(days=7)) == "red"
    assert light(touched, CFG, t0 + timedelta(days=8)) == "red"
