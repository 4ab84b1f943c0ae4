"""A worker process for the partition tests and `bench.rebalance`: a projection and a reactor.

`python -m bench.partition_worker DSN LEASE_SECONDS` runs, until killed (or
SIGTERM: then it leaves, freeing its leases at once), a `Leadership`
(heartbeat every LEASE/5 s) with two runners over the `case` streams: the
`applied` projection (counts in `applied` how many times each event was
applied; exactly-once inside PostgreSQL) and the `echo` reactor (appends one
`Echoed` event per event with an idempotency key, and counts its reactions in
`reacted`; at-least-once, deduplicated by the key). The caller creates the
two tables (`TABLES`) and sees it join in `reader_workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

import asyncpg

from eventstore import ANY, NewEvent, RecordedEvent
from eventstore.leadership import Leadership
from eventstore.partitions import PARTITIONS, assign
from eventstore.postgres import PostgresEventStore, create_pool
from eventstore.subscriptions import Change, ProjectionRunner, ReactorRunner

TABLES = """
CREATE TABLE IF NOT EXISTS applied (position bigint PRIMARY KEY, times integer NOT NULL);
CREATE TABLE IF NOT EXISTS reacted (position bigint PRIMARY KEY, times integer NOT NULL);
"""


class Applied:
    """Counts, per event, how many times it was applied."""

    name = "applied"
    categories = frozenset({"case"})
    tables = ("applied",)

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        await conn.execute("INSERT INTO applied VALUES ($1, 1) ON CONFLICT (position) "
                           "DO UPDATE SET times = applied.times + 1", event.position)
        return None


class Echo:
    """Appends `Echoed` once per event (idempotency key), and counts its reactions."""

    name = "echo"
    categories = frozenset({"case"})

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store

    async def react(self, event: RecordedEvent) -> None:
        await self._store.append(f"echo-{event.position}", [NewEvent("Echoed", {"of": event.position})],
                                 ANY, idempotency_key=f"echo:{event.position}")
        await self._store.pool.execute("INSERT INTO reacted VALUES ($1, 1) ON CONFLICT (position) "
                                       "DO UPDATE SET times = reacted.times + 1", event.position)


async def live_workers(pool: asyncpg.Pool) -> list[str]:
    """The workers whose heartbeat is current, sorted."""
    rows = await pool.fetch("SELECT worker FROM reader_workers WHERE expires_at > clock_timestamp()")
    return sorted(r["worker"] for r in rows)


async def settled(pool: asyncpg.Pool, workers: int, runners: Sequence[str] = ("applied", "echo")) -> bool:
    """Whether `workers` workers are alive and hold every partition of `runners` as `assign` spreads them."""
    live = await live_workers(pool)
    if len(live) != workers:
        return False
    for runner in runners:
        want = {p: w for w, parts in assign(runner, PARTITIONS, live).items() for p in parts}
        rows = await pool.fetch("SELECT partition, owner FROM reader_leases WHERE runner = $1 "
                                "AND lease_until > clock_timestamp()", runner)
        if {r["partition"]: r["owner"] for r in rows} != want:
            return False
    return True


async def main(dsn: str, lease: float) -> None:
    pool = await create_pool(dsn, min_size=1, max_size=8)
    store = PostgresEventStore(pool)
    await store.listen()
    lead = Leadership(pool, lease=lease)
    runners: list[ProjectionRunner | ReactorRunner] = [
        ProjectionRunner(store, Applied(), poll_interval=0.1, leadership=lead),
        ReactorRunner(store, Echo(store), poll_interval=0.1, leadership=lead)]
    running = asyncio.gather(*(r.run() for r in runners))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, running.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await lead.close()
    await store.close()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
