"""Registration (受理): the `RegisterCase` command, its rules and its handler.

A case is one event stream `case-<case_id>` opened by `CaseRegistered`; the
later steps are `actions.py`'s, how the events fold is `state.py`'s.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from dispatch.cases.events import CallerInfo, CaseRegistered, Fault, Place
from dispatch.cases.state import case_stream
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, KeyReused
from dispatch.core.messages import Command, metadata, to_data, to_new_event
from dispatch.core.phone import normalise_phone
from dispatch.core.texts import LOCAL_TIME
from eventstore import NO_STREAM, EventStore, IdempotencyConflict, WrongExpectedVersion

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
MAX_NAME_CHARS = 20
"""The longest caller's name an agent registers (DOMAIN.md, Accept: names <= 20 characters); a
channel's contact keeps the name as given."""


CASE_ID = re.compile(r"^C\d{8}[A-HJ-NP-Z2-9]{10}$")
"""The shape of every case number `new_case_id` hands out."""


def new_case_id(at: datetime, seed: str | None = None) -> str:
    """A readable case number: `C` + date (Beijing time, the day the hotline accepted it) + 10
    base32 characters (from `seed` if given)."""
    digest = (
        hashlib.sha256(seed.encode()).digest() if seed is not None else uuid.uuid4().bytes
    )
    tail = "".join("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[b % 32] for b in digest[:10])
    return f"C{at.astimezone(LOCAL_TIME):%Y%m%d}{tail}"


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
    case_id: str | None = None
    """The case number, when the channel decided it before registering (WeChat records it first)."""
    strict: bool = False
    actor: str | None = None
    correlation_id: str | None = None
    received_at: datetime | None = None
    raw: Any = None
    call_id: str | None = None
    """The call being answered when an agent registers the case (links its recording)."""
    client_key: bool = False
    """`idempotency_key` is the client's own (an `Idempotency-Key` header): a repeat of it that says
    something else is another request, refused (`KeyReused`), not answered with the first case."""


def missing_fields(cmd: RegisterCase) -> tuple[str, ...]:
    """The power-fault fields (`POWER_FAULT_REQUIRED`) a registration lacks; none for other categories."""
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
    return tuple(k for k in POWER_FAULT_REQUIRED if not (values[k] or "").strip())


def decide_registration(cmd: RegisterCase, case_id: str, now: datetime) -> CaseRegistered:
    """Validate a registration and decide the event (pure)."""
    if cmd.category not in CATEGORIES:
        raise InvalidCommand(f"unknown category {cmd.category!r}", field="category")
    priority = cmd.priority if cmd.priority is not None else DEFAULT_PRIORITY[cmd.category]
    if priority not in RESPONSE_LIMIT_MINUTES:
        raise InvalidCommand("priority must be 1, 2, 3 or 4", field="priority")
    caller = cmd.caller  # names are kept as given: a display may shorten them, intake never does
    if caller.phone:
        caller = replace(caller, phone=normalise_phone(caller.phone))
    missing = missing_fields(cmd)
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
        call_id=cmd.call_id,
    )


@dataclass(frozen=True, slots=True)
class Registered:
    """What `register_case` answers: the case and whether it was a repeat delivery."""

    case_id: str
    version: int
    duplicate: bool


_SAID = ("category", "description", "caller", "address", "account_number", "customer_type", "fault",
         "service_time", "special_needs")
"""What a registration says (not when it came, nor what the system made of it: the district found
for its point may change with the districts loaded)."""


def _said(data: Mapping[str, Any]) -> list[Any]:
    location = data.get("location") or {}
    return [data.get(name) for name in _SAID] + [location.get("lat"), location.get("lon")]


async def register_case(cmd: RegisterCase, *, store: EventStore, clock: Clock) -> Registered:
    """Accept a case; a repeated idempotency key answers the first case (the store says so), or,
    for a client's own key (`client_key`) reused for a registration that says something else (or
    for an action on a case), is refused with `KeyReused`: the first case is no answer to it."""
    now = clock.now()
    registered = await _register(cmd, store, now)
    if registered.duplicate and cmd.client_key:
        first = await store.read_stream(case_stream(registered.case_id), limit=1)
        again = decide_registration(cmd, registered.case_id, now)
        if first and _said(first[0].data) != _said(to_data(again)):
            raise KeyReused("this Idempotency-Key was already used for another request")
    return registered


async def _register(cmd: RegisterCase, store: EventStore, now: datetime) -> Registered:
    for attempt in range(1 if cmd.case_id else 3):
        seed = None if cmd.idempotency_key is None else f"{cmd.idempotency_key}#{attempt}"
        case_id = cmd.case_id or new_case_id(now, seed)
        evt = decide_registration(cmd, case_id, now)
        meta = metadata(
            actor=cmd.actor, channel=cmd.channel, correlation_id=cmd.correlation_id or case_id,
            received_at=cmd.received_at,
        )
        try:
            result = await store.append(
                case_stream(case_id),
                [to_new_event(evt, meta)],
                NO_STREAM,
                idempotency_key=cmd.idempotency_key,
            )
        except WrongExpectedVersion:
            if cmd.case_id is None:
                continue  # the id is taken (a one-in-a-trillion collision): draw another
            seen = None if cmd.idempotency_key is None else await store.find_by_idempotency_key(
                cmd.idempotency_key)  # the given id was just registered by a concurrent repeat
            if seen is None:
                raise InvalidCommand(f"case {case_id} exists already", field="case_id") from None
            return Registered(seen.stream.split("-", 1)[1], seen.last_version, True)
        except IdempotencyConflict as exc:
            # A redelivery on another day derives another case id; the key names the first case.
            seen = await store.find_by_idempotency_key(exc.key)
            if seen is None:
                raise
            return Registered(seen.stream.split("-", 1)[1], seen.last_version, True)
        return Registered(result.stream.split("-", 1)[1], result.last_version, result.duplicate)
    raise InvalidCommand("could not allocate a case number")


HANDLERS: dict[type[Command], Handler] = {RegisterCase: register_case}
