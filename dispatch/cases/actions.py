"""Operator actions on a case: commands, the pure rules deciding their events, one handler.

Every action names the case and (from the API) the `expected_version` it was
decided on; a stale one raises `StaleVersion` (409). Actors are `role:subject`
strings; a `unit:` actor may act only on a case assigned to it. Handlers
answer the case state after the action, so callers never wait for projections.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatch.cases.events import (
    CallbackRecorded,
    CaseArchived,
    CaseClassified,
    CaseClosed,
    CaseCompleted,
    CaseConfirmed,
    CaseDispatched,
    CaseRejected,
    CaseSupplemented,
    ExtensionDecided,
    ExtensionRequested,
    FeedbackGiven,
    ReminderDue,
    ReminderSet,
)
from dispatch.cases.registration import CATEGORIES, RESPONSE_LIMIT_MINUTES
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import CaseState, case_stream, load_case
from dispatch.cases.status import BUSY, CALLBACK_DUE, OPEN, WAITING, WORKING, CaseStatus
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, KeyReused, NotAllowed, StaleVersion
from dispatch.core.messages import Command, Event, metadata, to_new_event
from dispatch.core.timers import timer_command
from eventstore import EventStore, WrongExpectedVersion

CALLBACK_OUTCOMES: tuple[str, ...] = ("satisfied", "unsatisfied", "not_confirmed")
MAX_REMINDER_NOTE = 200
SCORES: tuple[int, ...] = (1, 2, 3, 4, 5)
"""The citizen's satisfaction scores of a call-back (5 = very satisfied)."""


class InvalidScore(InvalidCommand):
    """A call-back score that is not a whole number from 1 to 5."""

    code = "bad_score"
ASSIGNEE_KINDS: tuple[str, ...] = ("unit", "provider")


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseAction(Command):
    """Base of the operator actions: which case, on which version, by whom."""

    case_id: str
    expected_version: int | None = None
    actor: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifyCase(CaseAction):
    """Set category and/or priority before dispatch (分理)."""

    category: str | None = None
    priority: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchCase(CaseAction):
    """Transfer the case to a unit or provider (also re-dispatch after a rejection)."""

    to: str
    kind: str = "unit"
    note: str | None = None
    auto: bool = False
    distance_m: float | None = None
    score: float | None = None
    wrong_rejection: bool = False
    level: str | None = None  # the dispatcher's organisation node; the case's owner from now on


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmCase(CaseAction):
    """The receiving unit confirms receipt."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectCase(CaseAction):
    """The receiving unit rejects a case that is not theirs."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestExtension(CaseAction):
    """The unit asks to complete later, by `until`."""

    until: datetime
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DecideExtension(CaseAction):
    """The center approves or refuses the pending extension."""

    approve: bool
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveFeedback(CaseAction):
    """The unit reports progress."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteCase(CaseAction):
    """The matter is handled."""

    result: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordCallback(CaseAction):
    """Record the citizen's answer to the call-back."""

    outcome: str
    note: str | None = None
    case_score: int | None = None
    unit_score: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseCase(CaseAction):
    """Close the case (answered at first contact, withdrawn, duplicate...)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SupplementCase(CaseAction):
    """Add information to a closed or archived case."""

    text: str


@timer_command
@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveCase(CaseAction):
    """Archive a completed case (fired by a timer at most 24 h after completion)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SetReminder(CaseAction):
    """Remind the agent setting it of this case at `remind_at` (None clears the reminder)."""

    remind_at: datetime | None
    note: str = ""


@timer_command
@dataclass(frozen=True, slots=True, kw_only=True)
class RemindAgent(CaseAction):
    """A reminder's time came (fired by its timer; stale when the reminder moved or was cleared)."""

    remind_at: datetime


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise NotAllowed(message)


def _acting_unit(s: CaseState, actor: str | None) -> str:
    """The assignee acting; a `unit:` actor must be the assignee itself."""
    _need(s.assigned_to is not None, f"case {s.case_id} is not assigned to anyone")
    assert s.assigned_to is not None
    if actor is not None and actor.startswith("unit:"):
        _need(actor.split(":", 1)[1] == s.assigned_to, f"case {s.case_id} is not assigned to you")
    return s.assigned_to


def decide_classify(s: CaseState, c: ClassifyCase, now: datetime, cfg: SlaConfig) -> list[Event]:
    """Re-classify a case that has not been dispatched; the response deadline follows priority."""
    _need(s.status in WAITING, f"case {s.case_id} is {s.status}; classify before dispatch")
    category = c.category or s.category
    priority = c.priority if c.priority is not None else s.priority
    if category not in CATEGORIES:
        raise InvalidCommand(f"unknown category {category!r}", field="category")
    if priority not in RESPONSE_LIMIT_MINUTES:
        raise InvalidCommand("priority must be 1, 2, 3 or 4", field="priority")
    assert s.accepted_at is not None
    deadline = s.accepted_at + cfg.response_limit(priority)
    return [CaseClassified(s.case_id, category, priority, deadline, c.actor, now)]


def decide_dispatch(s: CaseState, c: DispatchCase, now: datetime, cfg: SlaConfig) -> list[Event]:
    """Transfer an open case; re-dispatching to the unit that rejected it marks that rejection wrong."""
    _need(s.status in OPEN, f"case {s.case_id} is {s.status}; it cannot be dispatched")
    if c.kind not in ASSIGNEE_KINDS:
        raise InvalidCommand(f"kind must be one of {', '.join(ASSIGNEE_KINDS)}", field="kind")
    if not c.to:
        raise InvalidCommand("dispatch needs a unit or provider id", field="to")
    # Rejected and not dispatched since (perhaps re-classified meanwhile): its last rejecter.
    last_rejecter = s.rejected_by[-1] if s.assigned_to is None and s.rejected_by else None
    wrong = last_rejecter if last_rejecter and (c.wrong_rejection or c.to == last_rejecter) else None
    return [CaseDispatched(
        s.case_id, c.to, c.kind, now, now + cfg.confirm_limit(), by=c.actor, auto=c.auto,
        note=c.note, distance_m=c.distance_m, score=c.score, wrong_rejection_of=wrong, level=c.level,
    )]


def decide_confirm(s: CaseState, c: ConfirmCase, now: datetime, cfg: SlaConfig) -> list[Event]:
    """The assignee confirms; the completion deadline starts."""
    _need(s.status == CaseStatus.DISPATCHED,
          f"case {s.case_id} is {s.status}; only a dispatched case is confirmed")
    unit = _acting_unit(s, c.actor)
    return [CaseConfirmed(s.case_id, unit, now, now + cfg.complete_limit(s.priority), by=c.actor)]


def decide_reject(s: CaseState, c: RejectCase, now: datetime, cfg: SlaConfig) -> list[Event]:
    """The assignee hands the case back with a reason."""
    _need(s.status in {CaseStatus.DISPATCHED, CaseStatus.CONFIRMED},
          f"case {s.case_id} is {s.status}; it cannot be rejected")
    if not c.reason.strip():
        raise InvalidCommand("a rejection needs a reason", field="reason")
    return [CaseRejected(s.case_id, _acting_unit(s, c.actor), c.reason, now, by=c.actor)]


def decide_request_extension(
    s: CaseState, c: RequestExtension, now: datetime, cfg: SlaConfig
) -> list[Event]:
    """The assignee asks for a later completion deadline (one request at a time)."""
    _need(s.status in WORKING, f"case {s.case_id} is {s.status}; confirm it before asking for time")
    _need(s.pending_extension is None, f"case {s.case_id} already has an extension request pending")
    if s.complete_by is not None and c.until <= s.complete_by:
        raise InvalidCommand("an extension must end after the current deadline", field="until")
    if not c.reason.strip():
        raise InvalidCommand("an extension request needs a reason", field="reason")
    unit = _acting_unit(s, c.actor)
    return [ExtensionRequested(s.case_id, unit, c.until, c.reason, now)]


def decide_extension(s: CaseState, c: DecideExtension, now: datetime, cfg: SlaConfig) -> list[Event]:
    """Approve (the deadline moves) or refuse the pending request."""
    _need(s.pending_extension is not None, f"case {s.case_id} has no extension request pending")
    until = s.pending_extension if c.approve else None
    return [ExtensionDecided(s.case_id, c.approve, until, now, by=c.actor, note=c.note)]


def decide_feedback(s: CaseState, c: GiveFeedback, now: datetime, cfg: SlaConfig) -> list[Event]:
    """The assignee reports progress on a confirmed case."""
    _need(s.status in WORKING, f"case {s.case_id} is {s.status}; confirm it before feedback")
    if not c.text.strip():
        raise InvalidCommand("feedback needs a text", field="text")
    return [FeedbackGiven(s.case_id, _acting_unit(s, c.actor), c.text, now)]


def decide_complete(s: CaseState, c: CompleteCase, now: datetime, cfg: SlaConfig) -> list[Event]:
    """The matter is handled; the call-back and archive limits start."""
    _need(s.status in BUSY, f"case {s.case_id} is {s.status}; it cannot be completed")
    handler = _acting_unit(s, c.actor)
    due = s.complete_by
    if s.status == CaseStatus.DISPATCHED and s.confirm_by is not None:  # unconfirmed: as if at its limit
        due = s.confirm_by + cfg.complete_limit(s.priority)
    return [CaseCompleted(
        s.case_id, now, now + cfg.callback_limit(), now + cfg.archive_limit(), handler=handler,
        result=c.result, by=c.actor, due=due,
    )]


def decide_callback(s: CaseState, c: RecordCallback, now: datetime, cfg: SlaConfig) -> list[Event]:
    """Record the citizen's answer once, after completion (also late, after archiving)."""
    if c.outcome not in CALLBACK_OUTCOMES:
        raise InvalidCommand(f"outcome must be one of {', '.join(CALLBACK_OUTCOMES)}", field="outcome")
    _need(s.completed_at is not None and s.status in CALLBACK_DUE,
          f"case {s.case_id} is {s.status}; call back after completion")
    for name, score in (("case_score", c.case_score), ("unit_score", c.unit_score)):
        if score is not None and (type(score) is not int or score not in SCORES):
            raise InvalidScore(f"{name} must be a whole number from 1 to 5", field=name)
    _need(s.callback_outcome is None, f"case {s.case_id} was already called back")
    return [CallbackRecorded(s.case_id, c.outcome, now, s.handler, c.note, c.actor,
                             case_score=c.case_score, unit_score=c.unit_score)]


def decide_archive(s: CaseState, c: ArchiveCase, now: datetime, cfg: SlaConfig) -> list[Event]:
    """Archive a completed case; nothing to do for one archived or closed already."""
    if s.status not in {CaseStatus.COMPLETED, CaseStatus.CALLED_BACK}:
        return []
    return [CaseArchived(s.case_id, now, callback_missing=s.callback_outcome is None)]


def decide_close(s: CaseState, c: CloseCase, now: datetime, cfg: SlaConfig) -> list[Event]:
    """Close any case not closed yet."""
    _need(s.status != CaseStatus.CLOSED, f"case {s.case_id} is already closed")
    if not c.reason.strip():
        raise InvalidCommand("closing needs a reason", field="reason")
    return [CaseClosed(s.case_id, c.reason, now, c.actor)]


def decide_supplement(s: CaseState, c: SupplementCase, now: datetime, cfg: SlaConfig) -> list[Event]:
    """Supplement a closed or archived case, from `supplement_after_days` after it ended."""
    ended = s.closed_at or s.archived_at
    _need(s.status in {CaseStatus.CLOSED, CaseStatus.ARCHIVED} and ended is not None,
          f"case {s.case_id} is {s.status}; only a closed or archived case is supplemented")
    assert ended is not None
    opens = ended + cfg.supplement_after()
    _need(now >= opens, f"case {s.case_id} may be supplemented from {opens.isoformat()}")
    if not c.text.strip():
        raise InvalidCommand("a supplement needs a text", field="text")
    return [CaseSupplemented(s.case_id, c.text, now, c.actor)]


def decide_set_reminder(s: CaseState, c: SetReminder, now: datetime, cfg: SlaConfig) -> list[Event]:
    """Set, move or clear the reminder of a case still running."""
    _need(s.status not in {CaseStatus.CLOSED, CaseStatus.ARCHIVED},
          f"case {s.case_id} is {s.status}; a reminder needs a case still running")
    if c.remind_at is not None and c.remind_at <= now:
        raise InvalidCommand("a reminder must be in the future", field="remind_at")
    if len(c.note) > MAX_REMINDER_NOTE:
        raise InvalidCommand(f"a reminder's note is at most {MAX_REMINDER_NOTE} characters", field="note")
    return [ReminderSet(s.case_id, c.remind_at, c.note.strip(), c.actor, now)]


def decide_remind(s: CaseState, c: RemindAgent, now: datetime, cfg: SlaConfig) -> list[Event]:
    """The reminder is due, unless it was moved or cleared since its timer was set, or the case ended."""
    if s.reminder_at != c.remind_at or s.status in {CaseStatus.CLOSED, CaseStatus.ARCHIVED}:
        return []
    by = s.reminder_by or ""
    agent = by.split(":", 1)[1] if by.startswith("agent:") else None
    return [ReminderDue(s.case_id, c.remind_at, agent, s.reminder_note, now)]


Decider = Callable[[CaseState, Any, datetime, SlaConfig], Sequence[Event]]
DECIDERS: dict[type[CaseAction], Decider] = {
    ClassifyCase: decide_classify,
    DispatchCase: decide_dispatch,
    ConfirmCase: decide_confirm,
    RejectCase: decide_reject,
    RequestExtension: decide_request_extension,
    DecideExtension: decide_extension,
    GiveFeedback: decide_feedback,
    CompleteCase: decide_complete,
    RecordCallback: decide_callback,
    ArchiveCase: decide_archive,
    CloseCase: decide_close,
    SupplementCase: decide_supplement,
    SetReminder: decide_set_reminder,
    RemindAgent: decide_remind,
}


async def apply_events(
    store: EventStore, state: CaseState, events: Sequence[Event], *, actor: str | None,
    idempotency_key: str | None = None,
) -> CaseState:
    """Append events decided on `state` (stale -> `StaleVersion`) and fold them in."""
    if not events:
        return state
    meta = metadata(actor=actor, correlation_id=state.case_id)
    stream = case_stream(state.case_id)
    try:
        result = await store.append(
            stream, [to_new_event(e, meta, subject=state.subject) for e in events], state.version,
            idempotency_key=idempotency_key,
        )
    except WrongExpectedVersion as exc:
        raise StaleVersion(stream, state.version, exc.actual) from exc
    if result.duplicate:
        return await load_case(store, state.case_id)
    for offset, evt in enumerate(events):
        state.apply(evt, result.first_version + offset)
    return state


async def handle_action(
    cmd: CaseAction, *, store: EventStore, clock: Clock, sla: SlaConfig
) -> CaseState:
    """Load the case, check the version, decide and append; answer the new state."""
    if cmd.idempotency_key is not None and (seen := await store.find_by_idempotency_key(cmd.idempotency_key)):
        if seen.stream != case_stream(cmd.case_id):  # not a retry: an earlier request on another stream
            raise KeyReused("this Idempotency-Key was already used for another request")
        return await load_case(store, cmd.case_id)
    state = await load_case(store, cmd.case_id)
    if cmd.expected_version is not None and cmd.expected_version != state.version:
        raise StaleVersion(case_stream(cmd.case_id), cmd.expected_version, state.version)
    events = DECIDERS[type(cmd)](state, cmd, clock.now(), sla)
    return await apply_events(
        store, state, events, actor=cmd.actor, idempotency_key=cmd.idempotency_key
    )


HANDLERS: dict[type[Command], Handler] = {cmd: handle_action for cmd in DECIDERS}
