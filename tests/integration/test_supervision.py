"""Supervision on real PostgreSQL: durable timers chase a silent unit by SMS, then archive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from dispatch.cases.actions import CompleteCase, ConfirmCase, DispatchCase, RecordCallback
from dispatch.cases.events import CallerInfo
from dispatch.cases.registration import RegisterCase
from dispatch.cases.state import load_case
from dispatch.core.clock import FakeClock
from dispatch.core.timers import TimerWorker, pending
from dispatch.supervision.chasing import CaseFollowUp
from eventstore.subscriptions import ReactorRunner
from gateway.bootstrap import build_services, close_services
from gateway.settings import Settings


@pytest.fixture
async def wired(settings: Settings, clock: FakeClock) -> AsyncIterator[Any]:
    services = await build_services(settings, clock=clock)
    await services.pool.execute(
        "INSERT INTO ref_units (id, name, phone) VALUES ('U001', 'crew', '13326435929')")
    yield services
    await close_services(services)


async def step(services: Any) -> None:
    """Let the follow-up reactor and the timer worker do what is due now."""
    follow = ReactorRunner(services.store, CaseFollowUp(services.pool, services.bus, services.store))
    await follow.run_until_caught_up()
    await TimerWorker(services.pool, services.bus.handle, services.clock).fire_due()
    await follow.run_until_caught_up()


async def sms_to_unit(services: Any) -> list[str]:
    rows = await services.pool.fetch(
        "SELECT data->>'dedup_key' AS k FROM events WHERE type = 'NotificationRequested' "
        "AND data->>'to' = '13326435929' ORDER BY position")
    return [r["k"] for r in rows]


async def test_silent_unit_is_chased_until_it_answers(wired: Any, clock: FakeClock) -> None:
    bus = wired.bus
    cid = (await bus.handle(RegisterCase(category="complaint", channel="phone", description="噪音",
                                         caller=CallerInfo(phone="13800138000")))).case_id
    await bus.handle(DispatchCase(case_id=cid, expected_version=0, to="U001"))
    await step(wired)
    assert await sms_to_unit(wired) == [f"dispatch:{cid}:1"]
    clock.advance(timedelta(minutes=29))
    await step(wired)
    assert len(await sms_to_unit(wired)) == 1  # not overdue yet
    clock.advance(timedelta(minutes=1))
    await step(wired)
    clock.advance(timedelta(minutes=14))
    await step(wired)  # within the interval: no second chase
    clock.advance(timedelta(minutes=1))
    await step(wired)
    assert await sms_to_unit(wired) == [f"dispatch:{cid}:1", f"chase:{cid}:confirmation:1",
                                        f"chase:{cid}:confirmation:2"]
    [timer] = await pending(wired.pool, f"case:{cid}:")
    assert timer.key == f"case:{cid}:confirmation" and timer.due_at == clock.now() + timedelta(minutes=15)
    state = await bus.handle(ConfirmCase(case_id=cid, expected_version=3, actor="unit:U001"))
    await step(wired)
    assert [t.key for t in await pending(wired.pool, f"case:{cid}:")] == [f"case:{cid}:completion"]
    state = await bus.handle(CompleteCase(case_id=cid, expected_version=state.version, actor="unit:U001"))
    await step(wired)
    [archive] = await pending(wired.pool, f"case:{cid}:")
    assert archive.due_at == clock.now() + timedelta(hours=24)
    await bus.handle(RecordCallback(case_id=cid, expected_version=state.version, outcome="unsatisfied"))
    await step(wired)  # the call-back brings the archive forward to now
    assert (await load_case(wired.store, cid)).status == "archived"
    assert await pending(wired.pool, f"case:{cid}:") == []
