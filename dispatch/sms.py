"""Inbound SMS: recorded as it arrives, then taken into a case by a policy.

The webhook's only write is `SmsReceived` on `sms-<channel key>` (one
idempotent append: the channel's message id is the key; with the store's
group commit on, concurrent requests share one commit), so it can answer as
soon as the message is durable. `SmsIntakePolicy` then appends it to the
sender's open case as a conversation message (`CaseMessageReceived`) or opens
a case categorised from the text (`dispatch.classify`; an agent can correct it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from channels.message import InboundContact
from dispatch.case import (
    CallerInfo,
    RegisterCase,
    case_stream,
    mask_phone,
    normalise_phone,
    register_case,
)
from dispatch.classify import classify_text
from dispatch.clock import Clock
from dispatch.errors import InvalidCommand
from dispatch.messages import Command, Event, event, from_recorded, metadata, to_new_event
from eventstore import ANY, AppendResult, EventStore, RecordedEvent
from eventstore.errors import IdempotencyConflict

log = structlog.get_logger(__name__)

OPEN_CASE_SQL = """SELECT case_id FROM cases WHERE caller_phone = $1
    AND status NOT IN ('completed', 'called_back', 'archived', 'closed')
    ORDER BY created_at DESC LIMIT 1"""


def callable_number(raw: str | None) -> str | None:
    """The caller's number in canonical form, or None when it cannot be called back."""
    if not raw:
        return None
    try:
        return normalise_phone(raw)
    except InvalidCommand:
        return None


def sms_stream(contact: InboundContact) -> str:
    """The stream of one inbound SMS, named by its channel key (`twilio:sms:<MessageSid>`)."""
    return f"sms-{contact.idempotency_key}"


@event
@dataclass(frozen=True, slots=True)
class SmsReceived(Event):
    """An inbound SMS was received (normalised contact with its raw payload); not yet in a case."""

    contact: InboundContact


@event
@dataclass(frozen=True, slots=True)
class CaseMessageReceived(Event):
    """A message from the citizen joined an open case's conversation."""

    case_id: str
    channel: str
    phone: str | None
    text: str
    contact: InboundContact


@dataclass(frozen=True, slots=True)
class ReceiveSms(Command):
    """Record one inbound SMS a channel delivered (the webhook's command)."""

    contact: InboundContact


@dataclass(frozen=True, slots=True)
class TakeInSms(Command):
    """Put a recorded SMS into the sender's open case, or open a case for it."""

    contact: InboundContact
    stream: str


@dataclass(frozen=True, slots=True)
class SmsTakenIn:
    """Where an SMS went: the case, whether it opened it, whether it was a redelivery."""

    case_id: str
    opened: bool
    duplicate: bool


async def receive_sms(cmd: ReceiveSms, *, store: EventStore) -> AppendResult:
    """Append `SmsReceived` (group-committed if the store does); a repeated key changes nothing."""
    contact = cmd.contact
    stream = sms_stream(contact)
    meta = metadata(actor=f"channel:{contact.extra.get('source', 'sms')}", channel="sms",
                    correlation_id=stream, received_at=contact.received_at)
    return await store.append(stream, [to_new_event(SmsReceived(contact), meta)], ANY,
                              idempotency_key=contact.idempotency_key)


async def open_case_of(pool: asyncpg.Pool, phone: str) -> str | None:
    """The newest open case of a phone number, from the case read model."""
    try:
        async with pool.acquire() as conn:
            found = await conn.fetchval(OPEN_CASE_SQL, phone)
    except asyncpg.UndefinedTableError:
        log.warning("cases_read_model_missing")
        return None
    return None if found is None else str(found)


async def _open_case(cmd: TakeInSms, phone: str | None, key: str, store: EventStore,
                     clock: Clock) -> SmsTakenIn:
    contact = cmd.contact
    category = classify_text(contact.text)
    registered = await register_case(
        RegisterCase(
            category=category, channel="sms", description=contact.text or "(empty SMS)",
            caller=CallerInfo(phone=phone), idempotency_key=key, actor="policy:sms-intake",
            raw=contact.raw, contact_stream=cmd.stream, correlation_id=cmd.stream,
        ),
        store=store, clock=clock,
    )
    log.info("sms_opened_case", case_id=registered.case_id, category=category,
             sender=mask_phone(phone))
    return SmsTakenIn(registered.case_id, True, registered.duplicate)


async def take_in_sms(
    cmd: TakeInSms, *, store: EventStore, clock: Clock, pool: asyncpg.Pool
) -> SmsTakenIn:
    """Append the SMS to the sender's open case, or open a categorised case (idempotent)."""
    contact = cmd.contact
    key = f"{contact.idempotency_key}:case"
    phone = callable_number(contact.caller.phone)
    case_id = await open_case_of(pool, phone) if phone else None
    if case_id is None:
        return await _open_case(cmd, phone, key, store, clock)
    evt = CaseMessageReceived(case_id, "sms", phone, contact.text or "", contact)
    meta = metadata(actor="policy:sms-intake", channel="sms", correlation_id=cmd.stream,
                    received_at=contact.received_at)
    try:
        result = await store.append(case_stream(case_id), [to_new_event(evt, meta)], ANY,
                                    idempotency_key=key)
    except IdempotencyConflict as exc:
        # A reaction repeated after a crash: the SMS already went to another case.
        return SmsTakenIn(exc.stored_stream.split("-", 1)[1], False, True)
    log.info("sms_joined_case", case_id=case_id, sender=mask_phone(phone))
    return SmsTakenIn(case_id, False, result.duplicate)


class SmsIntakePolicy:
    """Takes each recorded SMS into a case (a reactor over the `sms` streams)."""

    name = "sms-intake"
    categories: frozenset[str] | None = frozenset({"sms"})

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def react(self, event: RecordedEvent) -> None:
        """Send `TakeInSms` for an `SmsReceived` (idempotent on the SMS's channel key)."""
        evt = from_recorded(event)
        if isinstance(evt, SmsReceived):
            await self._handle(TakeInSms(evt.contact, event.stream))


def reactors(services: Any) -> list[SmsIntakePolicy]:
    """The SMS intake policy (bootstrap hook)."""
    return [SmsIntakePolicy(services.bus.handle)]


HANDLERS: dict[type, Any] = {ReceiveSms: receive_sms, TakeInSms: take_in_sms}
