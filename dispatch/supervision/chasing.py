"""Supervision (督办): chasing silent units, and the timers and SMS the lifecycle needs.

Chasing policy: a stage is overdue once its limit passes (confirmation:
`confirm_by`, 30 min after dispatch; completion: `complete_by`). While it is,
the unit is chased (`CaseChased` + an SMS to the unit) whenever it has been
silent for a full `chase_interval` - since the deadline, its last action
(feedback, extension request) or the last chase - until the stage ends
(confirmed / rejected / completed / closed) or an extension moves the deadline.

`CaseFollowUp` is the reactor that turns case events into durable timers and
outbound messages: the citizen is told of the transfer (`CaseDispatched`), of an
approved extension with its reason and new deadline (`ExtensionDecided`) and,
once per stage, of a delay when the unit is first chased (`CaseChased`), by SMS
or, without a phone, over WeChat; the unit gets the dispatch and chase SMS; and
the confirmation, completion, archive and reminder timers are set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from dispatch.cases.actions import ArchiveCase, RemindAgent, apply_events
from dispatch.cases.events import (
    CallbackRecorded,
    CaseChased,
    CaseClosed,
    CaseCompleted,
    CaseConfirmed,
    CaseDispatched,
    CaseRejected,
    ExtensionDecided,
    ReminderSet,
)
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import CaseState, load_case
from dispatch.cases.status import WORKING, CaseStatus
from dispatch.core.bus import Handler, MessageBus
from dispatch.core.capability import Deps
from dispatch.core.clock import Clock
from dispatch.core.messages import Command, Event, from_recorded
from dispatch.core.phone import mask_phone
from dispatch.core.texts import CHINESE, LOCAL_TIME, Texts
from dispatch.core.timers import Reschedule, cancel, schedule, timer_command
from dispatch.gis.reference import contact_phone
from eventstore import EventStore, RecordedEvent

log = structlog.get_logger(__name__)

STAGES: tuple[str, ...] = ("confirmation", "completion")


@timer_command
@dataclass(frozen=True, slots=True)
class ChaseCase(Command):
    """Check one stage of a case and chase its unit if it is overdue and silent (timer)."""

    case_id: str
    stage: str


def stage_deadline(s: CaseState, stage: str) -> datetime | None:
    """The deadline of a stage while the stage is running, else None."""
    if stage == "confirmation" and s.status == CaseStatus.DISPATCHED:
        return s.confirm_by
    if stage == "completion" and s.status in WORKING:
        return s.complete_by
    return None


def next_chase_at(s: CaseState, stage: str, cfg: SlaConfig) -> datetime | None:
    """When the unit is next due a chase for this stage (None: the stage is over)."""
    due = stage_deadline(s, stage)
    if due is None or s.assigned_to is None:
        return None
    interval = cfg.chase_interval()
    candidates = [due]
    if s.last_touched_at is not None:
        candidates.append(s.last_touched_at + interval)
    if s.chase_stage == stage and s.last_chased_at is not None:
        candidates.append(s.last_chased_at + interval)
    return max(candidates)


def decide_chase(
    s: CaseState, stage: str, now: datetime, cfg: SlaConfig
) -> tuple[list[Event], datetime | None]:
    """The chase to record now (if due) and when to look again (None: stop)."""
    at = next_chase_at(s, stage, cfg)
    if at is None or s.assigned_to is None:
        return [], None
    if now < at:
        return [], at
    attempt = s.chase_count + 1 if s.chase_stage == stage else 1
    return [CaseChased(s.case_id, stage, s.assigned_to, attempt, now)], now + cfg.chase_interval()


async def chase_case(
    cmd: ChaseCase, *, store: EventStore, clock: Clock, sla: SlaConfig
) -> Reschedule | None:
    """Handle `ChaseCase`: record a due chase; answer when the timer should fire again."""
    state = await load_case(store, cmd.case_id)
    events, again = decide_chase(state, cmd.stage, clock.now(), sla)
    if events:
        chase = events[0]
        assert isinstance(chase, CaseChased)
        # The version the chase is decided on names this run of the stage: a re-dispatched case
        # or an extended deadline chases from attempt 1 again, and must not read as a repeat.
        key = f"chase:{cmd.case_id}:{cmd.stage}:{chase.attempt}:{state.version}"
        await apply_events(store, state, events, actor="system:supervision", idempotency_key=key)
    return None if again is None else Reschedule(again)


def timer_key(case_id: str, purpose: str) -> str:
    """The timer key of a case's confirmation / completion chase or archive timer."""
    return f"case:{case_id}:{purpose}"


class CaseFollowUp:
    """Reactor: lifecycle events -> durable timers and outbound SMS (idempotent)."""

    name = "case_followup"
    categories: frozenset[str] | None = frozenset({"case"})
    types = frozenset({"CaseDispatched", "CaseChased", "ExtensionDecided", "ReminderSet", "CaseConfirmed",
                       "CaseCompleted", "CallbackRecorded", "CaseRejected", "CaseClosed"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""

    def __init__(self, pool: asyncpg.Pool, bus: MessageBus, store: EventStore,
                 texts: Texts = CHINESE) -> None:
        self._pool, self._bus, self._store, self._texts = pool, bus, store, texts

    async def react(self, event: RecordedEvent) -> None:
        """Schedule or cancel timers and request messages for one case event."""
        evt = from_recorded(event)
        if isinstance(evt, CaseDispatched):
            await self._dispatched(evt, event.version)
        elif isinstance(evt, CaseChased):
            await self._sms_unit(evt.case_id, evt.unit, f"chase:{evt.case_id}:{event.version}",
                                 self._texts.say("supervision.chase", case_id=evt.case_id,
                                                 stage=self._texts.name("supervision.stage", evt.stage)))
            if evt.attempt == 1:
                await self._tell_citizen(evt.case_id, f"delayed:{evt.case_id}:{evt.stage}", "delayed",
                                         "supervision.delayed")
        elif isinstance(evt, ExtensionDecided) and evt.approved and evt.until is not None:
            await self._chase_at(evt.case_id, "completion", evt.until)
            state = await load_case(self._store, evt.case_id)
            await self._tell_citizen(
                evt.case_id, f"extended:{evt.case_id}:{event.version}", "extended", "supervision.extended",
                state=state, until=evt.until.astimezone(LOCAL_TIME), reason=state.extension_reason or "-")
        elif isinstance(evt, ReminderSet):
            key = timer_key(evt.case_id, "reminder")
            if evt.remind_at is None:
                await cancel(self._pool, key)
            else:
                await schedule(self._pool, key, evt.remind_at, RemindAgent(
                    case_id=evt.case_id, remind_at=evt.remind_at, actor="system:reminder"))
        elif evt is not None:
            await self._timers(evt)

    async def _timers(self, evt: Event) -> None:
        if isinstance(evt, CaseConfirmed):
            await cancel(self._pool, timer_key(evt.case_id, "confirmation"))
            await self._chase_at(evt.case_id, "completion", evt.complete_by)
        elif isinstance(evt, CaseCompleted):
            await cancel(self._pool, timer_key(evt.case_id, "completion"))
            await schedule(self._pool, timer_key(evt.case_id, "archive"), evt.archive_by,
                           ArchiveCase(case_id=evt.case_id, actor="system:archive"))
        elif isinstance(evt, CallbackRecorded):
            await schedule(self._pool, timer_key(evt.case_id, "archive"), evt.at,
                           ArchiveCase(case_id=evt.case_id, actor="system:archive"))
        elif isinstance(evt, (CaseRejected, CaseClosed)):
            for stage in STAGES:
                await cancel(self._pool, timer_key(evt.case_id, stage))

    async def _chase_at(self, case_id: str, stage: str, due: datetime) -> None:
        await schedule(self._pool, timer_key(case_id, stage), due, ChaseCase(case_id, stage))

    async def _dispatched(self, evt: CaseDispatched, version: int) -> None:
        await cancel(self._pool, timer_key(evt.case_id, "completion"))
        await self._chase_at(evt.case_id, "confirmation", evt.confirm_by)
        # The confirmation limit in force (INTAKE_SLA_CONFIRM_MINUTES), whole minutes rounded up.
        minutes = max(1, math.ceil((evt.confirm_by - evt.dispatched_at).total_seconds() / 60))
        await self._sms_unit(evt.case_id, evt.assignee, f"dispatch:{evt.case_id}:{version}",
                             self._texts.say("supervision.dispatch", case_id=evt.case_id, minutes=minutes))
        await self._tell_citizen(evt.case_id, f"transfer:{evt.case_id}:{version}", "transfer",
                                 "supervision.transfer")

    async def _tell_citizen(
        self, case_id: str, key: str, purpose: str, message: str, *, state: CaseState | None = None,
        **values: object,
    ) -> None:
        """A message to the case's citizen (SMS, else WeChat), if they can be reached."""
        state = state or await load_case(self._store, case_id)
        reach = state.caller.reach()
        if reach is not None and reach[0] == "wechat" and message == "supervision.transfer":
            message = "supervision.transfer_wechat"  # a follower without a phone: no call to wait for
        if reach is not None:
            await self._notify(key, reach[1], case_id, self._texts.say(message, case_id=case_id, **values),
                               purpose, channel=reach[0])

    async def _sms_unit(self, case_id: str, unit: str, key: str, text: str) -> None:
        phone = await contact_phone(self._pool, unit)
        if phone is None:
            log.warning("unit_without_phone", case_id=case_id, unit=unit)
            return
        await self._notify(key, phone, case_id, text, key.split(":", 1)[0])

    async def _notify(
        self, key: str, to: str, case_id: str, text: str, reason: str, *, channel: str = "sms",
    ) -> None:
        from dispatch.notify.outbox import RequestNotification

        log.info("message_requested", case_id=case_id, channel=channel,
                 to=mask_phone(to) if channel == "sms" else "openid", reason=reason)
        await self._bus.handle(RequestNotification(
            dedup_key=key, channel=channel, to=to, text=text, case_id=case_id, reason=reason,
            actor="system:supervision"))


def reactors(deps: Deps) -> Sequence[CaseFollowUp]:
    """The follow-up reactor."""
    return [CaseFollowUp(deps.pool, deps.bus, deps.store, deps.texts)]


HANDLERS: dict[type[Command], Handler] = {ChaseCase: chase_case}
