"""Every event of a case stream (`case-<case_id>`), and the values they carry.

The lifecycle (docs/cases-sla.md) runs from `CaseRegistered` through dispatch,
confirmation, completion and call-back to archiving; `CaseClosed` ends a case
at any point; a closed or archived case may be supplemented. Links and incident
membership are recorded on the case's stream too (`dispatch.linking` decides
them). Every event carries the deadlines decided when it happened, so a replay
never depends on today's configuration; `state.py` says how each one folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dispatch.core.messages import Event, event
from dispatch.core.personal import PERSONAL, declared_personal, phone_subject, subject
from dispatch.core.phone import takes_sms


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """Who the case is for."""

    name: str | None = field(default=None, metadata=PERSONAL)
    phone: str | None = field(default=None, metadata=PERSONAL)
    email: str | None = field(default=None, metadata=PERSONAL)
    openid: str | None = field(default=None, metadata=PERSONAL)
    device_account: str | None = field(default=None, metadata=PERSONAL)

    def data_subject(self) -> str | None:
        """Whose data this is: the number, else the OpenID, the e-mail or the alarm device."""
        return (phone_subject(self.phone) or subject("openid", self.openid)
                or subject("email", self.email) or subject("device", self.device_account))

    def reach(self) -> tuple[str, str] | None:
        """How the citizen is told of their case: (outbox channel, address), or None.

        SMS to a phone that takes texts, else WeChat to the OpenID: a landline caller is
        not texted (the message would only fail at the provider); they hear back by phone.
        """
        if self.phone and takes_sms(self.phone):
            return "sms", self.phone
        return ("wechat", self.openid) if self.openid else None


@dataclass(frozen=True, slots=True)
class Place:
    """Where the matter is, in WGS84, with its district when known."""

    lat: float
    lon: float
    district: str | None = None
    district_name: str | None = None


@dataclass(frozen=True, slots=True)
class MatchedPlace:
    """The gazetteer place a case was located at: its id, name and type, the match score
    (0-100) and the words of the address text that named it (none when an agent chose it)."""

    id: str
    name: str
    type: str | None = None
    score: float | None = None
    text: str | None = field(default=None, metadata=PERSONAL)


LOCATION_SOURCES: tuple[str, ...] = ("given", "gazetteer", "agent")
"""Where a case's location came from: the contact, the gazetteer match of its address, an agent."""


@dataclass(frozen=True, slots=True)
class Fault:
    """A power fault as the caller described it."""

    type: str | None = None
    began_at: str | None = None
    scope: str | None = None


@event
@dataclass(frozen=True, slots=True)
class CaseRegistered(Event):
    """A case was accepted; its response deadline runs from `accepted_at`."""

    case_id: str
    category: str
    priority: int
    channel: str
    description: str = field(metadata=PERSONAL)
    caller: CallerInfo
    accepted_at: datetime
    deadline: datetime
    location: Place | None = None
    address: str | None = field(default=None, metadata=PERSONAL)
    account_number: str | None = field(default=None, metadata=PERSONAL)
    customer_type: str | None = None
    fault: Fault | None = None
    service_time: str | None = None
    special_needs: str | None = field(default=None, metadata=PERSONAL)
    flags: tuple[str, ...] = ()
    missing_fields: tuple[str, ...] = ()
    elder_id: str | None = None
    recording_id: str | None = None
    contact_stream: str | None = None
    raw: Any = field(default=None, metadata=PERSONAL)
    call_id: str | None = None
    """The phone call the agent registered the case from (its recording is the case's); added
    after the first release as an optional field, so earlier events read as None."""

    def data_subject(self) -> str | None:
        """The caller's, else the elder's (an alarm from a registered device)."""
        return self.caller.data_subject() or subject("elder", self.elder_id)

    def personal_fields(self) -> tuple[str, ...]:
        """The declared ones and, for an elder's case, the coordinates: his home's."""
        declared = declared_personal(self)
        return (*declared, "location.lat", "location.lon") if self.elder_id else declared


@event
@dataclass(frozen=True, slots=True)
class CaseLocated(Event):
    """The case was given a place after registration: its address text matched a gazetteer
    place (`source` `gazetteer`), or an agent set or corrected it (`agent`)."""

    case_id: str
    location: Place
    source: str
    at: datetime
    place: MatchedPlace | None = None
    by: str | None = None


AWAITING_PHONE = "awaiting_phone"
"""Flag of a case opened for a contact who has not yet given a phone number (WeChat)."""


@event
@dataclass(frozen=True, slots=True)
class CallerPhoneGiven(Event):
    """The citizen gave the phone number to reach them on; the case no longer awaits one."""

    case_id: str
    phone: str = field(metadata=PERSONAL)
    channel: str
    at: datetime
    by: str | None = None


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
    note: str | None = field(default=None, metadata=PERSONAL)
    distance_m: float | None = None
    score: float | None = None
    wrong_rejection_of: str | None = None
    level: str | None = None  # the organisation node that dispatched it: the case's owner from now on


MOVES: tuple[str, ...] = ("routed", "reported_up", "dispatched_down")
"""How a case moves between levels of the organisation: routed on arrival (by its category or its
district's sub-centre), reported up (上报) by a sub-centre, dispatched down (下派) by the level above."""


@event
@dataclass(frozen=True, slots=True)
class CaseMoved(Event):
    """The case passed from one level of the organisation to another (`owner` holds it now).

    The response deadline keeps running from acceptance and the light keeps its rules:
    a move between levels is not a transfer to a unit (docs/organisation.md)."""

    case_id: str
    owner: str
    move: str
    at: datetime
    previous: str | None = None
    reason: str | None = field(default=None, metadata=PERSONAL)
    by: str | None = None


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
    reason: str = field(metadata=PERSONAL)
    rejected_at: datetime
    by: str | None = None


@event
@dataclass(frozen=True, slots=True)
class ExtensionRequested(Event):
    """The unit asked for more time, until `until`."""

    case_id: str
    unit: str
    until: datetime
    reason: str = field(metadata=PERSONAL)
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
    note: str | None = field(default=None, metadata=PERSONAL)


@event
@dataclass(frozen=True, slots=True)
class FeedbackGiven(Event):
    """The unit reported progress (反馈)."""

    case_id: str
    unit: str
    text: str = field(metadata=PERSONAL)
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class CaseCompleted(Event):
    """The matter is handled; the citizen must be called back by `callback_by`. `due`: when it was
    to be completed by (the unit's completion limit; for a case completed without a confirmation,
    counted from its confirmation limit)."""

    case_id: str
    completed_at: datetime
    callback_by: datetime
    archive_by: datetime
    handler: str | None = None
    result: str = field(default="", metadata=PERSONAL)
    by: str | None = None
    due: datetime | None = None


@event
@dataclass(frozen=True, slots=True)
class CallbackRecorded(Event):
    """The citizen's answer to the call-back, counted for the handler (the unit).

    `case_score` (how the case went) and `unit_score` (the handling unit) are the citizen's
    1-5 scores, None when not asked or not given (events recorded before scores have none).
    """

    case_id: str
    outcome: str
    at: datetime
    handler: str | None = None
    note: str | None = field(default=None, metadata=PERSONAL)
    by: str | None = None
    case_score: int | None = None
    unit_score: int | None = None


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
    reason: str = field(metadata=PERSONAL)
    at: datetime
    by: str | None = None


@event
@dataclass(frozen=True, slots=True)
class CaseSupplemented(Event):
    """Information was added to a closed or archived case."""

    case_id: str
    text: str = field(metadata=PERSONAL)
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


@event
@dataclass(frozen=True, slots=True)
class CaseLinked(Event):
    """This case (`case_id`, the stream's case) was linked to `other_case_id`."""

    case_id: str
    other_case_id: str
    reason: str
    score: float | None = None


@event
@dataclass(frozen=True, slots=True)
class CaseUnlinked(Event):
    """The link between this case and `other_case_id` was undone."""

    case_id: str
    other_case_id: str
    reason: str = ""


@event
@dataclass(frozen=True, slots=True)
class CaseAddedToIncident(Event):
    """A case belongs to the incident (recorded on the incident's and on the case's stream)."""

    incident_id: str
    case_id: str
    merged_from: str | None = None  # the incident the case was in, when it came by a merge


@event
@dataclass(frozen=True, slots=True)
class ReminderSet(Event):
    """An agent set the case's reminder (待办提醒) for `remind_at`; None clears it."""

    case_id: str
    remind_at: datetime | None
    note: str = field(metadata=PERSONAL)
    by: str | None
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class ReminderDue(Event):
    """The reminder's time came: `agent` (who set it) is told in the console."""

    case_id: str
    remind_at: datetime
    agent: str | None
    note: str = field(metadata=PERSONAL)
    at: datetime


@dataclass(frozen=True, slots=True)
class LegalHold:
    """Why a case's personal data must be kept (a lawsuit, an investigation), who set it, when."""

    reason: str = field(metadata=PERSONAL)
    by: str | None
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class CaseLegalHoldSet(Event):
    """A legal hold was put on the case: its person's data is not erased on request or by
    retention until the hold is released (`dispatch/personal/hold.py`)."""

    case_id: str
    reason: str = field(metadata=PERSONAL)
    by: str | None
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class CaseLegalHoldReleased(Event):
    """The case's legal hold was released: erasure and retention apply again."""

    case_id: str
    reason: str = field(metadata=PERSONAL)
    by: str | None
    at: datetime
