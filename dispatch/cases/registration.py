"""The case aggregate: one case = one event stream `case-<case_id>`.

This module holds registration (accept) and the folded state; the later
lifecycle steps live in `case_events.py` (events, how they fold) and
`case_actions.py` (commands and their handlers).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from dispatch.cases.events import APPLIERS
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, NotFound
from dispatch.core.messages import Command, Event, event, from_recorded, metadata, to_new_event
from eventstore import NO_STREAM, EventStore, IdempotencyConflict, RecordedEvent, WrongExpectedVersion

CATEGORIES: tuple[str, ...] = (
    "power_fault", "voltage_anomaly", "consultation", "complaint", "report", "suggestion",
    "praise", "home_service", "elderly_emergency", "elderly_care", "enterprise_service",
    "public_affairs", "simple_affair", "todo",
)
RESPONSE_LIMIT_MINUTES: dict[int, int] = {1: 15, 2: 30, 3: 60, 4: 90}
"""Response limit by priority level (95598): 1 urgent fault ... 4 consultation."""

DEFAULT_PRIORITY: dict[str, int] = {
    "power_fault": 2, "voltage_anomaly": 3, "elderly_emergency": 1, "consultation": 4,
    "complaint": 3, "report": 3, "suggestion": 4, "praise": 4, "home_service": 3,
    "elderly_care": 3, "enterprise_service": 3, "public_affairs": 3, "simple_affair": 4,
    "todo": 4,
}
POWER_FAULT_REQUIRED: tuple[str, ...] = (
    "caller.name", "caller.phone", "account_number", "fault.type", "fault.began_at",
    "fault.scope", "address",
)
"""What a power-fault intake must carry (DOMAIN.md, Accept)."""

MAX_NAME = 20
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}\d{7,8}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SERVICE = re.compile(r"^(95598|12345|110|119|120|122)$")


def normalise_phone(raw: str) -> str:
    """A phone number in canonical form (Chinese numbers without +86); raise if invalid."""
    digits = re.sub(r"[\s\-()]", "", raw)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if _MOBILE.match(digits) or _LANDLINE.match(digits) or _SERVICE.match(digits):
        return digits
    if _E164.match(digits):
        return digits
    raise InvalidCommand(f"phone number {mask_phone(raw)} is not a valid number", field="phone")


def mask_phone(phone: str | None) -> str | None:
    """Only the last four digits of a phone number stay readable."""
    if not phone:
        return phone
    return "*" * max(len(phone) - 4, 0) + phone[-4:]


def new_case_id(at: datetime, seed: str | None = None) -> str:
    """A readable case number: `C` + date + 10 base32 characters (from `seed` if given)."""
    digest = (
        hashlib.sha256(seed.encode()).digest() if seed is not None else uuid.uuid4().bytes
    )
    tail = "".join("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[b % 32] for b in digest[:10])
    return f"C{at:%Y%m%d}{tail}"


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """Who the case is for."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    openid: str | None = None
    device_account: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """Where the matter is, in WGS84, with its district when known."""

    lat: float
    lon: float
    district: str | None = None
    district_name: str | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """A power fault as the caller described it."""

    type: str | None = None
    began_at: str | None = None
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class RegisterCase(Command):
    """Accept a contact as a new case (受理)."""

    category: str
    channel: str
    description: str
    caller: CallerInfo
    priority: int | None = None
    location: Place | None = None
    address: str | None = None
    account_number: str | None = None
    customer_type: str | None = None
    fault: Fault | None = None
    service_time: str | None = None
    special_needs: str | None = None
    flags: tuple[str, ...] = ()
    elder_id: str | None = None
    recording_id: str | None = None
    contact_stream: str | None = None
    idempotency_key: str | None = None
    strict: bool = False
    actor: str | None = None
    correlation_id: str | None = None
    raw: Any = None


@event
@dataclass(frozen=True, slots=True)
class CaseRegistered(Event):
    """A case was accepted; its response deadline runs from `accepted_at`."""

    case_id: str
    category: str
    priority: int
    channel: str
    description: str
    caller: CallerInfo
    accepted_at: datetime
    deadline: datetime
    location: Place | None = None
    address: str | None = None
    account_number: str | None = None
    customer_type: str | None = None
    fault: Fault | None = None
    service_time: str | None = None
    special_needs: str | None = None
    flags: tuple[str, ...] = ()
    missing_fields: tuple[str, ...] = ()
    elder_id: str | None = None
    recording_id: str | None = None
    contact_stream: str | None = None
    raw: Any = None


@dataclass(slots=True)
class CaseState:
    """A case's current state, folded from its events."""

    case_id: str
    version: int = -1
    status: str = "new"
    category: str = ""
    priority: int = 4
    channel: str = ""
    caller: CallerInfo = field(default_factory=CallerInfo)
    description: str = ""
    location: Place | None = None
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
    handler: str | None = None
    result: str | None = None
    archived_at: datetime | None = None
    closed_at: datetime | None = None
    last_touched_at: datetime | None = None
    rejected_by: tuple[str, ...] = ()
    pending_extension: datetime | None = None
    chase_stage: str | None = None
    chase_count: int = 0
    last_chased_at: datetime | None = None
    feedback_count: int = 0
    supplement_count: int = 0

    def apply(self, evt: Event, version: int) -> None:
        """Fold one event into the state (lifecycle events: `case_events.APPLIERS`)."""
        self.version = version
        applier = APPLIERS.get(type(evt))
        if applier is not None:
            applier(self, evt)
        elif isinstance(evt, CaseRegistered):
            self.status = "accepted"
            self.category = evt.category
            self.priority = evt.priority
            self.channel = evt.channel
            self.caller = evt.caller
            self.description = evt.description
            self.location = evt.location
            self.address = evt.address
            self.created_at = evt.accepted_at
            self.accepted_at = evt.accepted_at
            self.deadline = evt.deadline
            self.flags = evt.flags
            self.missing_fields = evt.missing_fields
            self.elder_id = evt.elder_id
            self.customer_type = evt.customer_type
            self.fault = evt.fault
            self.deadline_from = evt.accepted_at


def case_stream(case_id: str) -> str:
    """The stream name of a case."""
    return f"case-{case_id}"


def fold(case_id: str, records: list[RecordedEvent]) -> CaseState:
    """The state of a case from its stored events."""
    state = CaseState(case_id)
    for record in records:
        evt = from_recorded(record)
        if evt is not None:
            state.apply(evt, record.version)
        else:
            state.version = record.version
    return state


async def load_case(store: EventStore, case_id: str) -> CaseState:
    """Read and fold a case; raise `NotFound` if it has no events."""
    records = await store.read_stream(case_stream(case_id))
    if not records:
        raise NotFound(f"case {case_id} not found")
    return fold(case_id, records)


def _missing(cmd: RegisterCase) -> tuple[str, ...]:
    if cmd.category != "power_fault":
        return ()
    values = {
        "caller.name": cmd.caller.name,
        "caller.phone": cmd.caller.phone,
        "account_number": cmd.account_number,
        "fault.type": cmd.fault.type if cmd.fault else None,
        "fault.began_at": cmd.fault.began_at if cmd.fault else None,
        "fault.scope": cmd.fault.scope if cmd.fault else None,
        "address": cmd.address,
    }
    return tuple(k for k in POWER_FAULT_REQUIRED if not values[k])


def decide_registration(cmd: RegisterCase, case_id: str, now: datetime) -> CaseRegistered:
    """Validate a registration and decide the event (pure)."""
    if cmd.category not in CATEGORIES:
        raise InvalidCommand(f"unknown category {cmd.category!r}", field="category")
    priority = cmd.priority if cmd.priority is not None else DEFAULT_PRIORITY[cmd.category]
    if priority not in RESPONSE_LIMIT_MINUTES:
        raise InvalidCommand("priority must be 1, 2, 3 or 4", field="priority")
    caller = cmd.caller
    if caller.name is not None and len(caller.name) > MAX_NAME:
        raise InvalidCommand(f"name longer than {MAX_NAME} characters", field="caller.name")
    if caller.phone:
        caller = replace(caller, phone=normalise_phone(caller.phone))
    missing = _missing(cmd)
    if cmd.strict and missing:
        raise InvalidCommand(f"power-fault intake needs {', '.join(missing)}", field=missing[0])
    return CaseRegistered(
        case_id=case_id,
        category=cmd.category,
        priority=priority,
        channel=cmd.channel,
        description=cmd.description,
        caller=caller,
        accepted_at=now,
        deadline=now + timedelta(minutes=RESPONSE_LIMIT_MINUTES[priority]),
        location=cmd.location,
        address=cmd.address,
        account_number=cmd.account_number,
        customer_type=cmd.customer_type,
        fault=cmd.fault,
        service_time=cmd.service_time,
        special_needs=cmd.special_needs,
        flags=cmd.flags,
        missing_fields=missing,
        elder_id=cmd.elder_id,
        recording_id=cmd.recording_id,
        contact_stream=cmd.contact_stream,
        raw=cmd.raw,
    )


@dataclass(frozen=True, slots=True)
class Registered:
    """What `register_case` answers: the case and whether it was a repeat delivery."""

    case_id: str
    version: int
    duplicate: bool


async def register_case(cmd: RegisterCase, *, store: EventStore, clock: Clock) -> Registered:
    """Accept a case; a repeated idempotency key answers the first case (the store says so)."""
    now = clock.now()
    for attempt in range(3):
        seed = None if cmd.idempotency_key is None else f"{cmd.idempotency_key}#{attempt}"
        case_id = new_case_id(now, seed)
        evt = decide_registration(cmd, case_id, now)
        meta = metadata(
            actor=cmd.actor, channel=cmd.channel, correlation_id=cmd.correlation_id or case_id
        )
        try:
            result = await store.append(
                case_stream(case_id),
                [to_new_event(evt, meta)],
                NO_STREAM,
                idempotency_key=cmd.idempotency_key,
            )
        except WrongExpectedVersion:
            continue  # the id is taken (a one-in-a-trillion collision): draw another
        except IdempotencyConflict as exc:
            # A redelivery on another day derives another case id; the key names the first case.
            seen = await store.find_by_idempotency_key(exc.key)
            if seen is None:
                raise
            return Registered(seen.stream.split("-", 1)[1], seen.last_version, True)
        return Registered(result.stream.split("-", 1)[1], result.last_version, result.duplicate)
    raise InvalidCommand("could not allocate a case number")


HANDLERS: dict[type[Command], Handler] = {RegisterCase: register_case}
