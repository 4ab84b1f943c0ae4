"""Partitions of a log reader: which events each holds, where their checkpoints live, who holds them.

A runner (a projection or a reactor) splits its events into a FIXED number of
partitions by a stable hash of a key: the event's stream, or a `Keyed`
reactor's key (a sender, a caller), so that the events whose order matters to
it land in one partition and are handled in log order. `PARTITIONS` (16) is
the default; a runner whose work needs one serial order across streams
declares `partitions = 1` (global: one worker at a time runs it).

The count is fixed because a partition is the unit that moves between worker
processes: it moves with its checkpoint, whole, so rebalancing never re-splits
or rebuilds anything. Changing a runner's count would move streams between
partitions whose checkpoints differ (repeating or skipping events), so it is
refused (`PartitionCountChanged`). 16 lets up to 16 worker processes share a
runner (far beyond what one PostgreSQL serves for this load), keeps the spread
even to one partition (16 over 3 workers: 6, 5, 5), and costs one small row
per partition.

Storage (migration 0005): each partition's checkpoint is a row of
`checkpoints` named `runner` (one partition: the name a single reader always
had) or `runner/partition`; its lease is a row of `reader_leases`. The first
start of a partitioned runner whose single checkpoint exists starts every
partition from it and removes it (`ensure`): upgrading loses and repeats nothing.

`assign` is the pure spread of a runner's partitions over the live workers:
even (max - min <= 1 partitions) and stable (the same members give the same
answer in every process, and a member joining or leaving moves few partitions:
rendezvous hashing under a capacity limit).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from eventstore.errors import EventStoreError
from eventstore.records import Checkpoint

PARTITIONS = 16
"""The partitions of a runner that does not declare its own count (see the module doc)."""

_ENSURE_LOCK = 0x1A7C
"""First key of the transaction advisory lock that creates a runner's partition rows once."""


class PartitionCountChanged(EventStoreError):
    """A runner declares another partition count than its stored partitions have."""

    def __init__(self, runner: str, stored: int, declared: int) -> None:
        super().__init__(
            f"runner {runner!r} has {stored} partitions stored but declares {declared}; "
            "a partition count cannot change in place (see eventstore/partitions.py)")


def partitions_of(runner: object) -> int:
    """The partition count a projection or reactor declares (`partitions`), else `PARTITIONS`."""
    count = getattr(runner, "partitions", PARTITIONS)
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"partitions must be a positive whole number, not {count!r}")
    return count


def partition_of(key: str, count: int) -> int:
    """The partition of a key: CRC-32 of its UTF-8 bytes modulo `count` (the same in any process)."""
    return 0 if count == 1 else zlib.crc32(key.encode("utf-8")) % count


def checkpoint_name(runner: str, partition: int, count: int) -> str:
    """The `checkpoints` row of a partition: the runner's own name when it has one partition."""
    return runner if count == 1 else f"{runner}/{partition}"


def _score(runner: str, partition: int, worker: str) -> int:
    digest = hashlib.blake2b(f"{runner}\x00{partition}\x00{worker}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(runner: str, count: int, workers: Iterable[str]) -> dict[str, frozenset[int]]:
    """Spread partitions 0..count-1 over `workers`: each gets count // n or one more.

    Every (partition, worker) pair has a rendezvous score (a hash of runner,
    partition and worker); going down the pairs from the highest score, a
    partition goes to the worker of its pair if it has none yet and the
    worker has room (count // n, one more for the first count % n workers to
    reach it). A pure function of its arguments (the order of `workers` does
    not matter); a worker joining or leaving moves, beyond the partitions it
    takes or leaves, only a few (at most 4 and 5 for up to a dozen workers,
    tests/unit/test_partitions.py).
    """
    members = sorted(set(workers))
    if not members:
        return {}
    base, extra = divmod(count, len(members))
    load = dict.fromkeys(members, 0)
    held: dict[str, set[int]] = {m: set() for m in members}
    taken: set[int] = set()
    full = 0  # workers holding base + 1
    pairs = sorted(((_score(runner, p, m), p, m) for p in range(count) for m in members), reverse=True)
    for _, partition, worker in pairs:
        if partition in taken:
            continue
        if load[worker] < base or (load[worker] == base and full < extra):
            full += load[worker] == base
            load[worker] += 1
            held[worker].add(partition)
            taken.add(partition)
    return {m: frozenset(p) for m, p in held.items()}


@dataclass(frozen=True, slots=True)
class Held:
    """The partitions a reader holds for one step, with their checkpoints."""

    checkpoints: Mapping[int, Checkpoint]

    @property
    def after(self) -> Checkpoint:
        """Where to read from: the oldest of the checkpoints."""
        return min(self.checkpoints.values(), key=lambda c: c.order)

    def wants(self, partition: int, checkpoint: Checkpoint) -> bool:
        """Whether the event at `checkpoint`, of `partition`, is this reader's to handle now."""
        mine = self.checkpoints.get(partition)
        return mine is not None and checkpoint.order > mine.order


async def ensure(conn: asyncpg.Connection, runner: str, count: int, kind: str,
                 categories: frozenset[str] | None) -> None:
    """Create the runner's row and lease rows once; on first creation split its single checkpoint.

    Every partition starts from the checkpoint the runner had before it was
    partitioned (none: from the start), which is then removed, so nothing
    is lost or repeated. Raises `PartitionCountChanged` on another count.
    The kind and categories are kept up to date (`intake status` reads them).
    """
    cats = None if categories is None else sorted(categories)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _ENSURE_LOCK, runner)
        stored = await conn.fetchval("SELECT partitions FROM readers WHERE runner = $1", runner)
        if stored is not None:
            if stored != count:
                raise PartitionCountChanged(runner, stored, count)
            await conn.execute(
                "UPDATE readers SET kind = $2, categories = $3 WHERE runner = $1 "
                "AND (kind, categories) IS DISTINCT FROM ($2, $3::text[])", runner, kind, cats)
            return
        await conn.execute("INSERT INTO readers (runner, kind, partitions, categories) "
                           "VALUES ($1, $2, $3, $4)", runner, kind, count, cats)
        await conn.execute(
            "INSERT INTO reader_leases (runner, partition) "
            "SELECT $1, p FROM generate_series(0, $2 - 1) AS p", runner, count)
        if count > 1:
            names = [checkpoint_name(runner, p, count) for p in range(count)]
            await conn.execute(
                "INSERT INTO checkpoints (name, tx_id, position) "
                "SELECT n, c.tx_id, c.position FROM checkpoints c, unnest($2::text[]) AS n "
                "WHERE c.name = $1 ON CONFLICT (name) DO NOTHING", runner, names)
            await conn.execute("DELETE FROM checkpoints WHERE name = $1", runner)


_LEASES = """
SELECT l.partition, {extra} FROM reader_leases l
WHERE l.runner = $1 AND l.partition = ANY($2::int[])
  AND ($3::text IS NULL OR (l.owner = $3 AND l.lease_until > clock_timestamp()))
ORDER BY l.partition {lock}"""

_CHECKPOINTS = """
SELECT p.partition, c.tx_id::text::bigint AS tx, c.position
FROM unnest($2::int[]) AS p(partition) LEFT JOIN checkpoints c
  ON c.name = CASE WHEN $3 = 1 THEN $1 ELSE $1 || '/' || p.partition END"""


async def load_held(
    conn: asyncpg.Connection, runner: str, count: int, partitions: Sequence[int],
    owner: str | None, *, lock: bool = False, extra: str = "true",
) -> Held:
    """The checkpoints of those `partitions` whose lease `owner` holds now (None: all of them).

    With `lock`, the lease rows stay locked until the transaction ends: a
    projection's fence (a claim skips them, a takeover waits for the commit).
    The checkpoints are read by a second statement, after the lock is granted
    (one statement would see them as they were before it waited).
    `extra` is one more expression evaluated with the first (e.g. a setting).
    """
    rows = await conn.fetch(_LEASES.format(extra=extra, lock="FOR UPDATE OF l" if lock else ""),
                            runner, list(partitions), owner)
    mine = [r["partition"] for r in rows]
    if not mine:
        return Held({})
    found = await conn.fetch(_CHECKPOINTS, runner, mine, count)
    return Held({r["partition"]: Checkpoint() if r["tx"] is None
                 else Checkpoint((r["tx"], r["position"]), r["position"]) for r in found})


_SAVE = """
WITH renew AS (
    UPDATE reader_leases SET lease_until = clock_timestamp() + $6 * interval '1 second'
    WHERE (runner, partition) IN (
        SELECT runner, partition FROM reader_leases
        WHERE $5::text IS NOT NULL AND runner = $1 AND partition = ANY($2::int[]) AND owner = $5
        FOR UPDATE SKIP LOCKED))
INSERT INTO checkpoints (name, tx_id, position)
SELECT CASE WHEN $7 = 1 THEN $1 ELSE $1 || '/' || p END, $3::text::xid8, $4 FROM unnest($2::int[]) AS p
ON CONFLICT (name) DO UPDATE SET tx_id = excluded.tx_id, position = excluded.position, updated_at = now()
WHERE (checkpoints.tx_id, checkpoints.position) < (excluded.tx_id, excluded.position)"""


async def save_held(
    conn: asyncpg.Connection, runner: str, count: int, partitions: Sequence[int],
    checkpoint: Checkpoint, *, owner: str | None = None, lease: float = 0.0,
) -> None:
    """Move those partitions' checkpoints forward to `checkpoint` (never back); renew `owner`'s lease.

    The rows are written in partition order, as every writer does (no deadlock between two).
    """
    tx, position = checkpoint.order
    await conn.execute(_SAVE, runner, sorted(partitions), str(tx), position, owner, lease, count)
