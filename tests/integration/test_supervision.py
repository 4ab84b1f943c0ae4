"""Supervision on real PostgreSQL: durable timers chase a silent unit by SMS, then archive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from dispatch.cases.actions import (
    CompleteCase,
    ConfirmCase,
    DecideExtension,
    DispatchCase,
    RecordCallback,
    RejectCase,
    RequestExtension,
    SetReminder,
)
from dispatch.cases.events import CallerInfo
from dispatch.cases.registration import RegisterCase
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import load_case
from dispatch.core.clock import FakeClock
from dispatch.core.texts import LOCAL_TIME
from dispatch.core.timers import TimerWorker, pending
from dispatch.notify.outbox import MAX_TEXT
from dispatch.supervision.chasing import CaseFollowUp
from eventstore.subscriptions import ReactorRunner
from gateway.bootstrap import build_services, close_services
from gateway.settings import Settings
from tests.conftest import stored_events


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
    requested = await stored_events(services.pool, "type = 'NotificationRequested'")
    return [e.data["dedup_key"] for e in requested if e.data["to"] == "13326435929"]


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
    assert await sms_to_unit(wired) == [f"dispatch:{cid}:1", f"chase:{cid}:2", f"chase:{cid}:3"]
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


async def test_a_unit_given_the_case_again_is_chased_by_sms_again(wired: Any, clock: FakeClock) -> None:
    """A case rejected and dispatched back to the unit is a new confirmation stage: overdue, the
    unit gets a chase SMS again (the first run's `chase` key must not swallow it)."""
    bus = wired.bus
    cid = (await bus.handle(RegisterCase(category="complaint", channel="phone", description="噪音",
                                         caller=CallerInfo(phone="13800138000")))).case_id
    state = await bus.handle(DispatchCase(case_id=cid, expected_version=0, to="U001"))
    clock.advance(timedelta(minutes=30))
    await step(wired)
    state = await load_case(wired.store, cid)
    state = await bus.handle(RejectCase(case_id=cid, expected_version=state.version, reason="非本单位",
                                        actor="unit:U001"))
    await bus.handle(DispatchCase(case_id=cid, expected_version=state.version, to="U001"))
    clock.advance(timedelta(minutes=30))
    await step(wired)
    sent = await sms_to_unit(wired)
    assert [k.split(":")[0] for k in sent] == ["dispatch", "chase", "dispatch", "chase"]
    assert len(set(sent)) == 4


async def test_the_dispatch_sms_names_the_confirmation_limit_configured(
    settings: Settings, clock: FakeClock,
) -> None:
    """The unit's dispatch SMS states the confirmation limit in force (`INTAKE_SLA_CONFIRM_MINUTES`),
    not a fixed 30 minutes: with 60 configured, a unit told 30 would be chased after 60."""
    services = await build_services(replace(settings, sla=SlaConfig(confirm_minutes=60)), clock=clock)
    try:
        await services.pool.execute(
            "INSERT INTO ref_units (id, name, phone) VALUES ('U001', 'crew', '13326435929')")
        cid = (await services.bus.handle(RegisterCase(
            category="complaint", channel="phone", description="噪音",
            caller=CallerInfo(phone="13800138000")))).case_id
        await services.bus.handle(DispatchCase(case_id=cid, expected_version=0, to="U001"))
        await step(services)
        [sms] = [e.data["text"] for e in await stored_events(services.pool, "type = 'NotificationRequested'")
                 if e.data["to"] == "13326435929"]
        assert "60分钟" in sms and "30分钟" not in sms
    finally:
        await close_services(services)


async def to_citizen(services: Any) -> list[tuple[str, str, str, str]]:
    rows = [e.data for e in await stored_events(services.pool, "type = 'NotificationRequested'")]
    return [(r["dedup_key"].split(":", 1)[0], r["channel"], r["to"], r["text"])
            for r in rows if r["to"] != "13326435929"]


async def test_the_citizen_is_told_of_the_transfer_the_delay_and_an_extension(
    wired: Any, clock: FakeClock,
) -> None:
    bus = wired.bus
    cid = (await bus.handle(RegisterCase(category="complaint", channel="phone", description="噪音",
                                         caller=CallerInfo(phone="13800138000")))).case_id
    state = await bus.handle(DispatchCase(case_id=cid, expected_version=0, to="U001"))
    await step(wired)
    clock.advance(timedelta(minutes=31))
    await step(wired)  # first chase: the citizen hears of the delay
    clock.advance(timedelta(minutes=15))
    await step(wired)  # second chase of the same stage: the unit is chased, the citizen not told again
    state = await load_case(wired.store, cid)
    state = await bus.handle(ConfirmCase(case_id=cid, expected_version=state.version, actor="unit:U001"))
    until = clock.now() + timedelta(days=5)
    state = await bus.handle(RequestExtension(case_id=cid, expected_version=state.version, actor="unit:U001",
                                              until=until, reason="需协调供水公司停水检修"))
    await bus.handle(DecideExtension(case_id=cid, expected_version=state.version, approve=True))
    await step(wired)
    told = await to_citizen(wired)
    assert [(k, c, t) for k, c, t, _ in told] == [
        ("transfer", "sms", "13800138000"), ("delayed", "sms", "13800138000"),
        ("extended", "sms", "13800138000")]
    assert "需协调供水公司停水检修" in told[2][3]
    local = until.astimezone(LOCAL_TIME)
    assert f"{local:%m月%d日%H:%M}" in told[2][3]  # Beijing time, not UTC


async def test_an_extension_with_a_long_reason_is_told_shortened_and_the_follow_up_goes_on(
    wired: Any, clock: FakeClock,
) -> None:
    """The reason is the unit's free text: a message over the outbox's limit stopped the follow-up
    policy at that event (retried for ever), and every case's transfer SMS and chase timer with it."""
    bus = wired.bus
    cid = (await bus.handle(RegisterCase(category="complaint", channel="phone", description="噪音",
                                         caller=CallerInfo(phone="13800138000")))).case_id
    state = await bus.handle(DispatchCase(case_id=cid, expected_version=0, to="U001"))
    state = await bus.handle(ConfirmCase(case_id=cid, expected_version=state.version, actor="unit:U001"))
    state = await bus.handle(RequestExtension(case_id=cid, expected_version=state.version, actor="unit:U001",
                                              until=clock.now() + timedelta(days=5), reason="材料未到" * 450))
    await bus.handle(DecideExtension(case_id=cid, expected_version=state.version, approve=True))
    later = (await bus.handle(RegisterCase(category="complaint", channel="phone", description="路灯",
                                           caller=CallerInfo(phone="13800138001")))).case_id
    await bus.handle(DispatchCase(case_id=later, expected_version=0, to="U001"))
    await step(wired)
    told = {(k, t): text for k, _, t, text in await to_citizen(wired)}
    extended = told[("extended", "13800138000")]
    assert len(extended) == MAX_TEXT and extended.endswith("…") and "材料未到" in extended
    assert ("transfer", "13800138001") in told
    assert [t.key for t in await pending(wired.pool, f"case:{later}:")] == [f"case:{later}:confirmation"]


async def test_a_wechat_follower_is_told_over_wechat(wired: Any, clock: FakeClock) -> None:
    bus = wired.bus
    cid = (await bus.handle(RegisterCase(category="complaint", channel="wechat", description="路灯不亮",
                                         caller=CallerInfo(openid="oFollower0001")))).case_id
    await bus.handle(DispatchCase(case_id=cid, expected_version=0, to="U001"))
    await step(wired)
    told = await to_citizen(wired)
    assert [(k, c, t) for k, c, t, _ in told] == [("transfer", "wechat", "oFollower0001")]
    assert "电话" not in told[0][3]  # no phone to keep on: the follower gave none


async def test_a_reminder_comes_due_once_and_a_moved_one_at_its_new_time(
    wired: Any, clock: FakeClock,
) -> None:
    bus = wired.bus
    cid = (await bus.handle(RegisterCase(category="todo", channel="phone", description="三天后回复王女士",
                                         caller=CallerInfo(phone="13800138000")))).case_id
    first = clock.now() + timedelta(hours=1)
    state = await bus.handle(SetReminder(case_id=cid, expected_version=0, actor="agent:A7",
                                         remind_at=first, note="回电"))
    await step(wired)
    moved = clock.now() + timedelta(hours=2)
    await bus.handle(SetReminder(case_id=cid, expected_version=state.version, actor="agent:A7",
                                 remind_at=moved, note="回电确认"))
    await step(wired)
    [timer] = await pending(wired.pool, f"case:{cid}:reminder")
    assert timer.due_at == moved
    clock.advance(timedelta(hours=1, minutes=1))
    await step(wired)
    assert (await load_case(wired.store, cid)).reminder_at == moved  # not at the old time
    clock.advance(timedelta(hours=1))
    await step(wired)
    state = await load_case(wired.store, cid)
    assert state.reminder_at is None and state.reminded_at == clock.now()
    due = await stored_events(wired.pool, "type = 'ReminderDue'")
    assert [(d.data["agent"], d.data["note"]) for d in due] == [("A7", "回电确认")]
    assert await pending(wired.pool, f"case:{cid}:reminder") == []


async def test_a_cleared_reminder_never_comes(wired: Any, clock: FakeClock) -> None:
    bus = wired.bus
    cid = (await bus.handle(RegisterCase(category="todo", channel="phone", description="待办",
                                         caller=CallerInfo(phone="13800138000")))).case_id
    state = await bus.handle(SetReminder(case_id=cid, expected_version=0, actor="agent:A7",
                                         remind_at=clock.now() + timedelta(minutes=10)))
    await step(wired)
    await bus.handle(SetReminder(case_id=cid, expected_version=state.version, actor="agent:A7",
                                 remind_at=None))
    await step(wired)
    assert await pending(wired.pool, f"case:{cid}:reminder") == []
    clock.advance(timedelta(minutes=11))
    await step(wired)
    assert await wired.pool.fetch("SELECT 1 FROM events WHERE type = 'ReminderDue'") == []
