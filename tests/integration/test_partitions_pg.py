"""Partitioned runners shared by worker processes (`eventstore/partitions.py`, `leadership.py`).

In-process workers are `Leadership`s of their own with their own runners, as
worker processes have; the death of a worker is a real process killed with
SIGKILL (`bench/partition_worker.py`). Leases are short here
(0.5 s, a heartbeat every 0.1 s). The rebalancing times are printed (`-s`);
bench/RESULTS.md has them measured on a quiet machine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from bench.partition_worker import TABLES, Applied, Echo, live_workers, settled
from eventstore import ANY, NewEvent
from eventstore.leadership import _CLAIM as CLAIM
from eventstore.leadership import Leadership
from eventstore.partitions import (
    PARTITIONS,
    PartitionCountChanged,
    assign,
    checkpoint_name,
    ensure,
    load_held,
    partition_of,
)
from eventstore.postgres import PostgresEventStore
from eventstore.status import format_status, status
from eventstore.subscriptions import ProjectionRunner, ReactorRunner

LEASE = 0.5
ROOT = Path(__file__).resolve().parents[2]


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> float:
    """Wait for `check`; the seconds it took."""
    start = time.monotonic()
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 (the state changes in other processes)
            await asyncio.sleep(0.02)
    return time.monotonic() - start


async def append(store: PostgresEventStore, numbers: range) -> None:
    for n in numbers:
        await store.append(f"case-{n}", [NewEvent("Noted", {"n": n})], ANY)


def until_settled(pool: asyncpg.Pool, expected: list[str]) -> Callable[[], Awaitable[bool]]:
    """Whether exactly `expected` are alive and hold the partitions as `assign` spreads them."""
    async def check() -> bool:
        return await live_workers(pool) == sorted(expected) and await settled(pool, len(expected))
    return check


def caught_up(pool: asyncpg.Pool, total: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        applied = await pool.fetchval("SELECT count(*) FROM applied")
        echoed = await pool.fetchval("SELECT count(*) FROM events WHERE category = 'echo'")
        return bool(applied == total and echoed == total)
    return check


async def exactly_once(pool: asyncpg.Pool, total: int) -> None:
    """Every `case` event applied once by the projection and echoed once by the reactor."""
    positions = [r["position"] for r in await pool.fetch(
        "SELECT position FROM events WHERE category = 'case' ORDER BY position")]
    assert len(positions) == total
    applied = dict(await pool.fetch("SELECT position, times FROM applied"))
    assert applied == dict.fromkeys(positions, 1)
    echoed = await pool.fetch("SELECT (data->>'of')::bigint AS of FROM events WHERE category = 'echo'")
    assert sorted(r["of"] for r in echoed) == positions
    reacted = dict(await pool.fetch("SELECT position, times FROM reacted"))
    assert set(reacted) == set(positions)  # at-least-once; the key kept the echo single


@pytest.fixture
async def tables(pg_pool: asyncpg.Pool) -> None:
    await pg_pool.execute(TABLES)


class Worker:
    """One worker: a `Leadership` and the two runners, as a worker process has."""

    def __init__(self, store: PostgresEventStore, name: str, poll_interval: float = 0.1) -> None:
        self.lead = Leadership(store.pool, lease=LEASE, heartbeat=LEASE / 5, worker=name)
        self.name = name
        runners: list[ProjectionRunner | ReactorRunner] = [
            ProjectionRunner(store, Applied(), poll_interval=poll_interval, leadership=self.lead),
            ReactorRunner(store, Echo(store), poll_interval=poll_interval, leadership=self.lead)]
        self.tasks = [asyncio.create_task(r.run()) for r in runners]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.lead.close()


@asynccontextmanager
async def workers(store: PostgresEventStore, *names: str) -> AsyncIterator[dict[str, Worker]]:
    running = {name: Worker(store, name) for name in names}
    try:
        yield running
    finally:
        for worker in running.values():
            await worker.stop()


async def test_workers_share_partitions_evenly_and_rebalance_on_join_and_leave(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, tables: None,
) -> None:
    await append(pg_store, range(100))
    async with workers(pg_store, "w-a", "w-b") as running:
        await until(until_settled(pg_pool, ["w-a", "w-b"]))
        await until(caught_up(pg_pool, 100))
        held = {name: w.lead.held for name, w in running.items()}
        assert sorted(len(h["applied"]) for h in held.values()) == [8, 8]
        assert held["w-a"]["applied"] | held["w-b"]["applied"] == frozenset(range(PARTITIONS))

        joined = time.monotonic()
        running["w-c"] = Worker(pg_store, "w-c")
        took = await until(until_settled(pg_pool, ["w-a", "w-b", "w-c"]))
        print(f"rebalanced after a join in {time.monotonic() - joined:.2f} s ({took:.2f} s settled)")
        await append(pg_store, range(100, 200))
        await until(caught_up(pg_pool, 200))
        assert sorted(len(w.lead.held["applied"]) for w in running.values()) == [5, 5, 6]

        left = time.monotonic()
        await running.pop("w-b").stop()
        await until(until_settled(pg_pool, ["w-a", "w-c"]))
        print(f"rebalanced after a leave in {time.monotonic() - left:.2f} s")
        await append(pg_store, range(200, 300))
        await until(caught_up(pg_pool, 300))
    await exactly_once(pg_pool, 300)


def start_worker(dsn: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.partition_worker", dsn, str(LEASE)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_a_killed_worker_process_loses_nothing_and_repeats_nothing_in_postgres(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, pg_dsn: str, tables: None,
) -> None:
    procs = [start_worker(pg_dsn) for _ in range(3)]
    try:
        await until(lambda: _count_live(pg_pool, 3), seconds=60)
        names = await live_workers(pg_pool)
        await until(until_settled(pg_pool, names))
        feeding = asyncio.create_task(_feed(pg_store, range(400)))
        await until(lambda: _applied_at_least(pg_pool, 100))
        holders = {r["owner"] for r in await pg_pool.fetch("SELECT owner FROM reader_leases")}
        assert holders == set(names)  # all three were working when one is killed
        victim = procs.pop(1)
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.to_thread(victim.wait)
        survivors = [n for n in names if n.split(":")[1] != str(victim.pid)]
        assert len(survivors) == 2
        await until(until_settled(pg_pool, survivors))
        print(f"rebalanced after SIGKILL in {time.monotonic() - killed:.2f} s (lease {LEASE} s)")
        await feeding
        await until(caught_up(pg_pool, 400))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    await exactly_once(pg_pool, 400)


async def _count_live(pool: asyncpg.Pool, n: int) -> bool:
    return len(await live_workers(pool)) == n


async def _applied_at_least(pool: asyncpg.Pool, n: int) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM applied") >= n)


async def _feed(store: PostgresEventStore, numbers: range) -> None:
    for n in numbers:
        await append(store, range(n, n + 1))
        if n % 10 == 0:
            await asyncio.sleep(0.02)


async def test_a_projection_writes_nothing_for_a_partition_whose_lease_it_lost(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, tables: None,
) -> None:
    await append(pg_store, range(64))
    lead = Leadership(pg_pool, lease=60, heartbeat=60, worker="w-slow")  # no heartbeat in the test
    runner = ProjectionRunner(pg_store, Applied(), leadership=lead)
    try:
        await runner.step()  # creates the partition rows, claims them all (alone) and applies
        assert lead.held["applied"] == frozenset(range(PARTITIONS))
        await pg_pool.execute("TRUNCATE applied")
        await pg_pool.execute("DELETE FROM checkpoints WHERE name LIKE 'applied/%'")
        lost = partition_of("case-5", PARTITIONS)
        await pg_pool.execute(  # another worker took it over (this one still thinks it holds it)
            "UPDATE reader_leases SET owner = 'w-other', lease_until = clock_timestamp() + interval '1 hour' "
            "WHERE runner = 'applied' AND partition = $1", lost)
        await runner.run_until_caught_up()
        applied = {r["position"] for r in await pg_pool.fetch("SELECT position FROM applied")}
        streams = dict(await pg_pool.fetch(
            "SELECT position, stream FROM events WHERE category = 'case'"))
        assert applied == {p for p, s in streams.items() if partition_of(s, PARTITIONS) != lost}
        assert await pg_pool.fetchval(
            "SELECT count(*) FROM checkpoints WHERE name = $1", f"applied/{lost}") == 0
    finally:
        await lead.close()


@pytest.mark.parametrize("count", [1, 2, PARTITIONS])
async def test_upgrading_from_a_single_checkpoint_starts_every_partition_from_it(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, tables: None, count: int,
) -> None:
    """Runners that had one checkpoint before partitions: every partition starts from it; a global
    runner (one partition) keeps it under its own name, and goes on from it on later starts. Bugs:
    the checkpoint not split (a count of 2), a global runner's removed or written under another
    name (everything handled again), another count accepted."""

    class CountedApplied(Applied):
        partitions = count

    class CountedEcho(Echo):
        partitions = count

    await append(pg_store, range(50))
    for name in ("applied", "echo"):  # as the single runners before partitions left them
        await pg_pool.execute("INSERT INTO checkpoints (name, tx_id, position) "
                              "SELECT $1, tx_id, position FROM events WHERE position = 30", name)
    assert await ProjectionRunner(pg_store, CountedApplied()).run_until_caught_up() == 20
    assert await ReactorRunner(pg_store, CountedEcho(pg_store)).run_until_caught_up() == 20
    applied = sorted(r["position"] for r in await pg_pool.fetch("SELECT position FROM applied"))
    echoed = sorted(r["of"] for r in await pg_pool.fetch(
        "SELECT (data->>'of')::bigint AS of FROM events WHERE category = 'echo'"))
    assert applied == echoed == list(range(31, 51))
    names = {r["name"] for r in await pg_pool.fetch("SELECT name FROM checkpoints")}
    assert names == {checkpoint_name(runner, p, count)
                     for runner in ("applied", "echo") for p in range(count)}
    await append(pg_store, range(50, 55))  # a restart goes on from the saved checkpoints
    assert await ProjectionRunner(pg_store, CountedApplied()).run_until_caught_up() == 5

    class Other(Applied):
        partitions = count + 1
    with pytest.raises(PartitionCountChanged,
                       match=f"runner 'applied' has {count} partitions stored but declares {count + 1}"):
        await ProjectionRunner(pg_store, Other()).step()


async def test_a_global_runner_is_held_by_one_worker_and_handed_over_when_it_stops(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool,
) -> None:
    leads = [Leadership(pg_pool, lease=LEASE, worker=f"w-{n}") for n in (1, 2)]
    async with pg_pool.acquire() as conn:
        await ensure(conn, "g", 1, "reactor", None)

    async def one_holds() -> bool:
        held = [await lead.partitions("g", 1) for lead in leads]
        return sorted(held) == [(), (0,)] and all(len(lead.members) == 2 for lead in leads)
    try:
        await until(one_holds)
        holder, other = leads if leads[0].held.get("g") else leads[::-1]
        assert await pg_pool.fetchval("SELECT owner FROM reader_leases WHERE runner = 'g'") == holder.worker
        await holder.close()
        assert await pg_pool.fetchval("SELECT owner FROM reader_leases WHERE runner = 'g'") is None
        assert await live_workers(pg_pool) == [other.worker]

        async def taken_over() -> bool:
            return await other.partitions("g", 1) == (0,)
        print(f"a global runner handed over in {await until(taken_over):.2f} s")
    finally:
        for lead in leads:
            await lead.close()
    assert await live_workers(pg_pool) == []


async def test_status_shows_owners_checkpoints_and_lag_per_partition(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, tables: None,
) -> None:
    lead = Leadership(pg_pool, lease=60, heartbeat=60, worker="w-status")
    runner = ProjectionRunner(pg_store, Applied(), leadership=lead)
    try:
        await runner.run_until_caught_up()
        await append(pg_store, range(5))
        async with pg_pool.acquire() as conn:
            found = await status(conn)
        [worker] = found.workers
        assert (worker.worker, worker.pid, worker.alive) == ("w-status", os.getpid(), True)
        [applied] = found.runners
        assert (applied.name, applied.kind, applied.categories) == ("applied", "projection", ("case",))
        assert len(applied.partitions) == PARTITIONS
        assert {(p.owner, p.pid, p.leased) for p in applied.partitions} == {("w-status", os.getpid(), True)}
        assert {p.lag_events for p in applied.partitions} == {5} and applied.lag_seconds > 0

        await runner.run_until_caught_up()
        async with pg_pool.acquire() as conn:
            found = await status(conn)
        last = await pg_pool.fetchval("SELECT max(position) FROM events")
        assert {(p.checkpoint, p.lag_events, p.lag_seconds) for p in found.runners[0].partitions} == {
            (last, 0, 0.0)}
        text = format_status(found)
        assert "applied (projection, 16 partitions): lag 0 events, 0.0 s" in text
        assert f"{socket.gethostname()}/{os.getpid()}" in text
        assert found.as_json()["runners"][0]["partitions"][0]["checkpoint"] == last
    finally:
        await lead.close()


async def test_a_lease_a_worker_dropped_after_a_late_heartbeat_is_freed_for_the_worker_it_belongs_to(
    pg_pool: asyncpg.Pool,
) -> None:
    """A worker that dropped its partitions (its heartbeat was late) must not keep renewing them."""
    names = [f"w-{n}" for n in range(8)]
    first, second = next((a, b) for a in names for b in names
                         if a != b and assign("g", 1, [a, b])[b] == frozenset({0}))
    early = Leadership(pg_pool, lease=LEASE, worker=first)
    late = Leadership(pg_pool, lease=LEASE, worker=second)
    async with pg_pool.acquire() as conn:
        await ensure(conn, "g", 1, "reactor", None)
    try:
        assert await early.partitions("g", 1) == (0,)  # alone, it takes the global runner
        early._drop_all("a late heartbeat, as a test")  # forgets it before handing it over

        async def moved() -> bool:
            await early.partitions("g", 1)
            return await late.partitions("g", 1) == (0,)
        await until(moved)
        assert await pg_pool.fetchval("SELECT owner FROM reader_leases WHERE runner = 'g'") == second
    finally:
        await early.close()
        await late.close()


async def test_workers_starting_a_new_runner_at_once_create_its_partitions_once(
    pg_pool: asyncpg.Pool,
) -> None:
    """Every worker process starts every runner, so on a fresh database they create its rows at the
    same moment; a later start brings the kind and categories up to date (`intake status` shows
    them). Bugs: the creation not serialised (all but one worker fail on the duplicate row),
    the update left out or writing no categories."""
    conns = [await pg_pool.acquire() for _ in range(4)]
    try:
        await asyncio.gather(*(ensure(conn, "fresh", PARTITIONS, "reactor", frozenset({"sms"}))
                               for conn in conns))
    finally:
        for conn in conns:
            await pg_pool.release(conn)
    assert await pg_pool.fetchval("SELECT count(*) FROM reader_leases WHERE runner = 'fresh'") == PARTITIONS
    async with pg_pool.acquire() as conn:
        await ensure(conn, "fresh", PARTITIONS, "projection", frozenset({"sms", "case"}))
    row = await pg_pool.fetchrow("SELECT kind, categories, partitions FROM readers WHERE runner = 'fresh'")
    assert (row["kind"], row["categories"], row["partitions"]) == ("projection", ["case", "sms"], PARTITIONS)


async def test_a_projection_step_keeps_its_partition_from_a_takeover_until_it_commits(
    pg_pool: asyncpg.Pool,
) -> None:
    """A projection's step locks its lease rows in the transaction that writes its rows. If the
    lease runs out while the step works (a long batch, a stalled heartbeat), another worker's claim
    gets the partition only after the step has committed. Bug: the lock left out (the taker reads
    the old checkpoint and writes the same batch again)."""
    async with pg_pool.acquire() as conn:
        await ensure(conn, "fence", PARTITIONS, "projection", None)
        await conn.execute("UPDATE reader_leases SET owner = 'w-a', lease_until = clock_timestamp() "
                           "+ interval '0.3 seconds' WHERE runner = 'fence' AND partition = 3")
    async with pg_pool.acquire() as step, step.transaction():
        held = await load_held(step, "fence", PARTITIONS, [3], "w-a", lock=True)
        assert list(held.checkpoints) == [3]
        await asyncio.sleep(0.4)  # the lease runs out while the step works
        assert await pg_pool.fetch(CLAIM, "fence", [3], "w-b", 1.0) == []
    assert [r["partition"] for r in await pg_pool.fetch(CLAIM, "fence", [3], "w-b", 1.0)] == [3]


async def test_a_joining_worker_tries_its_claims_at_every_heartbeat_not_at_every_poll(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, tables: None,
) -> None:
    """A worker that joins finds its partitions held until the others let go at their next
    heartbeat: while it waits for them it tries its claims at each of its heartbeats (0.1 s
    here), not once per poll interval (5 s here), so a join settles in about a heartbeat. Bug:
    the waiting worker sleeps a poll interval (a join takes that long to spread the work)."""
    await append(pg_store, range(20))
    async with workers(pg_store, "w-a") as running:
        await until(until_settled(pg_pool, ["w-a"]))
        running["w-b"] = Worker(pg_store, "w-b", poll_interval=5.0)
        took = await until(until_settled(pg_pool, ["w-a", "w-b"]))
        print(f"a join settled in {took:.2f} s with a 5-s poll interval")
        assert took < 4.0


async def test_a_worker_whose_lease_was_taken_over_claims_it_again_once_it_is_free(
    pg_pool: asyncpg.Pool,
) -> None:
    """A worker thought dead has a partition taken over; its next heartbeat sees the lease gone
    and forgets the partition, so that when the lease is free again (the other worker left) and
    the partition is still its own, it claims it. Bug: the lost partition kept in memory - the
    worker never claims it again and nobody runs it, for good."""
    async with pg_pool.acquire() as conn:
        await ensure(conn, "g", 4, "reactor", None)
    lead = Leadership(pg_pool, lease=LEASE, worker="w-a")
    try:
        assert await lead.partitions("g", 4) == (0, 1, 2, 3)  # alone: all of them
        await pg_pool.execute(
            "UPDATE reader_leases SET owner = 'w-other', lease_until = clock_timestamp() + interval '1 hour' "
            "WHERE runner = 'g' AND partition = 2")

        async def forgot() -> bool:
            return await lead.partitions("g", 4) == (0, 1, 3)
        await until(forgot, 5)
        await pg_pool.execute("UPDATE reader_leases SET owner = NULL, lease_until = NULL "
                              "WHERE runner = 'g' AND partition = 2")

        async def claimed() -> bool:
            return await lead.partitions("g", 4) == (0, 1, 2, 3)
        await until(claimed, 5)
        assert await pg_pool.fetchval(
            "SELECT owner FROM reader_leases WHERE runner = 'g' AND partition = 2") == "w-a"
    finally:
        await lead.close()
