"""A case's state, folded from its stream: `CaseState` and one table of how each event folds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from dispatch.cases.events import (
    AWAITING_PHONE,
    CallbackRecorded,
    CallerInfo,
    CallerPhoneGiven,
    CaseAddedToIncident,
    CaseArchived,
    CaseChased,
    CaseClassified,
    CaseClosed,
    CaseCompleted,
    CaseConfirmed,
    CaseDispatched,
    CaseLegalHoldReleased,
    CaseLegalHoldSet,
    CaseLinked,
    CaseLocated,
    CaseMoved,
    CaseRegistered,
    CaseRejected,
    CaseSupplemented,
    CaseUnlinked,
    ExtensionDecided,
    ExtensionRequested,
    Fault,
    FeedbackGiven,
    LegalHold,
    MatchedPlace,
    Place,
    ReminderDue,
    ReminderSet,
)
from dispatch.cases.status import CaseStatus
from dispatch.core.errors import NotFound
from dispatch.core.messages import Event, from_recorded
from dispatch.core.personal import subject
from eventstore import EventStore, RecordedEvent


@dataclass(slots=True)
class CaseState:
    """A case's current state, folded from its events."""

    case_id: str
    version: int = -1
    status: CaseStatus = CaseStatus.NEW
    category: str = ""
    priority: int = 4
    channel: str = ""
    caller: CallerInfo = field(default_factory=CallerInfo)
    description: str = ""
    location: Place | None = None
    location_source: str | None = None
    matched_place: MatchedPlace | None = None
    address: str | None = None
    created_at: datetime | None = None
    accepted_at: datetime | None = None
    deadline: datetime | None = None
    assigned_to: str | None = None
    flags: tuple[str, ...] = ()
    missing_fields: tuple[str, ...] = ()
    elder_id: str | None = None
    linked_case_ids: tuple[str, ...] = ()
    incident_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    customer_type: str | None = None
    fault: Fault | None = None
    deadline_from: datetime | None = None
    assignee_kind: str | None = None
    dispatched_at: datetime | None = None
    last_dispatched_at: datetime | None = None
    confirm_by: datetime | None = None
    confirmed_at: datetime | None = None
    complete_by: datetime | None = None
    completed_at: datetime | None = None
    callback_by: datetime | None = None
    callback_outcome: str | None = None
    callback_at: datetime | None = None
    callback_case_score: int | None = None
    callback_unit_score: int | None = None
    handler: str | None = None
    result: str | None = None
    archived_at: datetime | None = None
    closed_at: datetime | None = None
    last_touched_at: datetime | None = None
    rejected_by: tuple[str, ...] = ()
    pending_extension: datetime | None = None
    extension_reason: str | None = None
    chase_stage: str | None = None
    chase_count: int = 0
    last_chased_at: datetime | None = None
    feedback_count: int = 0
    supplement_count: int = 0
    reminder_at: datetime | None = None
    reminder_note: str = ""
    reminder_by: str | None = None
    reminded_at: datetime | None = None
    account_number: str | None = None
    service_time: str | None = None
    special_needs: str | None = None
    call_id: str | None = None
    recording_id: str | None = None
    owner: str | None = None
    moved_by_hand: bool = False
    legal_hold: LegalHold | None = None

    @property
    def subject(self) -> str | None:
        """Whose personal data the case holds: its caller's, else its elder's (events of the
        case are sealed with that subject's key, `dispatch/core/personal.py`)."""
        return self.caller.data_subject() or subject("elder", self.elder_id)

    def apply(self, evt: Event, version: int) -> None:
        """Fold one event into the state; events this table does not know only move the version."""
        self.version = version
        applier = APPLIERS.get(type(evt))
        if applier is not None:
            applier(self, evt)


def _registered(s: CaseState, e: CaseRegistered) -> None:
    s.status = CaseStatus.ACCEPTED
    s.category, s.priority, s.channel = e.category, e.priority, e.channel
    s.caller, s.description = e.caller, e.description
    s.location, s.address = e.location, e.address
    s.location_source = "given" if e.location is not None else None
    s.created_at = s.accepted_at = s.deadline_from = e.accepted_at
    s.deadline = e.deadline
    s.flags, s.missing_fields = e.flags, e.missing_fields
    s.elder_id, s.customer_type, s.fault = e.elder_id, e.customer_type, e.fault
    s.account_number, s.service_time, s.special_needs = e.account_number, e.service_time, e.special_needs
    s.call_id, s.recording_id = registered_call(e), e.recording_id


def registered_call(e: CaseRegistered) -> str | None:
    """The call a case came from: the one the agent was answering (`call_id`), or the call a
    channel opened it from (its contact stream `call-<id>`); None for other contacts."""
    stream = e.contact_stream or ""
    return e.call_id or (stream.removeprefix("call-") if stream.startswith("call-") else None)


def _located(s: CaseState, e: CaseLocated) -> None:
    s.location, s.location_source, s.matched_place = e.location, e.source, e.place


def _phone_given(s: CaseState, e: CallerPhoneGiven) -> None:
    s.caller = replace(s.caller, phone=e.phone)
    s.flags = tuple(f for f in s.flags if f != AWAITING_PHONE)
    s.missing_fields = tuple(f for f in s.missing_fields if f != "caller.phone")


def _classified(s: CaseState, e: CaseClassified) -> None:
    s.status = CaseStatus.CLASSIFIED
    s.category, s.priority, s.deadline = e.category, e.priority, e.deadline


def _dispatched(s: CaseState, e: CaseDispatched) -> None:
    s.status = CaseStatus.DISPATCHED
    s.assigned_to, s.assignee_kind = e.assignee, e.assignee_kind
    s.dispatched_at = s.dispatched_at or e.dispatched_at
    s.last_dispatched_at = s.last_touched_at = e.dispatched_at
    s.confirm_by = e.confirm_by
    s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None
    _drop_extension_request(s)
    if e.level is not None:
        s.owner = e.level


def _moved(s: CaseState, e: CaseMoved) -> None:
    s.owner = e.owner
    s.moved_by_hand = s.moved_by_hand or e.move != "routed"


def _confirmed(s: CaseState, e: CaseConfirmed) -> None:
    s.status = CaseStatus.CONFIRMED
    s.confirmed_at = s.last_touched_at = e.confirmed_at
    s.deadline_from, s.deadline = e.confirmed_at, e.complete_by
    s.complete_by = e.complete_by
    s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None


def _rejected(s: CaseState, e: CaseRejected) -> None:
    s.status = CaseStatus.REJECTED
    s.rejected_by = (*s.rejected_by, e.unit)
    s.assigned_to = s.assignee_kind = s.confirm_by = None
    s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None
    _drop_extension_request(s)


def _drop_extension_request(s: CaseState) -> None:
    """A pending request is the assignee's for the work in hand: it ends when the case leaves that
    unit (rejected, reassigned) or the work ends (completed, closed), undecided."""
    s.pending_extension = None  # the reason stays: the approval's notice to the citizen quotes it


def _extension_requested(s: CaseState, e: ExtensionRequested) -> None:
    s.pending_extension, s.extension_reason = e.until, e.reason
    s.last_touched_at = e.requested_at


def _extension_decided(s: CaseState, e: ExtensionDecided) -> None:
    s.pending_extension = None
    if e.approved and e.until is not None:
        s.deadline = s.complete_by = e.until
        s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None


def _feedback(s: CaseState, e: FeedbackGiven) -> None:
    s.status = CaseStatus.IN_PROGRESS
    s.last_touched_at = e.at
    s.feedback_count += 1


def _completed(s: CaseState, e: CaseCompleted) -> None:
    s.status = CaseStatus.COMPLETED
    s.completed_at = s.last_touched_at = e.completed_at
    s.callback_by, s.handler, s.result = e.callback_by, e.handler, e.result
    s.chase_stage, s.chase_count, s.last_chased_at = None, 0, None
    _drop_extension_request(s)


def _callback(s: CaseState, e: CallbackRecorded) -> None:
    s.callback_outcome, s.callback_at = e.outcome, e.at
    s.callback_case_score, s.callback_unit_score = e.case_score, e.unit_score
    if s.status == CaseStatus.COMPLETED:
        s.status = CaseStatus.CALLED_BACK


def _archived(s: CaseState, e: CaseArchived) -> None:
    s.status, s.archived_at = CaseStatus.ARCHIVED, e.at


def _closed(s: CaseState, e: CaseClosed) -> None:
    s.status, s.closed_at = CaseStatus.CLOSED, e.at
    s.chase_stage = None
    _drop_extension_request(s)


def _supplemented(s: CaseState, e: CaseSupplemented) -> None:
    s.supplement_count += 1


def _chased(s: CaseState, e: CaseChased) -> None:
    s.chase_stage, s.chase_count, s.last_chased_at = e.stage, e.attempt, e.at


def _linked(s: CaseState, e: CaseLinked) -> None:
    if e.other_case_id not in s.linked_case_ids:
        s.linked_case_ids = (*s.linked_case_ids, e.other_case_id)


def _unlinked(s: CaseState, e: CaseUnlinked) -> None:
    s.linked_case_ids = tuple(c for c in s.linked_case_ids if c != e.other_case_id)


def _added_to_incident(s: CaseState, e: CaseAddedToIncident) -> None:
    s.incident_id = e.incident_id


def _reminder_set(s: CaseState, e: ReminderSet) -> None:
    s.reminder_at, s.reminder_note, s.reminder_by = e.remind_at, e.note, e.by


def _reminder_due(s: CaseState, e: ReminderDue) -> None:
    s.reminder_at, s.reminded_at = None, e.at


def _hold_set(s: CaseState, e: CaseLegalHoldSet) -> None:
    s.legal_hold = LegalHold(e.reason, e.by, e.at)


def _hold_released(s: CaseState, e: CaseLegalHoldReleased) -> None:
    s.legal_hold = None


APPLIERS: dict[type[Event], Callable[[CaseState, Any], None]] = {
    CaseRegistered: _registered,
    CallerPhoneGiven: _phone_given,
    CaseLocated: _located,
    CaseClassified: _classified,
    CaseDispatched: _dispatched,
    CaseMoved: _moved,
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
    CaseLinked: _linked,
    CaseUnlinked: _unlinked,
    CaseAddedToIncident: _added_to_incident,
    ReminderSet: _reminder_set,
    ReminderDue: _reminder_due,
    CaseLegalHoldSet: _hold_set,
    CaseLegalHoldReleased: _hold_released,
}
"""How each event of a case stream changes `CaseState`: every applier of the aggregate."""


def case_stream(case_id: str) -> str:
    """The stream name of a case."""
    return f"case-{case_id}"


def fold(case_id: str, records: list[RecordedEvent]) -> CaseState:
    """The state of a case from its stored events."""
    last = CaseState(case_id)
    for last in states(case_id, records):  # noqa: B007 - the state after the last event
        pass
    return last


def states(case_id: str, records: Iterable[RecordedEvent]) -> Iterator[CaseState]:
    """The state of a case after each of its stored events in turn: ONE state, updated in place
    (copy what must outlive the next step, e.g. with `to_data`)."""
    state = CaseState(case_id)
    for record in records:
        evt = from_recorded(record)
        if evt is not None:
            state.apply(evt, record.version)
        else:
            state.version = record.version
        yield state


async def load_case(store: EventStore, case_id: str) -> CaseState:
    """Read and fold a case; raise `NotFound` if it has no events."""
    records = await store.read_stream(case_stream(case_id))
    if not records:
        raise NotFound(f"case {case_id} not found")
    return fold(case_id, records)
