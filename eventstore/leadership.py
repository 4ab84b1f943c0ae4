"""Which worker process runs which partitions: membership, heartbeats and leases in PostgreSQL.

Every worker process builds every runner (projections and reactors), and each
runner's work is split into partitions (`eventstore/partitions.py`). A
`Leadership` is one process's membership among the workers:

- its heartbeat (every `lease / 5` seconds, one statement) keeps its row in
  `reader_workers` alive, renews the leases of every partition it holds, and
  reads the workers alive now;
- `partitions(runner, count)` spreads the runner's partitions over those
  workers with the pure `assign` (every process computes the same answer),
  releases the partitions no longer its own and claims the free ones that are
  (a partition is free when nobody holds it or its lease ran out);
- `close()` leaves at once: its row is deleted and its leases freed.

When a worker joins, the others see it at their next heartbeat and release
what is now its; when one leaves, its partitions are free at once; when one
dies, its leases run out after `lease` seconds. In each case the partitions
move within about `lease` + 2 heartbeats + a runner's poll interval (README:
Operations, scaling out).

A lease only says who should run a partition. Effects stay exact without
trusting it: a projection locks its lease rows in the transaction that writes
its rows and checkpoints and writes nothing unless the lease is still its own
(`eventstore.partitions.load_held`); a reactor's reactions are idempotent, so
the moment two processes may both react after a lease moved costs a repeat,
as a crash does.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import asyncpg
import structlog

from eventstore.partitions import assign
from eventstore.postgres import UNAVAILABLE

log = structlog.get_logger(__name__)

LEASE_SECONDS = 1.0
"""How long a partition's lease lasts without a heartbeat (INTAKE_LEASE_SECONDS)."""

_BEAT = """
WITH me AS (
    INSERT INTO reader_workers (worker, host, pid, expires_at)
    VALUES ($1, $2, $3, clock_timestamp() + $4 * interval '1 second')
    ON CONFLICT (worker) DO UPDATE SET beat_at = clock_timestamp(), expires_at = excluded.expires_at),
gone AS (DELETE FROM reader_workers WHERE expires_at < clock_timestamp() - interval '10 minutes'),
held AS (SELECT * FROM unnest($5::text[], $6::int[]) AS h(runner, partition)),
renew AS (
    UPDATE reader_leases SET lease_until = clock_timestamp() + $4 * interval '1 second'
    WHERE (runner, partition) IN (
        SELECT runner, partition FROM reader_leases WHERE owner = $1
            AND (runner, partition) IN (SELECT runner, partition FROM held)
        FOR UPDATE SKIP LOCKED)),
free AS (
    UPDATE reader_leases SET owner = NULL, lease_until = NULL
    WHERE (runner, partition) IN (
        SELECT runner, partition FROM reader_leases WHERE owner = $1
            AND (runner, partition) NOT IN (SELECT runner, partition FROM held)
            AND taken_at < clock_timestamp() - $4 * interval '1 second'
        FOR UPDATE SKIP LOCKED))
SELECT worker AS name, NULL::int AS partition FROM reader_workers
    WHERE expires_at > clock_timestamp() AND worker <> $1
UNION ALL SELECT NULL, NULL
UNION ALL SELECT runner, partition FROM reader_leases WHERE owner = $1"""
"""Stay alive, renew the leases this worker holds, and read the workers alive and its leases.

Only the leases the process holds ($5, $6) are renewed; one it no longer holds
(dropped after a late heartbeat) is freed once older than a lease, or it would
be renewed for ever and never run. Both skip rows locked by a projection's step
(which renews them as it commits): waiting there, with the rows of other
runners locked already, could deadlock with that step."""

_CLAIM = """
UPDATE reader_leases l
SET owner = $3, lease_until = clock_timestamp() + $4 * interval '1 second', taken_at = clock_timestamp()
FROM (SELECT runner, partition FROM reader_leases
      WHERE runner = $1 AND partition = ANY($2::int[])
        AND (owner IS NULL OR owner = $3 OR lease_until < clock_timestamp())
      FOR UPDATE SKIP LOCKED) f
WHERE l.runner = f.runner AND l.partition = f.partition
RETURNING l.partition"""

_RELEASE = ("UPDATE reader_leases SET owner = NULL, lease_until = NULL "
            "WHERE runner = $1 AND partition = ANY($2::int[]) AND owner = $3")


def worker_name() -> str:
    """This process's name among the workers: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Leadership:
    """This process's membership among the worker processes, and the partition leases it holds."""

    def __init__(self, pool: asyncpg.Pool, *, lease: float = LEASE_SECONDS,
                 heartbeat: float | None = None, worker: str | None = None) -> None:
        if lease <= 0:
            raise ValueError("lease must be positive")
        self._pool = pool
        self.lease = lease
        self.heartbeat = heartbeat if heartbeat is not None else lease / 5
        self.worker = worker or worker_name()
        self._members: tuple[str, ...] = ()
        self._beat_ok = float("-inf")  # monotonic time the last heartbeat started, having succeeded
        self._held: dict[str, set[int]] = {}
        self._claimed: dict[tuple[str, int], float] = {}
        self._tried: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def members(self) -> tuple[str, ...]:
        """The workers alive at the last heartbeat (this one included), sorted."""
        return self._members

    @property
    def held(self) -> dict[str, frozenset[int]]:
        """The partitions this process holds, by runner."""
        return {runner: frozenset(parts) for runner, parts in self._held.items() if parts}

    def waiting(self, runner: str, count: int) -> bool:
        """Whether partitions assigned to this process are not held yet (claims are being tried)."""
        return bool(self._target(runner, count) - self._held.get(runner, set()))

    async def partitions(self, runner: str, count: int) -> tuple[int, ...]:
        """The partitions of `runner` this process holds now, after releasing and claiming."""
        await self._start()
        if self._closed:
            return ()
        if time.monotonic() - self._beat_ok > self.lease:
            self._drop_all("heartbeat late")
            return ()
        target = self._target(runner, count)
        held = self._held.setdefault(runner, set())
        try:
            if drop := held - target:
                await self._pool.execute(_RELEASE, runner, sorted(drop), self.worker)
                held -= drop
                log.info("partitions_released", runner=runner, partitions=sorted(drop))
            want = target - held
            if want and time.monotonic() - self._tried.get(runner, float("-inf")) >= self.heartbeat:
                self._tried[runner] = time.monotonic()
                rows = await self._pool.fetch(_CLAIM, runner, sorted(want), self.worker, self.lease)
                got = {int(r["partition"]) for r in rows}
                if got:
                    held |= got
                    done = time.monotonic()  # after the claim committed: see _beat
                    self._claimed.update(((runner, p), done) for p in got)
                    log.info("partitions_taken", runner=runner, partitions=sorted(got))
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            log.warning("partitions_unavailable", runner=runner, error=str(exc))
        return tuple(sorted(held))

    def _target(self, runner: str, count: int) -> frozenset[int]:
        return assign(runner, count, self._members).get(self.worker, frozenset())

    async def _start(self) -> None:
        if self._task is not None or self._closed:
            return
        async with self._lock:
            if self._task is None and not self._closed:
                await self._beat()
                self._task = asyncio.create_task(self._beating(), name="leadership-heartbeat")

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            await self._beat()

    async def _beat(self) -> None:
        """One heartbeat: stay alive, renew the leases held, learn who else is."""
        started = time.monotonic()
        pairs = [(runner, p) for runner, parts in self._held.items() for p in parts]
        try:
            rows = await self._pool.fetch(
                _BEAT, self.worker, socket.gethostname(), os.getpid(), self.lease,
                [r for r, _ in pairs], [p for _, p in pairs], timeout=self.lease)
        except (*UNAVAILABLE, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("heartbeat_failed", worker=self.worker, error=str(exc))
            return
        members = {self.worker}
        owned: set[tuple[str, int]] = set()
        for row in rows:
            if row["partition"] is not None:
                owned.add((row["name"], int(row["partition"])))
            elif row["name"] is not None:
                members.add(row["name"])
        if tuple(sorted(members)) != self._members:
            log.info("workers_changed", workers=sorted(members))
        self._members = tuple(sorted(members))
        for runner, held in self._held.items():
            # A lease no longer its own was taken over (this process was thought dead),
            # unless it was claimed after this heartbeat's statement began.
            lost = {p for p in held
                    if (runner, p) not in owned and self._claimed.get((runner, p), 0.0) < started}
            if lost:
                held -= lost
                log.warning("partitions_lost", runner=runner, partitions=sorted(lost))
        self._beat_ok = started

    def _drop_all(self, why: str) -> None:
        if any(self._held.values()):
            log.warning("partitions_dropped", worker=self.worker, reason=why,
                        runners=sorted(r for r, p in self._held.items() if p))
        self._held.clear()

    async def close(self) -> None:
        """Leave: stop the heartbeat, free every lease of this process and delete its row."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._held.clear()
        try:
            async with self._pool.acquire(timeout=3) as conn, conn.transaction():
                await conn.execute("UPDATE reader_leases SET owner = NULL, lease_until = NULL "
                                   "WHERE owner = $1", self.worker)
                await conn.execute("DELETE FROM reader_workers WHERE worker = $1", self.worker)
        except (*UNAVAILABLE, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("leave_failed", worker=self.worker, error=str(exc))  # the leases run out
