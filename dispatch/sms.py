"""Inbound SMS: appended to the sender's open case as a conversation, or a new case.

A new case is categorised from the text (`dispatch.classify`); an agent can
correct it. The SMS (with its raw payload) is the idempotent event itself:
`CaseMessageReceived` on the open case, or the new case's `CaseRegistered`.
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
from dispatch.messages import Command, Event, event, metadata, to_new_event
from eventstore import ANY, EventStore

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
    """Take in one inbound SMS."""

    contact: InboundContact


@dataclass(frozen=True, slots=True)
class SmsReceived:
    """Where an SMS went: the case, whether it opened it, whether it was a redelivery."""

    case_id: str
    opened: bool
    duplicate: bool


async def open_case_of(pool: asyncpg.Pool, phone: str) -> str | None:
    """The newest open case of a phone number, from the case read model."""
    try:
        async with pool.acquire() as conn:
            found = await conn.fetchval(OPEN_CASE_SQL, phone)
    except asyncpg.UndefinedTableError:
        log.warning("cases_read_model_missing")
        return None
    return None if found is None else str(found)


async def receive_sms(
    cmd: ReceiveSms, *, store: EventStore, clock: Clock, pool: asyncpg.Pool
) -> SmsReceived:
    """Append the SMS to the sender's open case, or open a categorised case."""
    contact = cmd.contact
    key = contact.idempotency_key
    seen = await store.find_by_idempotency_key(key)
    if seen is not None:
        return SmsReceived(seen.stream.split("-", 1)[1], seen.first_version == 0, True)
    phone = callable_number(contact.caller.phone)
    case_id = await open_case_of(pool, phone) if phone else None
    if case_id is None:
        category = classify_text(contact.text)
        registered = await register_case(
            RegisterCase(
                category=category, channel="sms", description=contact.text or "(empty SMS)",
                caller=CallerInfo(phone=phone), idempotency_key=key, actor="channel:twilio",
                raw=contact.raw, contact_stream=None,
            ),
            store=store, clock=clock,
        )
        log.info("sms_opened_case", case_id=registered.case_id, category=category,
                 sender=mask_phone(phone))
        return SmsReceived(registered.case_id, True, registered.duplicate)
    evt = CaseMessageReceived(case_id, "sms", phone, contact.text or "", contact)
    meta = metadata(actor="channel:twilio", channel="sms", correlation_id=case_id,
                    received_at=contact.received_at)
    result = await store.append(case_stream(case_id), [to_new_event(evt, meta)], ANY,
                                idempotency_key=key)
    log.info("sms_joined_case", case_id=case_id, sender=mask_phone(phone))
    return SmsReceived(case_id, False, result.duplicate)


HANDLERS: dict[type, Any] = {ReceiveSms: receive_sms}
