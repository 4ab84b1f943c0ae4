"""Which process runs each reactor: one active runner per reactor, the others on standby.

Every worker process builds every reactor, so that any of them can take over.
A `Leadership` holds a PostgreSQL session advisory lock per reactor name on one
connection of its own: the process holding a reactor's lock reacts, the
others' runners find the lock taken and wait (standby), trying again at each
wake-up or poll. When the active process dies, its session ends, the lock is
free, and a standby takes it within a poll interval and resumes from the
reactor's checkpoint.

Best effort by design: a lock lost with its connection is noticed at the next
step (or within `check_every` seconds), so two processes may react to the
same events for a moment; reactions are idempotent anyway. What it saves is
every standby doing the same work again, and their commands racing each
other on the same streams.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog

from eventstore.postgres import UNAVAILABLE

log = structlog.get_logger(__name__)

LOCK_SPACE = 0x1A7B
"""First key of the reactors' session advisory locks (projections use 0x1A7A, transaction-level)."""


class Leadership:
    """The reactor locks this process holds, on one pooled connection kept for the purpose."""

    def __init__(self, pool: asyncpg.Pool, *, check_every: float = 2.0) -> None:
        self._pool = pool
        self._check_every = check_every
        self._conn: asyncpg.Connection | None = None
        self._held: set[str] = set()
        self._checked = 0.0
        self._lock = asyncio.Lock()
        self._closed = False

    async def holds(self, name: str) -> bool:
        """Whether this process runs reactor `name` now, taking its lock if it is free."""
        async with self._lock:
            if self._closed:
                return False
            try:
                conn = await self._connection()
                if name not in self._held:
                    if not await conn.fetchval(
                            "SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_SPACE, name):
                        return False
                    self._held.add(name)
                    log.info("reactor_lead_taken", reactor=name)
                return True
            except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                await self._lost(str(exc))
                return False

    @property
    def held(self) -> frozenset[str]:
        """The reactor names whose locks this process holds."""
        return frozenset(self._held)

    async def close(self) -> None:
        """Give the locks up for good (a standby takes over) and return the connection."""
        async with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            self._held.clear()
            if conn is None:
                return
            try:
                await conn.execute("SELECT pg_advisory_unlock_all()")
                await self._pool.release(conn)
            except (*UNAVAILABLE, asyncpg.PostgresError):
                await self._discard(conn)  # its session, and the locks with it, end on the server

    async def _connection(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is not None and conn.is_closed():
            await self._lost("connection closed")
            conn = None
        if conn is None:
            conn = self._conn = await self._pool.acquire(timeout=3)
            self._checked = time.monotonic()
        elif self._held and time.monotonic() - self._checked > self._check_every:
            await conn.fetchval("SELECT 1")  # a dead session takes the locks with it
            self._checked = time.monotonic()
        return conn

    async def _lost(self, why: str) -> None:
        """The connection is gone, and the locks with it: hold nothing until retaken."""
        conn, self._conn = self._conn, None
        if self._held:
            log.warning("reactor_leads_lost", reactors=sorted(self._held), error=why)
        self._held.clear()
        if conn is not None:
            await self._discard(conn)

    async def _discard(self, conn: asyncpg.Connection) -> None:
        """End the connection's session (if it still lives, its locks must end with it)."""
        try:
            conn.terminate()
            await self._pool.release(conn)
        except asyncpg.InterfaceError:
            pass  # the pool closed and took it back already
