"""Durable timers in PostgreSQL: a command to send through the bus at a due time.

Others schedule and cancel by key (any text; reuse a key to move a timer):

    from dispatch.core.timers import schedule, cancel, timer_command

    @timer_command                      # register the command type once
    @dataclass(frozen=True, slots=True)
    class RemindAgent(Command): ...

    await schedule(pool_or_conn, "remind:T42", due_at, RemindAgent(...))
    await cancel(pool_or_conn, "remind:T42")

Passing a connection inside a transaction makes the timer part of that
transaction (e.g. a projection's); pools and connections must come from
`eventstore.postgres.create_pool` (its jsonb codec). `TimerWorker` (one per serving process,
several processes may run) fires due timers within a second of their due
time: it leases a batch (`due_at` moved to now + lease, `FOR UPDATE SKIP
LOCKED`), sends each command through the bus, then deletes the row - unless
it was rescheduled meanwhile. A handler may answer `Reschedule(due_at)` to
keep the same timer going (periodic chasing). A crash between sending and
deleting fires the command again after the lease (a worker stopped mid-batch
hands the timers it had not fired yet back at once): handlers must be
idempotent (decide from state, append with idempotency keys). A failing
command is retried with backoff and its error kept in `last_error`. Timers
survive restarts: one due while no process ran fires at the next start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias, TypeVar

import asyncpg
import structlog

from dispatch.core.bus import Send
from dispatch.core.capability import Deps, Task
from dispatch.core.clock import Clock
from dispatch.core.errors import DispatchError
from dispatch.core.messages import Json, from_data, to_data

log = structlog.get_logger(__name__)

TIMER_COMMANDS: dict[str, type] = {}
"""Command types a timer may carry, by class name."""
T = TypeVar("T", bound=type)
Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"
POLL_SECONDS = 0.25
LEASE = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=5)


def timer_command(cls: T) -> T:
    """Class decorator: let timers carry this command type."""
    name = cls.__name__
    if TIMER_COMMANDS.get(name, cls) is not cls:
        raise TypeError(f"timer command {name} registered twice")
    TIMER_COMMANDS[name] = cls
    return cls


@dataclass(frozen=True, slots=True)
class Reschedule:
    """What a timer's handler answers to fire the same command again at `due_at`."""

    due_at: datetime


@dataclass(frozen=True, slots=True)
class Timer:
    """A pending timer."""

    key: str
    due_at: datetime
    command: str
    payload: Json
    attempts: int = 0
    last_error: str | None = None


async def schedule(db: Db, key: str, due_at: datetime, command: object) -> None:
    """Create or move the timer `key` to fire `command` at `due_at`."""
    name = type(command).__name__
    if TIMER_COMMANDS.get(name) is not type(command):
        raise TypeError(f"{name} is not registered with @timer_command")
    await db.execute(
        """INSERT INTO timers (key, due_at, command, payload) VALUES ($1, $2, $3, $4::jsonb)
           ON CONFLICT (key) DO UPDATE SET due_at = EXCLUDED.due_at, command = EXCLUDED.command,
               payload = EXCLUDED.payload, attempts = 0, last_error = NULL""",
        key, due_at, name, to_data(command),
    )


async def cancel(db: Db, key: str) -> bool:
    """Drop the timer `key`; whether there was one."""
    status: str = await db.execute("DELETE FROM timers WHERE key = $1", key)
    return status.endswith(" 1")


async def pending(db: Db, prefix: str = "") -> list[Timer]:
    """Pending timers whose key starts with `prefix`, soonest first."""
    rows = await db.fetch(
        """SELECT key, due_at, command, payload, attempts, last_error FROM timers
           WHERE starts_with(key, $1) ORDER BY due_at, key""", prefix,
    )
    return [Timer(r["key"], r["due_at"], r["command"], r["payload"], r["attempts"],
                  r["last_error"]) for r in rows]


class TimerWorker:
    """Fires due timers through `handle` (the bus) - see the module doc."""

    def __init__(
        self, pool: asyncpg.Pool, handle: Send, clock: Clock,
        *, batch: int = 100, poll: float = POLL_SECONDS,
    ) -> None:
        self._pool, self._handle, self._clock = pool, handle, clock
        self._batch, self._poll = batch, poll

    async def run(self) -> None:
        """Fire timers until cancelled; wake at the next due time or every `poll` seconds."""
        while True:
            fired = await self.fire_due()
            if fired < self._batch:
                await asyncio.sleep(await self._pause())

    async def _pause(self) -> float:
        due = await self._pool.fetchval("SELECT min(due_at) FROM timers")
        if due is None:
            return self._poll
        wait: float = (due - self._clock.now()).total_seconds()
        return min(max(wait, 0.0), self._poll)

    async def fire_due(self) -> int:
        """Fire every timer due now (one leased batch); the number fired."""
        now = self._clock.now()
        leased_until = now + LEASE
        rows = await self._pool.fetch(
            """UPDATE timers t SET due_at = $2, attempts = t.attempts + 1
               FROM (SELECT key FROM timers WHERE due_at <= $1 ORDER BY due_at
                     LIMIT $3 FOR UPDATE SKIP LOCKED) due
               WHERE t.key = due.key RETURNING t.key, t.command, t.payload, t.attempts""",
            now, leased_until, self._batch,
        )
        for n, row in enumerate(rows):
            try:
                await self._fire(row["key"], row["command"], row["payload"],
                                 row["attempts"], leased_until)
            except asyncio.CancelledError:
                await self._hand_back([r["key"] for r in rows[n + 1:]], leased_until)
                raise
        return len(rows)

    async def _hand_back(self, keys: list[str], leased: datetime) -> None:
        """Stopping mid-batch: the timers not fired yet are due again at once, for any worker.

        (The one being fired stays leased: its command may have run in part.)
        """
        if not keys:
            return
        try:
            await self._pool.execute(
                "UPDATE timers SET due_at = $3, attempts = attempts - 1 "
                "WHERE key = ANY($1::text[]) AND due_at = $2", keys, leased, self._clock.now())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("timers_hand_back_failed", exc_info=True)  # the lease runs out instead

    async def _fire(
        self, key: str, name: str, payload: Json, attempts: int, leased: datetime
    ) -> None:
        cls = TIMER_COMMANDS.get(name)
        try:
            if cls is None:
                raise DispatchError(f"unknown timer command {name}")
            answer = await self._handle(from_data(cls, payload))
        except Exception as exc:  # one failing timer must not stop the others
            await self._failed(key, attempts, leased, exc)
            return
        if isinstance(answer, Reschedule):
            await self._pool.execute(
                "UPDATE timers SET due_at = $3, attempts = 0, last_error = NULL "
                "WHERE key = $1 AND due_at = $2", key, leased, answer.due_at)
        else:
            await self._pool.execute("DELETE FROM timers WHERE key = $1 AND due_at = $2", key, leased)

    async def _failed(self, key: str, attempts: int, leased: datetime, exc: Exception) -> None:
        backoff = min(timedelta(seconds=2 ** min(attempts, 10)), MAX_BACKOFF)
        log.warning("timer_failed", key=key, attempts=attempts, error=str(exc), retry_in=str(backoff))
        await self._pool.execute(
            "UPDATE timers SET due_at = $3, last_error = $4 WHERE key = $1 AND due_at = $2",
            key, leased, self._clock.now() + backoff, f"{type(exc).__name__}: {exc}"[:500],
        )


def workers(deps: Deps) -> list[Task]:
    """The timer worker of a serving process."""
    return [TimerWorker(deps.pool, deps.bus.handle, deps.clock).run]
