"""Events of a case after registration, and how each folds into `CaseState`.

The lifecycle (docs/cases-sla.md): accepted -> classified -> dispatched ->
confirmed | rejected (re-dispatch) -> in_progress (feedback) -> completed ->
called_back -> archived; `close` ends a case at any point; a closed or archived
case may be supplemented. Every event carries the deadlines decided when it
happened, so a replay never depends on today's configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dispatch.core.messages import Event, event

if TYPE_CHECKING:
    from dispatch.cases.registration import CaseState


@event
@dataclass(frozen=True, slots=True)
class CaseClassified(Event):
    """An agent set the case's category and priority (分理); the response deadline follows."""

    case_id: str
    category: str
    priority: int
    deadline: datetime
    by: str | None
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class CaseDispatched(Event):
    """The case was transferred to a unit or provider, who must confirm by `confirm_by`."""

    case_id: str
    assignee: str
    assignee_kind: str
    dispatched_at: datetime
    confirm_by: datetime
    by: str | None = None
    auto: bool = False
    note: str | None = None
    distance_m: float | None = None
    score: float | None = None
    wrong_rejection_of: str | None = None


@event
@dataclass(frozen=True, slots=True)
class CaseConfirmed(Event):
    """The receiving unit confirmed receipt; it must complete by `complete_by`."""

    case_id: str
    unit: str
    confirmed_at: datetime
    complete_by: datetime
    by: str | None = None


@event
@dataclass(frozen=True, slots=True)
class CaseRejected(Event):
    """The receiving unit says the case is not theirs; the center re-dispatches."""

    case_id: str
    unit: str
    reason: str
    rejected_at: datetime
    by: str | None = None


@event
@dataclass(frozen=True, slots=True)
class ExtensionRequested(Event):
    """The unit asked for more time, until `until`."""

    case_id: str
    unit: str
    until: datetime
    reason: str
    requested_at: datetime


@event
@dataclass(frozen=True, slots=True)
class ExtensionDecided(Event):
    """The center approved (the deadline moves to `until`) or refused an extension."""

    case_id: str
    approved: bool
    until: datetime | None
    decided_at: datetime
    by: str | None = None
    note: str | None = None


@event
@dataclass(frozen=True, slots=True)
class FeedbackGiven(Event):
    """The unit reported progress (反馈)."""

    case_id: str
    unit: str
    text: str
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class CaseCompleted(Event):
    """The matter is handled; the citizen must be called back by `callback_by`."""

    case_id: str
    completed_at: datetime
    callback_by: datetime
    archive_by: datetime
    handler: str | None = None
    result: str = ""
    by: str | None = None


@event
@dataclass(frozen=True, slots=True)
class CallbackRecorded(Event):
    """The citizen's answer to the call-back, counted for the handler (the unit)."""

    case_id: str
    outcome: str
    at: datetime
    handler: str | None = None
    note: str | None = None
    by: str | None = None


@event
@dataclass(frozen=True, slots=True)
class CaseArchived(Event):
    """The case was archived (within 24 h of completion)."""

    case_id: str
    at: datetime
    callback_missing: bool = False


@event
@dataclass(frozen=True, slots=True)
class CaseClosed(Event):
    """The case was closed by the center (answered at first contact, withdrawn, ...)."""

    case_id: str
    reason: str
    at: datetime
    by: str | None = None


@event
@dataclass(frozen=True, slots=True)
class CaseSupplemented(Event):
    """Information was added to a closed or archived case."""

    case_id: str
    text: str
    at: datetime
    by: str | None = None


@event
@dataclass(frozen=True, slots=True)
class CaseChased(Event):
    """The system chased a silent unit about an overdue stage (an SMS goes to the unit)."""

    case_id: str
    stage: str
    unit: str
    attempt: int
    at: datetime


def _classified(s: CaseState, e: CaseClassified) -> None:
    s.status = "classified"
    s.category, s.priority, s.deadline = e.category, e.priority, e.deadline


def _dispatched(s: CaseState, e: CaseDispatched) -> None:
    s.status = "dispatched"
    s.assigned_to, s.assignee_kind = e.assignee, e.assignee_kind
    s.dispatched_at = s.dispatched_at or e.dispatched_at
    s.last_dispatched_at = s.last_touched_at = e.dispatched_at
    s.confirm_by = e.confirm_by
    s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None


def _confirmed(s: CaseState, e: CaseConfirmed) -> None:
    s.status = "confirmed"
    s.confirmed_at = s.last_touched_at = e.confirmed_at
    s.deadline_from, s.deadline = e.confirmed_at, e.complete_by
    s.complete_by = e.complete_by
    s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None


def _rejected(s: CaseState, e: CaseRejected) -> None:
    s.status = "rejected"
    s.rejected_by = (*s.rejected_by, e.unit)
    s.assigned_to = s.assignee_kind = s.confirm_by = None
    s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None


def _extension_requested(s: CaseState, e: ExtensionRequested) -> None:
    s.pending_extension = e.until
    s.last_touched_at = e.requested_at


def _extension_decided(s: CaseState, e: ExtensionDecided) -> None:
    s.pending_extension = None
    if e.approved and e.until is not None:
        s.deadline = s.complete_by = e.until
        s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None


def _feedback(s: CaseState, e: FeedbackGiven) -> None:
    s.status = "in_progress"
    s.last_touched_at = e.at
    s.feedback_count += 1


def _completed(s: CaseState, e: CaseCompleted) -> None:
    s.status = "completed"
    s.completed_at = s.last_touched_at = e.completed_at
    s.callback_by, s.handler, s.result = e.callback_by, e.handler, e.result
    s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None


def _callback(s: CaseState, e: CallbackRecorded) -> None:
    s.callback_outcome, s.callback_at = e.outcome, e.at
    if s.status == "completed":
        s.status = "called_back"


def _archived(s: CaseState, e: CaseArchived) -> None:
    s.status, s.archived_at = "archived", e.at


def _closed(s: CaseState, e: CaseClosed) -> None:
    s.status, s.closed_at = "closed", e.at
    s.chase_stage = None


def _supplemented(s: CaseState, e: CaseSupplemented) -> None:
    s.supplement_count += 1


def _chased(s: CaseState, e: CaseChased) -> None:
    s.chase_stage, s.chase_count, s.last_chased_at = e.stage, e.attempt, e.at


APPLIERS: dict[type[Event], Callable[[Any, Any], None]] = {
    CaseClassified: _classified,
    CaseDispatched: _dispatched,
    CaseConfirmed: _confirmed,
    CaseRejected: _rejected,
    ExtensionRequested: _extension_requested,
    ExtensionDecided: _extension_decided,
    FeedbackGiven: _feedback,
    CaseCompleted: _completed,
    CallbackRecorded: _callback,
    CaseArchived: _archived,
    CaseClosed: _closed,
    CaseSupplemented: _supplemented,
    CaseChased: _chased,
}
"""How each lifecycle event changes `CaseState` (used by `CaseState.apply`)."""
