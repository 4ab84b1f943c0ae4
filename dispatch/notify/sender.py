"""The outbox sender: delivers queued notifications with retries, backoff and leases.

A row is claimed with a lease (`status = 'sending'`), so a crashed sender's
rows are picked up again when the lease runs out (at-least-once); the dedup key
goes to the provider as an idempotency token. Each outcome updates the row and
appends its delivery event in one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import asyncpg
import structlog

from channels.twilio_rest import DEFAULT_API_BASE, Delivery, DeliveryError, TwilioMessages
from dispatch.cases.registration import mask_phone
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidConfig
from dispatch.core.messages import Event, metadata
from dispatch.notify.outbox import (
    NOTIFICATION_CATEGORY,
    NotificationAttemptFailed,
    NotificationFailed,
    NotificationSent,
    append_on,
)
from eventstore import EventStore

log = structlog.get_logger(__name__)

_CLAIM = """UPDATE notification_outbox SET status = 'sending', attempts = attempts + 1,
        lease_until = now() + $2 * interval '1 second', updated_at = now()
    WHERE id IN (SELECT id FROM notification_outbox
                 WHERE (status IN ('pending', 'retry') AND next_attempt_at <= now())
                    OR (status = 'sending' AND lease_until < now())
                 ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING id, dedup_key, stream, channel, to_addr, body, attempts"""
_UPDATE = """UPDATE notification_outbox SET status = $2, provider_id = coalesce($3, provider_id),
        last_error = $4, next_attempt_at = coalesce($5, next_attempt_at), lease_until = NULL,
        updated_at = now() WHERE id = $1"""


class Provider(Protocol):
    """Something that delivers a message or raises `DeliveryError`."""

    name: str

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        """Deliver one message."""
        ...


class LogProvider:
    """The demo provider: writes the message to the log (number masked) and succeeds."""

    name = "log"

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        """Log the message."""
        log.info("notification_logged", to=mask_phone(to), text=text, dedup_key=dedup_key)
        return Delivery(f"log-{dedup_key}", "delivered")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how soon to try again."""

    max_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (exponential, capped)."""
        backoff = min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)
        return float(max(backoff, retry_after or 0.0))


class Sender:
    """Claims due outbox rows and delivers them through the provider of their channel."""

    def __init__(
        self, pool: asyncpg.Pool, store: EventStore, providers: Mapping[str, Provider], clock: Clock,
        *, retry: RetryPolicy | None = None, batch: int = 50, lease: float = 60.0,
        interval: float = 0.2,
    ) -> None:
        """`store` is woken after each delivery event commits (the events are appended on `pool`)."""
        self._pool = pool
        self._store = store
        self._providers = dict(providers)
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._batch = batch
        self._lease = lease
        self._interval = interval

    async def run(self) -> None:
        """Deliver forever (cancel to stop)."""
        while True:
            if not await self.drain_once():
                await asyncio.sleep(self._interval)

    async def drain_once(self) -> int:
        """Claim and deliver one batch of due messages; answers how many were tried."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_CLAIM, self._batch, self._lease)
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        provider = self._providers.get(row["channel"]) or self._providers["log"]
        attempt = int(row["attempts"])
        try:
            delivery = await provider.send(row["to_addr"], row["body"], row["dedup_key"])
        except DeliveryError as exc:
            await self._failed(row, attempt, exc)
            return
        now = self._clock.now()
        evt = NotificationSent(row["dedup_key"], provider.name, delivery.provider_id, delivery.status,
                               attempt, now)
        await self._record(row, evt, "sent", delivery.provider_id, None, None, f"sent:{attempt}")

    async def _failed(self, row: asyncpg.Record, attempt: int, exc: DeliveryError) -> None:
        now = self._clock.now()
        if exc.retryable and attempt < self._retry.max_attempts:
            retry_at = now + timedelta(seconds=self._retry.delay(attempt, exc.retry_after))
            evt: Event = NotificationAttemptFailed(row["dedup_key"], attempt, exc.message, retry_at, now)
            await self._record(row, evt, "retry", None, exc.message, retry_at, f"retry:{attempt}")
            return
        evt = NotificationFailed(row["dedup_key"], attempt, exc.message, now)
        await self._record(row, evt, "failed", None, exc.message, None, f"failed:{attempt}")
        log.warning("notification_failed", dedup_key=row["dedup_key"], error=exc.message)

    async def _record(
        self, row: asyncpg.Record, evt: Event, status: str, provider_id: str | None,
        error: str | None, retry_at: Any, outcome: str,
    ) -> None:
        meta = metadata(actor="worker:sender", channel=row["channel"])
        async with self._pool.acquire() as conn, conn.transaction():
            await append_on(conn, row["stream"], [evt], meta,
                            key=f"notify:{row['dedup_key']}:{outcome}")
            await conn.execute(_UPDATE, row["id"], status, provider_id, error, retry_at)
        self._store.wake((NOTIFICATION_CATEGORY,))


SMS_PROVIDERS: frozenset[str] = frozenset({"twilio", "log"})


@dataclass(frozen=True, slots=True)
class SmsConfig:
    """Where outbound SMS go: `log` (written to the log only) or `twilio` (its Messages API)."""

    provider: str = "log"
    account_sid: str = ""
    auth_token: str = ""
    sender: str = ""
    api_base: str = DEFAULT_API_BASE

    def __post_init__(self) -> None:
        if self.provider not in SMS_PROVIDERS:
            raise InvalidConfig("provider", f"must be one of {sorted(SMS_PROVIDERS)}")
        if self.provider == "twilio" and not self.account_sid:
            raise InvalidConfig("account_sid", "is needed to send SMS through Twilio")
        if self.provider == "twilio" and not self.auth_token:
            raise InvalidConfig("auth_token", "is needed to send SMS through Twilio")
        if not self.api_base.startswith(("http://", "https://")):
            raise InvalidConfig("api_base", "must be an http:// or https:// URL")


def providers_from(config: SmsConfig) -> dict[str, Provider]:
    """The providers the configuration asks for."""
    log_provider = LogProvider()
    found: dict[str, Provider] = {"log": log_provider, "sms": log_provider, "wechat": log_provider}
    if config.provider == "twilio":
        found["sms"] = TwilioMessages(
            account_sid=config.account_sid, auth_token=config.auth_token,
            sender=config.sender, api_base=config.api_base,
        )
    return found


def workers(services: Any) -> list[Callable[[], Awaitable[None]]]:
    """The outbox sender (bootstrap hook)."""
    providers = providers_from(services.settings.notifications)
    sender = Sender(services.pool, services.store, providers, services.clock)

    async def run() -> None:
        try:
            await sender.run()
        finally:
            for provider in {id(p): p for p in providers.values()}.values():
                close = getattr(provider, "close", None)
                if close is not None:
                    await close()

    return [run]
