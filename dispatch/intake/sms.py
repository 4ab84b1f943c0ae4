"""Inbound SMS: recorded as it arrives, then taken into a case by a policy.

The webhook's only write is `SmsReceived` on `sms-<channel key>` (one
idempotent append: the channel's message id is the key; with the store's
group commit on, concurrent requests share one commit), so it can answer as
soon as the message is durable. `SmsIntakePolicy` then appends it to the
sender's open case as a conversation message (`CaseMessageReceived`) or opens
a case categorised from the text (`dispatch.intake.classify`; an agent can correct it).

The `cases` read model lags behind the log, so it alone cannot tell the policy
about the case it opened for the sender's previous SMS a moment ago. Each case
an SMS opens is therefore also recorded on the sender's stream
(`SmsCaseOpened` on `smssender-<number>`); the sender's open case is the newest
open one of that record and the read model's answer, both checked on their
case streams. The policy handles one sender's SMS one by one in log order
(different senders' at the same time) and records an opening before it moves
on, so whichever worker decides an SMS finds every earlier opening of its
sender in the log, after a restart too.

A reply that is only a score (1-5) after a case's completion answers the satisfaction
survey instead (`dispatch.intake.survey`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from dispatch.cases.events import CallerInfo
from dispatch.cases.read_model import newest_open_case_of_phone, newest_open_cases_of_phones
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.cases.state import CaseState, case_stream, fold, load_case
from dispatch.cases.status import DONE
from dispatch.core.bus import Handler, Send
from dispatch.core.capability import Deps
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, KeyReused, NotFound
from dispatch.core.messages import Command, Event, event, from_recorded, metadata, to_new_event
from dispatch.core.personal import ERASED, PERSONAL, phone_subject, pseudonym
from dispatch.core.phone import mask_phone, normalise_phone
from dispatch.intake.classify import classify
from dispatch.intake.contact import InboundContact
from dispatch.intake.survey import record_answer, survey_score, surveyed_case
from eventstore import ANY, AppendResult, EventStore, RecordedEvent
from eventstore.errors import IdempotencyConflict

log = structlog.get_logger(__name__)

def callable_number(raw: str | None) -> str | None:
    """The caller's number in canonical form, or None when it cannot be called back."""
    if not raw:
        return None
    try:
        return normalise_phone(raw)
    except InvalidCommand:
        return None


def words(contact: InboundContact) -> str:
    """What an SMS says: its text, then the URLs of an MMS's media (`extra["media"]`), a line each."""
    media = contact.extra.get("media") or []
    return "\n".join(part for part in (contact.text, *media) if isinstance(part, str) and part)


def sms_stream(contact: InboundContact) -> str:
    """The stream of one inbound SMS, named by its channel key (`twilio:sms:<MessageSid>`)."""
    return f"sms-{contact.idempotency_key}"


def sender_stream(phone: str) -> str:
    """The stream of the cases a sender's SMS opened (`smssender-<number>`, `+` as `00`)."""
    return f"smssender-{pseudonym(phone)}"


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
    phone: str | None = field(metadata=PERSONAL)
    text: str = field(metadata=PERSONAL)
    contact: InboundContact

    def data_subject(self) -> str | None:
        """The sender's."""
        return phone_subject(self.phone) or self.contact.caller.data_subject()


@event
@dataclass(frozen=True, slots=True)
class SmsCaseOpened(Event):
    """An SMS (`sms_stream`) opened a case for its sender; their next SMS join it while it is open."""

    case_id: str
    sms_stream: str


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
class TakeInSmsBatch(Command):
    """Take in several recorded SMS, in log order: what `TakeInSms` on each in turn does."""

    items: tuple[TakeInSms, ...]


@dataclass(frozen=True, slots=True)
class SmsTakenIn:
    """Where an SMS went: the case, whether it opened it, whether it was a redelivery, whether it
    answered a finished case's survey."""

    case_id: str
    opened: bool
    duplicate: bool
    surveyed: bool = False


async def receive_sms(cmd: ReceiveSms, *, store: EventStore) -> AppendResult:
    """Append `SmsReceived` (group-committed if the store does); a repeated key changes nothing,
    and a key repeated for another message (another text, media or sender) is `KeyReused`."""
    contact = cmd.contact
    stream = sms_stream(contact)
    meta = metadata(actor=f"channel:{contact.extra.get('source', 'sms')}", channel="sms",
                    correlation_id=stream, received_at=contact.received_at)
    result = await store.append(stream, [to_new_event(SmsReceived(contact), meta)], ANY,
                                idempotency_key=contact.idempotency_key)
    if result.duplicate:
        [stored] = await store.read_stream(result.stream, after_version=result.first_version - 1, limit=1)
        if not _same_sms(stored.data["contact"], contact):
            raise KeyReused("this message id was already used for another message")
    return result


def _same_sms(stored: dict[str, Any], contact: InboundContact) -> bool:
    """Whether a stored SMS says what `contact` says: its words and sender (erased: any)."""
    text, phone = stored.get("text"), (stored.get("caller") or {}).get("phone")
    media = (stored.get("extra") or {}).get("media") or []
    return ((text == ERASED or (text or "") == (contact.text or ""))
            and (phone == ERASED or phone == contact.caller.phone)
            and list(media) == list(contact.extra.get("media") or []))


def newest_open(cases: Iterable[CaseState]) -> str | None:
    """The id of the newest case not yet completed, called back, archived or closed."""
    open_cases = [(c.created_at, c.case_id) for c in cases
                  if c.created_at is not None and c.status not in DONE]
    return max(open_cases)[1] if open_cases else None


async def _read_model_case(pool: asyncpg.Pool, phone: str) -> str | None:
    try:
        async with pool.acquire() as conn:
            return await newest_open_case_of_phone(conn, phone)
    except asyncpg.UndefinedTableError:
        log.warning("cases_read_model_missing")
        return None


async def open_case_of(store: EventStore, pool: asyncpg.Pool, phone: str) -> str | None:
    """The sender's newest open case: the last one their SMS opened or the read model's, per the log."""
    opened = await store.read_stream(sender_stream(phone))
    own = str(opened[-1].data["case_id"]) if opened else None
    candidates = {c for c in (own, await _read_model_case(pool, phone)) if c is not None}
    return newest_open([await load_case(store, c) for c in sorted(candidates)])


async def open_cases_of(store: EventStore, pool: asyncpg.Pool,
                        phones: Collection[str]) -> dict[str, str | None]:
    """`open_case_of` for several senders at once, in three statements whatever their number."""
    if not phones:
        return {}
    opened = await store.read_streams([sender_stream(p) for p in phones])
    try:
        async with pool.acquire() as conn:
            read_model = await newest_open_cases_of_phones(conn, phones)
    except asyncpg.UndefinedTableError:
        log.warning("cases_read_model_missing")
        read_model = {}
    candidates: dict[str, set[str]] = {}
    for phone in phones:
        own = opened[sender_stream(phone)]
        found = (str(own[-1].data["case_id"]) if own else None, read_model.get(phone))
        candidates[phone] = {c for c in found if c is not None}
    streams = await store.read_streams(sorted({case_stream(c) for cs in candidates.values() for c in cs}))
    states: dict[str, CaseState] = {}
    for case_id in sorted({c for cs in candidates.values() for c in cs}):
        records = streams[case_stream(case_id)]
        if not records:
            raise NotFound(f"case {case_id} not found")
        states[case_id] = fold(case_id, records)
    return {p: newest_open([states[c] for c in sorted(cs)]) for p, cs in candidates.items()}


def _case_of(stream: str) -> str:
    return stream.split("-", 1)[1]


async def _open_case(cmd: TakeInSms, phone: str | None, key: str, store: EventStore,
                     clock: Clock) -> SmsTakenIn:
    contact = cmd.contact
    found = classify(contact.text)
    category = found.category
    registered = await register_case(
        RegisterCase(
            category=category, priority=found.priority, channel="sms",
            description=words(contact),  # empty: the console says so, in its language
            caller=CallerInfo(phone=phone), idempotency_key=key, actor="policy:sms-intake",
            raw=contact.raw, contact_stream=cmd.stream, correlation_id=cmd.stream,
        ),
        store=store, clock=clock,
    )
    log.info("sms_opened_case", case_id=registered.case_id, category=category,
             sender=mask_phone(phone))
    # A repeat answers the append the key stored first: the SMS opened that case if it
    # registered it (version 0), else it joined it.
    return SmsTakenIn(registered.case_id, registered.version == 0, registered.duplicate)


async def _join_case(cmd: TakeInSms, case_id: str, phone: str, key: str,
                     store: EventStore) -> SmsTakenIn:
    contact = cmd.contact
    evt = CaseMessageReceived(case_id, "sms", phone, words(contact), contact)
    meta = metadata(actor="policy:sms-intake", channel="sms", correlation_id=cmd.stream,
                    received_at=contact.received_at)
    try:
        result = await store.append(case_stream(case_id), [to_new_event(evt, meta)], ANY,
                                    idempotency_key=key)
    except IdempotencyConflict:
        # A repeated reaction: the SMS already went to another case.
        seen = await store.find_by_idempotency_key(key)
        if seen is None:
            raise
        return SmsTakenIn(_case_of(seen.stream), seen.first_version == 0, True)
    log.info("sms_joined_case", case_id=case_id, sender=mask_phone(phone))
    return SmsTakenIn(case_id, result.first_version == 0, result.duplicate)


async def _remember_opened(cmd: TakeInSms, phone: str, case_id: str, store: EventStore) -> None:
    meta = metadata(actor="policy:sms-intake", channel="sms", correlation_id=cmd.stream)
    await store.append(sender_stream(phone), [to_new_event(SmsCaseOpened(case_id, cmd.stream), meta)],
                       ANY, idempotency_key=f"{cmd.contact.idempotency_key}:sender")


async def _survey_reply(cmd: TakeInSms, phone: str, key: str, store: EventStore, pool: asyncpg.Pool,
                        clock: Clock) -> SmsTakenIn | None:
    """A bare 1-5 score after a completion answers the survey (`dispatch.intake.survey`); else None."""
    score = survey_score(cmd.contact.text)
    state = None if score is None else await surveyed_case(store, pool, phone, clock)
    if score is None or state is None:
        return None
    recorded = await record_answer(state, score, f"{cmd.contact.idempotency_key}:survey",
                                   store=store, clock=clock)
    if recorded is None:
        joined = await _join_case(cmd, state.case_id, phone, key, store)
        return dataclasses.replace(joined, surveyed=True)
    log.info("sms_survey_answered", case_id=state.case_id, score=score, sender=mask_phone(phone))
    return SmsTakenIn(state.case_id, False, False, surveyed=True)


async def take_in_sms(
    cmd: TakeInSms, *, store: EventStore, clock: Clock, pool: asyncpg.Pool
) -> SmsTakenIn:
    """Append the SMS to the sender's open case, or open a categorised case (idempotent).

    A case it opens is recorded on the sender's stream before the reaction ends
    (again, idempotently, on a repeat), so the sender's next SMS finds it.
    """
    phone = callable_number(cmd.contact.caller.phone)
    case_id = None if phone is None else await open_case_of(store, pool, phone)
    return await _take_in(cmd, phone, case_id, store, clock, pool)


async def _take_in(cmd: TakeInSms, phone: str | None, case_id: str | None, store: EventStore,
                   clock: Clock, pool: asyncpg.Pool) -> SmsTakenIn:
    """Answer the survey with a bare score, else join `case_id` (the sender's open case) or,
    without one, open a case and record it."""
    key = f"{cmd.contact.idempotency_key}:case"
    if phone is None:
        return await _open_case(cmd, None, key, store, clock)
    answered = await _survey_reply(cmd, phone, key, store, pool, clock)
    if answered is not None:
        return answered
    if case_id is None:
        taken = await _open_case(cmd, phone, key, store, clock)
    else:
        taken = await _join_case(cmd, case_id, phone, key, store)
    if taken.opened:
        await _remember_opened(cmd, phone, taken.case_id, store)
    return taken


def sender_key(event: RecordedEvent) -> str:
    """The callable number of the caller of an event's `contact`; else the event's stream."""
    contact = event.data.get("contact")
    caller = contact.get("caller") if isinstance(contact, dict) else None
    phone = caller.get("phone") if isinstance(caller, dict) else None
    return callable_number(phone if isinstance(phone, str) else None) or event.stream


BATCH_CHAINS = 32
"""Senders a batch takes SMS in for at once: enough to fill group commits, few enough that
other policies' appends queued behind them (a missed call's task) wait a flush or two."""


async def take_in_sms_batch(
    cmd: TakeInSmsBatch, *, store: EventStore, clock: Clock, pool: asyncpg.Pool
) -> list[SmsTakenIn]:
    """`take_in_sms` on each SMS in turn, with the senders' open cases read once for all.

    One sender's SMS are taken in one after the other in log order, each
    finding the case the one before joined or opened; different senders' at
    the same time (`BATCH_CHAINS` at most), so their appends share commits. After a redelivery (whose
    case may be another than the one decided now) the sender's open case is
    read again, as `take_in_sms` would. A failure stops its sender's chain;
    the others run to their end, then a failure is raised.
    """
    items = cmd.items
    phones = [callable_number(item.contact.caller.phone) for item in items]
    known = await open_cases_of(store, pool, {p for p in phones if p is not None})
    chains: dict[str, list[int]] = {}
    for index, (item, phone) in enumerate(zip(items, phones, strict=True)):
        chains.setdefault(phone or item.stream, []).append(index)
    taken: list[SmsTakenIn | None] = [None] * len(items)
    gate = asyncio.Semaphore(BATCH_CHAINS)

    async def chain(indexes: list[int]) -> None:
        async with gate:
            await _chain(indexes)

    async def _chain(indexes: list[int]) -> None:
        stale = False
        for index in indexes:
            phone = phones[index]
            if phone is not None and stale:
                known[phone] = await open_case_of(store, pool, phone)
            found = await _take_in(items[index], phone, None if phone is None else known[phone],
                                   store, clock, pool)
            taken[index] = found
            if phone is not None:  # a survey answer went to a finished case: read the open one again
                known[phone], stale = found.case_id, found.duplicate or found.surveyed

    outcomes = await asyncio.gather(*(chain(c) for c in chains.values()), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return [t for t in taken if t is not None]


class SmsIntakePolicy:
    """Takes each recorded SMS into a case (a reactor over the `sms` streams).

    Keyed by sender: one sender's SMS are taken in one after the other, in
    log order (the second finds the case the first opened); different
    senders' SMS at the same time (`eventstore.subscriptions.Keyed`).
    """

    name = "sms-intake"
    categories: frozenset[str] | None = frozenset({"sms"})
    types = frozenset({"SmsReceived"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""

    def __init__(self, handle: Send) -> None:
        self._handle = handle

    def key(self, event: RecordedEvent) -> str:
        """The sender's number as `take_in_sms` finds their case by it; else the SMS alone."""
        return sender_key(event)

    async def react_batch(self, events: Sequence[RecordedEvent]) -> None:
        """Send one `TakeInSmsBatch` for the batch's `SmsReceived` (a `BatchReactor`)."""
        items = tuple(TakeInSms(evt.contact, event.stream) for event in events
                      if isinstance(evt := from_recorded(event), SmsReceived))
        if items:
            await self._handle(TakeInSmsBatch(items))

    async def react(self, event: RecordedEvent) -> None:
        """Send `TakeInSms` for an `SmsReceived` (idempotent on the SMS's channel key)."""
        evt = from_recorded(event)
        if isinstance(evt, SmsReceived):
            await self._handle(TakeInSms(evt.contact, event.stream))


def reactors(deps: Deps) -> list[SmsIntakePolicy]:
    """The SMS intake policy."""
    return [SmsIntakePolicy(deps.bus.handle)]


HANDLERS: dict[type[Command], Handler] = {ReceiveSms: receive_sms, TakeInSms: take_in_sms,
                                          TakeInSmsBatch: take_in_sms_batch}
