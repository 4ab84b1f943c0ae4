"""The outbox sender: delivers queued notifications with retries, backoff and leases.

A row is claimed with a lease (`status = 'sending'`), so a crashed sender's
rows are picked up again when the lease runs out (at-least-once); the dedup key
goes to the provider as an idempotency token. Each outcome updates the row and
appends its delivery event in one transaction: the outcomes of one claimed
batch share one (one append statement and one update for all of them); if that
transaction fails, each outcome is recorded in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg
import structlog

from dispatch.core.capability import Deps, Task
from dispatch.core.clock import Clock
from dispatch.core.messages import Event, metadata, to_new_event
from dispatch.core.personal import ERASED
from dispatch.core.phone import mask_numbers, mask_phone
from dispatch.notify.outbox import (
    NOTIFICATION_CATEGORY,
    Claimed,
    NotificationAttemptFailed,
    NotificationFailed,
    NotificationSent,
    append_on,
    claim_due,
    mark_deliveries,
    mark_delivery,
    release_claims,
)
from dispatch.notify.provider import Delivery, DeliveryError, Provider
from eventstore import ANY, EventStore
from eventstore.errors import EventStoreError
from eventstore.postgres import append_many_on
from eventstore.records import AppendArgs

log = structlog.get_logger(__name__)

STOP_WAIT = 3.0
"""Seconds a stopping sender waits for the answers to the messages it has in flight (below the
5 s the process gives its background tasks to stop, `gateway.bootstrap.STOP_GRACE`)."""


class LogProvider:
    """The demo provider: writes the message to the log (number masked) and succeeds."""

    name = "log"

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        """Log the message."""
        log.info("notification_logged", to=mask_phone(to), text=text, dedup_key=dedup_key)
        return Delivery(f"log-{dedup_key}", "delivered")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How soon to try again, and for how long.

    A message is retried (exponential backoff, capped) until it is `give_up_after` old:
    a provider's outage of minutes or hours delays messages but fails none of them; a
    message still not taken after that long has lost its point (the case's own deadlines
    take over) and is recorded as failed. 4 hours is also the longest validity Twilio
    gives a message (`ValidityPeriod`).
    """

    base_delay: float = 2.0
    max_delay: float = 300.0
    give_up_after: float = 4 * 3600.0

    def retry_at(self, asked_at: datetime, now: datetime, attempt: int,
                 retry_after: float | None = None) -> datetime | None:
        """When to try again a message asked at `asked_at` after failed attempt `attempt` (None: never)."""
        at = now + timedelta(seconds=self.delay(attempt, retry_after))
        return at if at <= asked_at + timedelta(seconds=self.give_up_after) else None

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (exponential, capped).

        A provider's `Retry-After` is honoured up to `max_delay`: a huge, infinite or
        meaningless one must neither park the message for ever nor stop the sender.
        """
        backoff = min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)
        asked = retry_after if retry_after is not None and math.isfinite(retry_after) else 0.0
        return float(max(backoff, min(asked, self.max_delay)))


class Sender:
    """Claims due outbox rows and delivers them through the provider of their channel."""

    def __init__(
        self, pool: asyncpg.Pool, store: EventStore, providers: Mapping[str, Provider], clock: Clock,
        *, retry: RetryPolicy | None = None, batch: int = 50, lease: float = 60.0,
        interval: float = 0.2, stop_wait: float = STOP_WAIT,
    ) -> None:
        """`store` is woken after each delivery event commits (the events are appended on `pool`).

        `stop_wait`: how long a sender being stopped waits for the answers to the messages it
        has in flight (see `drain_once`).
        """
        self._pool = pool
        self._store = store
        self._providers = dict(providers)
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._batch = batch
        self._lease = lease
        self._interval = interval
        self._stop_wait = stop_wait

    async def run(self) -> None:
        """Deliver forever (cancel to stop)."""
        while True:
            if not await self.drain_once():
                await asyncio.sleep(self._interval)

    async def drain_once(self) -> int:
        """Claim and deliver one batch of due messages; answers how many were tried.

        Cancelled (the process is stopping) while the batch is out, it waits up to
        `stop_wait` for the provider's answers and records them, so that a message
        handed over is not sent again after the lease; the rows still without an
        answer then are handed back at once (their lease ended) for another worker.
        """
        async with self._pool.acquire() as conn:
            rows = await claim_due(conn, self._batch, self._lease)
        if not rows:
            return 0
        sends = [asyncio.ensure_future(self._deliver(row)) for row in rows]
        batch = asyncio.ensure_future(self._finish(sends))
        try:
            await asyncio.shield(batch)
        except asyncio.CancelledError:
            await self._stop(rows, sends, batch)
            raise
        return len(rows)

    async def _finish(self, sends: Sequence[asyncio.Future[_Outcome]]) -> None:
        await self._record_all(list(await asyncio.gather(*sends)))

    async def _stop(self, rows: list[Claimed], sends: Sequence[asyncio.Future[_Outcome]],
                    batch: asyncio.Future[None]) -> None:
        """Stopping mid-batch: let it finish for a while, else record what was answered, release the rest."""
        done, _ = await asyncio.wait([batch], timeout=self._stop_wait)
        if done:
            return
        batch.cancel()
        for send in sends:
            send.cancel()
        await asyncio.gather(batch, *sends, return_exceptions=True)
        answered = [s.result() for s in sends if not s.cancelled() and s.exception() is None]
        try:
            if answered:
                await self._record_all(answered)
            recorded = {o.row.id for o in answered}
            async with self._pool.acquire() as conn:
                await release_claims(conn, [r.id for r in rows if r.id not in recorded])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, EventStoreError):
            log.warning("outbox_release_failed", exc_info=True)  # the leases run out instead

    async def _deliver(self, row: Claimed) -> _Outcome:
        provider = self._providers.get(row.channel) or self._providers["log"]
        attempt = int(row.attempts)
        if row.to_addr == ERASED:  # its recipient was erased (dispatch.personal) before it went out
            return self._failed(row, attempt, DeliveryError("recipient erased", retryable=False))
        try:
            delivery = await provider.send(row.to_addr, row.body, row.dedup_key)
        except DeliveryError as exc:
            return self._failed(row, attempt, exc)
        except Exception as exc:  # a provider's bug must not cost the batch's other outcomes
            log.exception("notification_provider_error", dedup_key=row.dedup_key, provider=provider.name)
            return self._failed(row, attempt, DeliveryError(
                f"{provider.name} error: {type(exc).__name__}", retryable=True))
        now = self._clock.now()
        evt = NotificationSent(row.dedup_key, provider.name, delivery.provider_id, delivery.status,
                               attempt, now)
        return _Outcome(row, evt, "sent", delivery.provider_id, None, None, f"sent:{attempt}")

    def _failed(self, row: Claimed, attempt: int, exc: DeliveryError) -> _Outcome:
        now = self._clock.now()
        # a provider's message may quote the number ("The 'To' number +86139... is not valid"):
        # the error is kept in the log of events and on the row, where no number may stand whole
        error = mask_numbers(exc.message)
        retry_at = (self._retry.retry_at(row.created_at, now, attempt, exc.retry_after)
                    if exc.retryable else None)
        if retry_at is not None:
            evt: Event = NotificationAttemptFailed(row.dedup_key, attempt, error, retry_at, now)
            return _Outcome(row, evt, "retry", None, error, retry_at, f"retry:{attempt}")
        evt = NotificationFailed(row.dedup_key, attempt, error, now)
        log.warning("notification_failed", dedup_key=row.dedup_key, error=error)
        return _Outcome(row, evt, "failed", None, error, None, f"failed:{attempt}")

    async def _record_all(self, outcomes: list[_Outcome]) -> None:
        """Every outcome in one transaction; if that fails, each in one of its own."""
        if len(outcomes) > 1:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    answers = await append_many_on(conn, [o.append() for o in outcomes])
                    for answer in answers:
                        if isinstance(answer, EventStoreError):
                            raise answer
                    await mark_deliveries(conn, [o.mark() for o in outcomes])
            except (asyncpg.PostgresError, EventStoreError):
                log.warning("delivery_batch_failed", size=len(outcomes), exc_info=True)
            else:
                self._store.wake((NOTIFICATION_CATEGORY,))
                return
        for outcome in outcomes:
            await self._record(outcome)

    async def _record(self, outcome: _Outcome) -> None:
        row = outcome.row
        meta = metadata(actor="worker:sender", channel=row.channel)
        async with self._pool.acquire() as conn, conn.transaction():
            await append_on(conn, row.stream, [outcome.event], meta,
                            key=f"notify:{row.dedup_key}:{outcome.outcome}")
            await mark_delivery(conn, *outcome.mark())
        self._store.wake((NOTIFICATION_CATEGORY,))


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One delivery attempt's outcome: its event and what its row becomes."""

    row: Claimed
    event: Event
    status: str
    provider_id: str | None
    error: str | None
    retry_at: datetime | None
    outcome: str

    def append(self) -> AppendArgs:
        meta = metadata(actor="worker:sender", channel=self.row.channel)
        return AppendArgs.of(self.row.stream, [to_new_event(self.event, meta)], ANY,
                             idempotency_key=f"notify:{self.row.dedup_key}:{self.outcome}")

    def mark(self) -> tuple[int, str, str | None, str | None, datetime | None]:
        return self.row.id, self.status, self.provider_id, self.error, self.retry_at


class NotifyDeps(Deps, Protocol):
    """What the outbox sender uses: the common dependencies and the delivery providers."""

    @property
    def notify_providers(self) -> Mapping[str, Provider]:
        """The providers by outbox channel (the composition root picks them from the settings)."""
        ...


def workers(deps: NotifyDeps) -> list[Task]:
    """The outbox sender, delivering through `deps.notify_providers`."""
    sender = Sender(deps.pool, deps.store, deps.notify_providers, deps.clock)

    async def run() -> None:
        try:
            await sender.run()
        finally:
            for provider in {id(p): p for p in deps.notify_providers.values()}.values():
                close = getattr(provider, "close", None)
                if close is not None:
                    await close()

    return [run]
