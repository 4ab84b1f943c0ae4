"""Outbound notifications through a transactional outbox.

`RequestNotification` appends `NotificationRequested` to `notification-<dedup>`
and inserts the outbox row in ONE transaction; the same `dedup_key` never
sends twice. `dispatch.notify.sender` delivers rows and records the delivery status as
events. `AcknowledgementPolicy` asks for the citizen's SMS on acceptance and
on completion (DOMAIN.md: "SMS at each stage").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import TypeAlias

import asyncpg

from dispatch.cases.events import CaseRegistered
from dispatch.cases.state import case_stream
from dispatch.core.bus import Handler, Send
from dispatch.core.capability import Deps
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import Command, Event, Json, event, from_recorded, metadata, to_new_event
from dispatch.core.personal import PERSONAL, phone_subject, subject
from dispatch.core.texts import CHINESE, Texts
from eventstore import ANY, NO_STREAM, EventStore, RecordedEvent, WrongExpectedVersion
from eventstore.postgres import append_many_on
from eventstore.postgres import append_on as store_append_on
from eventstore.records import AppendArgs

CHANNELS: tuple[str, ...] = ("sms", "wechat")
MAX_TEXT = 1600
NOTIFICATION_CATEGORY = "notification"
_STREAM_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,150}$")



class Lane(IntEnum):
    """How urgent a message is: a due message of a lower lane goes out before any of a higher one.

    In a storm the outbox holds thousands of acknowledgements and broadcasts; an elder's
    emergency alert to the family must not wait behind them (DOMAIN.md: notify at once).
    """

    URGENT = 0
    """Emergency alerts (the elderly one-touch alarm's contacts)."""
    NORMAL = 1
    """One message about one case: acknowledgements, a unit's dispatch, chases, surveys."""
    BULK = 2
    """Messages to many at once: an incident's cause told to every caller in it."""


@dataclass(frozen=True, slots=True)
class RequestNotification(Command):
    """Ask for one outbound message; the same `dedup_key` is sent at most once."""

    dedup_key: str
    channel: str
    to: str
    text: str
    case_id: str | None = None
    reason: str = ""
    actor: str | None = None
    subject: str | None = None
    """Whose personal data the text carries when it is not the recipient's (a unit told of a
    citizen's case): the text is sealed with that subject's key (never stored as such)."""
    lane: Lane = Lane.NORMAL
    """Which lane of the outbox it waits in (`Lane`)."""


@dataclass(frozen=True, slots=True)
class RequestNotifications(Command):
    """Several `RequestNotification` at once: each keeps its own dedup key."""

    items: tuple[RequestNotification, ...]


@event
@dataclass(frozen=True, slots=True)
class NotificationRequested(Event):
    """A message was asked for; its outbox row committed with this event."""

    dedup_key: str
    channel: str
    to: str = field(metadata=PERSONAL)
    text: str = field(metadata=PERSONAL)
    case_id: str | None
    reason: str
    requested_at: datetime

    def data_subject(self) -> str | None:
        """The recipient's (a request names the case's caller instead when it knows it)."""
        return phone_subject(self.to) if self.channel == "sms" else subject("openid", self.to)


@event
@dataclass(frozen=True, slots=True)
class NotificationSent(Event):
    """The provider accepted the message."""

    dedup_key: str
    provider: str
    provider_id: str | None
    status: str
    attempt: int
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class NotificationAttemptFailed(Event):
    """A delivery attempt failed; another follows at `retry_at`."""

    dedup_key: str
    attempt: int
    error: str
    retry_at: datetime
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class NotificationFailed(Event):
    """Delivery was given up (permanent error or too many attempts)."""

    dedup_key: str
    attempt: int
    error: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordDeliveryStatus(Command):
    """A provider's report of what became of a message it took (Twilio's status callback)."""

    provider_id: str
    status: str
    error_code: str | None = None


@event
@dataclass(frozen=True, slots=True)
class NotificationStatusReported(Event):
    """The provider reported the message's status (`delivered`, `undelivered`, `failed`, ...)."""

    dedup_key: str
    provider_id: str
    status: str
    error_code: str | None
    at: datetime


DELIVERY_OUTCOMES: dict[str, str] = {
    "delivered": "delivered", "read": "delivered", "undelivered": "undelivered", "failed": "undelivered"}
"""A provider's final statuses and what the outbox row becomes: a row the provider took
(`sent`) is `delivered` when the handset got it, `undelivered` when the carrier could not."""


def notification_stream(dedup_key: str) -> str:
    """The stream of one notification (a hash when the key has unusual characters)."""
    key = dedup_key if _STREAM_ID.match(dedup_key) else hashlib.sha256(dedup_key.encode()).hexdigest()
    return f"{NOTIFICATION_CATEGORY}-{key}"


async def append_on(
    conn: asyncpg.Connection, stream: str, events: Sequence[Event], meta: Json,
    *, expected: int = ANY, key: str | None = None, subject: str | None = None,
) -> bool:
    """Append domain events inside the caller's transaction (the store's `append_on`).

    Answers False when the idempotency key (or, with `NO_STREAM`, the stream)
    already exists, also when a concurrent duplicate committed first.
    """
    news = [to_new_event(e, meta, subject=subject) for e in events]
    try:
        result = await store_append_on(conn, stream, news, expected, idempotency_key=key)
    except WrongExpectedVersion:
        return False
    return not result.duplicate


def fit_text(text: str) -> str:
    """`text` cut to `MAX_TEXT` UTF-16 code units (what SMS counts: an emoji is two), ending
    in "…", never inside a character.

    The messages are asked for by policies reacting to events, and their texts carry what
    people wrote (an extension's reason, an incident's cause): a text refused for its length
    would stop the policy at that event, and every message and timer after it with it.
    """
    if len(text.encode("utf-16-le")) // 2 <= MAX_TEXT:
        return text
    kept, units = [], 0
    for char in text:
        units += 2 if ord(char) > 0xFFFF else 1
        if units > MAX_TEXT - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


def _validate(cmd: RequestNotification) -> None:
    if cmd.channel not in CHANNELS:
        raise InvalidCommand(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    if not cmd.to or not cmd.text or not cmd.dedup_key:
        raise InvalidCommand("dedup_key, to and text are required", field="to")


async def _enqueue(conn: asyncpg.Connection, cmd: RequestNotification, stream: str, text: str) -> None:
    await conn.execute(
        """INSERT INTO notification_outbox (dedup_key, stream, case_id, channel, to_addr, body, reason, lane)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dedup_key) DO NOTHING""",
        cmd.dedup_key, stream, cmd.case_id, cmd.channel, cmd.to, text, cmd.reason, int(cmd.lane),
    )


def _requested(cmd: RequestNotification, clock: Clock) -> tuple[str, NotificationRequested, Json]:
    _validate(cmd)
    stream = notification_stream(cmd.dedup_key)
    evt = NotificationRequested(cmd.dedup_key, cmd.channel, cmd.to, fit_text(cmd.text), cmd.case_id,
                                cmd.reason, clock.now())
    meta = metadata(actor=cmd.actor or "policy:notifications",
                    correlation_id=cmd.case_id or stream, channel=cmd.channel)
    return stream, evt, meta


async def request_notification(
    cmd: RequestNotification, *, pool: asyncpg.Pool, clock: Clock, store: EventStore
) -> bool:
    """Commit the request event and its outbox row together; False if the key was seen before."""
    stream, evt, meta = _requested(cmd, clock)
    async with pool.acquire() as conn, conn.transaction():
        if not await append_on(conn, stream, [evt], meta, expected=NO_STREAM,
                               key=f"notify:{cmd.dedup_key}", subject=cmd.subject):
            return False
        await _enqueue(conn, cmd, stream, evt.text)
    store.wake((NOTIFICATION_CATEGORY,))
    return True


_ENQUEUE_MANY = """INSERT INTO notification_outbox
    (dedup_key, stream, case_id, channel, to_addr, body, reason, lane)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::smallint[])
    ON CONFLICT (dedup_key) DO NOTHING"""


async def request_notifications(
    cmd: RequestNotifications, *, pool: asyncpg.Pool, clock: Clock, store: EventStore
) -> list[bool]:
    """`request_notification` of each, in ONE transaction: the events, then the new rows in one insert.

    Each answer is False when its key was seen before (or repeats an earlier one of the batch).
    """
    items = cmd.items
    requested = [_requested(c, clock) for c in items]
    appends = [AppendArgs.of(stream, [to_new_event(evt, meta, subject=c.subject)], NO_STREAM,
                             idempotency_key=f"notify:{c.dedup_key}")
               for c, (stream, evt, meta) in zip(items, requested, strict=True)]
    async with pool.acquire() as conn, conn.transaction():
        answers = await append_many_on(conn, appends)
        fresh: list[bool] = []
        for answer in answers:
            if isinstance(answer, WrongExpectedVersion):
                fresh.append(False)
            elif isinstance(answer, Exception):
                raise answer
            else:
                fresh.append(not answer.duplicate)
        rows = [(c.dedup_key, stream, c.case_id, c.channel, c.to, evt.text, c.reason, int(c.lane))
                for c, (stream, evt, _), new in zip(items, requested, fresh, strict=True) if new]
        if rows:
            await conn.execute(_ENQUEUE_MANY, *(list(column) for column in zip(*rows, strict=True)))
    if rows:
        store.wake((NOTIFICATION_CATEGORY,))
    return fresh


Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
"""Where a query runs: the pool, or a connection already in a transaction."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row claimed for one delivery attempt (`attempts` counts this one)."""

    id: int
    dedup_key: str
    stream: str
    channel: str
    to_addr: str
    body: str
    attempts: int
    created_at: datetime
    """When it was asked for (a message is retried only for so long: `sender.RetryPolicy`)."""


async def claim_due(db: Db, batch: int, lease_s: float) -> list[Claimed]:
    """Lease up to `batch` due rows (pending, to retry, or with an expired lease) for delivery.

    The most urgent lane first (`Lane`), then the longest due.
    """
    rows = await db.fetch(
        """UPDATE notification_outbox SET status = 'sending', attempts = attempts + 1,
               lease_until = now() + $2 * interval '1 second', updated_at = now()
           WHERE id IN (SELECT id FROM notification_outbox
                        WHERE (status IN ('pending', 'retry') AND next_attempt_at <= now())
                           OR (status = 'sending' AND lease_until < now())
                        ORDER BY lane, next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, dedup_key, stream, channel, to_addr, body, attempts, created_at""",
        batch, lease_s)
    return [Claimed(**dict(r)) for r in rows]


async def release_claims(db: Db, row_ids: Sequence[int]) -> None:
    """End the leases of claimed rows no outcome was recorded for: any sender may claim them now."""
    await db.execute(
        """UPDATE notification_outbox SET lease_until = now() - interval '1 second', updated_at = now()
           WHERE id = ANY($1::bigint[]) AND status = 'sending'""", list(row_ids))


async def mark_delivery(
    db: Db, row_id: int, status: str, provider_id: str | None, error: str | None,
    retry_at: datetime | None,
) -> None:
    """Record an attempt's outcome on its row and release the lease."""
    await db.execute(
        """UPDATE notification_outbox SET status = $2, provider_id = coalesce($3, provider_id),
               last_error = $4, next_attempt_at = coalesce($5, next_attempt_at), lease_until = NULL,
               updated_at = now() WHERE id = $1""", row_id, status, provider_id, error, retry_at)


async def mark_deliveries(
    db: Db, marks: Sequence[tuple[int, str, str | None, str | None, datetime | None]],
) -> None:
    """`mark_delivery` of several rows in one statement: (row id, status, provider id, error, retry at)."""
    ids, statuses, provider_ids, errors, retry_ats = (list(c) for c in zip(*marks, strict=True))
    await db.execute(
        """UPDATE notification_outbox o SET status = m.status,
               provider_id = coalesce(m.provider_id, o.provider_id), last_error = m.error,
               next_attempt_at = coalesce(m.retry_at, o.next_attempt_at), lease_until = NULL,
               updated_at = now()
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
                AS m(id, status, provider_id, error, retry_at)
           WHERE o.id = m.id""", ids, statuses, provider_ids, errors, retry_ats)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """An outbound message and its delivery state."""

    id: int
    dedup_key: str
    case_id: str | None
    channel: str
    to_addr: str
    body: str
    reason: str
    status: str
    attempts: int
    next_attempt_at: datetime
    provider_id: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


async def list_outbox(
    db: Db, case_id: str | None, status: str | None, after_id: int, limit: int,
    scope: Collection[str] | None = None,
) -> list[OutboxItem]:
    """Outbox rows of a case and/or status (None: any), by id after `after_id`; with a `scope`
    (organisation nodes), only those of cases held by or assigned to one of them."""
    rows = await db.fetch(
        """SELECT id, dedup_key, case_id, channel, to_addr, body, reason, status, attempts,
                  next_attempt_at, provider_id, last_error, created_at, updated_at
           FROM notification_outbox o
           WHERE ($1::text IS NULL OR case_id = $1) AND ($2::text IS NULL OR status = $2) AND id > $3
             AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM cases c WHERE c.case_id = o.case_id
                  AND (c.owner = ANY($5::text[]) OR c.assigned_to = ANY($5::text[]))))
           ORDER BY id LIMIT $4""", case_id, status, after_id, limit,
        None if scope is None else sorted(scope))
    return [OutboxItem(**dict(r)) for r in rows]


async def record_delivery_status(
    cmd: RecordDeliveryStatus, *, pool: asyncpg.Pool, clock: Clock, store: EventStore
) -> bool:
    """Record a status report on its message's stream; a final one moves a `sent` row on.

    Answers False for a message this server did not send (no row has the provider's id) and for
    a report already recorded (the same id and status). Reports may come out of order: a row
    leaves `sent` once, so a late `sent` or a second final status changes nothing.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT id, dedup_key, stream, channel, status FROM notification_outbox "
            "WHERE provider_id = $1 FOR UPDATE", cmd.provider_id)
        if row is None:
            return False
        evt = NotificationStatusReported(row["dedup_key"], cmd.provider_id, cmd.status, cmd.error_code,
                                         clock.now())
        meta = metadata(actor="channel:twilio", channel=row["channel"])
        if not await append_on(conn, row["stream"], [evt], meta,
                               key=f"notify-status:{cmd.provider_id}:{cmd.status}"):
            return False
        outcome = DELIVERY_OUTCOMES.get(cmd.status)
        if outcome is not None and row["status"] == "sent":
            error = f"{cmd.status} {cmd.error_code or ''}".strip() if outcome == "undelivered" else None
            await conn.execute("UPDATE notification_outbox SET status = $2, last_error = $3, "
                               "updated_at = now() WHERE id = $1", row["id"], outcome, error)
    store.wake((NOTIFICATION_CATEGORY,))
    return True


HANDLERS: dict[type[Command], Handler] = {RequestNotification: request_notification,
                                          RequestNotifications: request_notifications,
                                          RecordDeliveryStatus: record_delivery_status}


SELF_SERVICE_CHANNELS: frozenset[str] = frozenset({"sms", "wechat"})
"""Channels whose consultations the knowledge base may answer by itself (dispatch.knowledge.self_service)."""


def self_service_candidate(evt: CaseRegistered) -> bool:
    """A consultation the knowledge base may answer: its answer (or else the self-service policy's
    acknowledgement) is the citizen's one reply."""
    return evt.category == "consultation" and evt.channel in SELF_SERVICE_CHANNELS


def acknowledgement(case_id: str, phone: str, texts: Texts) -> RequestNotification:
    """The SMS telling the citizen their case was accepted (dedup on the case)."""
    return RequestNotification(dedup_key=f"ack:{case_id}", channel="sms", to=phone,
                               text=texts.say("notify.ack", case_id=case_id), case_id=case_id,
                               reason="accepted")


class AcknowledgementPolicy:
    """Asks for the citizen's SMS when a case is accepted and when it is completed.

    A case from WeChat with no phone number is told of its completion over WeChat (the
    acceptance was the passive reply to the citizen's message).

    Keyed by case (`eventstore.subscriptions.Keyed`): different cases' requests
    are made at the same time, each case's in log order.
    """

    name = "notifications-ack"
    categories: frozenset[str] | None = frozenset({"case"})
    types = frozenset({"CaseRegistered", "CaseCompleted"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""

    def __init__(self, handle: Send, store: EventStore, texts: Texts = CHINESE) -> None:
        self._handle = handle
        self._store = store
        self._texts = texts

    def key(self, event: RecordedEvent) -> str:
        """The case stream: a request depends on that case alone."""
        return event.stream

    async def react(self, event: RecordedEvent) -> None:
        """Request the acknowledgement this event calls for (dedup on the case)."""
        request = await self._request(event)
        if request is not None:
            await self._handle(request)

    async def react_batch(self, events: Sequence[RecordedEvent]) -> None:
        """The batch's requests in one transaction (`RequestNotifications`; a `BatchReactor`)."""
        requests = [r for r in [await self._request(e) for e in events] if r is not None]
        if requests:
            await self._handle(RequestNotifications(tuple(requests)))

    async def _request(self, event: RecordedEvent) -> RequestNotification | None:
        if event.type == "CaseRegistered":
            evt = from_recorded(event)
            # An alarm's caller is a device: the elderly flow tells the contacts instead; a
            # consultation the knowledge base may answer is acknowledged by that answer or, when
            # there is none, by the self-service policy (one reply, never two).
            # A landline caller gets none (`CallerInfo.reach`); a WeChat follower had the passive reply.
            if isinstance(evt, CaseRegistered) and evt.channel != "alarm" and not self_service_candidate(evt):
                reach = evt.caller.reach()
                if reach is not None and reach[0] == "sms":
                    return acknowledgement(evt.case_id, reach[1], self._texts)
        elif event.type == "CaseCompleted":
            case_id = str(event.data.get("case_id") or event.stream.split("-", 1)[1])
            to = await self._citizen_of(case_id)
            if to:  # by SMS the citizen can answer the satisfaction survey with a digit
                message = "notify.done_survey" if to[0] == "sms" else "notify.done"
                return self._ask(case_id, to[1], "done", message, "completed", channel=to[0])
        return None

    async def _citizen_of(self, case_id: str) -> tuple[str, str] | None:
        """Where the citizen is told: their phone by SMS, else their WeChat OpenID."""
        first = await self._store.read_stream(case_stream(case_id), limit=1)
        evt: Event | None = from_recorded(first[0]) if first else None
        return evt.caller.reach() if isinstance(evt, CaseRegistered) else None

    def _ask(
        self, case_id: str, to: str, stage: str, message: str, reason: str, *, channel: str = "sms",
    ) -> RequestNotification:
        return RequestNotification(
            dedup_key=f"{stage}:{case_id}", channel=channel, to=to,
            text=self._texts.say(message, case_id=case_id), case_id=case_id, reason=reason,
        )


def reactors(deps: Deps) -> list[AcknowledgementPolicy]:
    """The acknowledgement policy."""
    return [AcknowledgementPolicy(deps.bus.handle, deps.store, deps.texts)]
