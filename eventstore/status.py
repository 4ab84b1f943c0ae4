"""What the runners are doing: their partitions, owners, checkpoints and lag (`intake status`).

Read from PostgreSQL alone (`readers`, `reader_leases`, `reader_workers` and
`checkpoints`, migration 0005), so any process may ask, and it shows every
worker's view at once. A partition's lag is the events of its runner's
categories after its checkpoint (all partitions' events: its own share is
about 1/N of them) and the age in seconds of the oldest of them (0 when
none): an upper bound that is exact at 0, the number to watch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from eventstore.records import JSON as Json

_WORKERS = """
SELECT worker, host, pid, started_at, expires_at > clock_timestamp() AS alive,
       extract(epoch FROM clock_timestamp() - beat_at)::float8 AS beat_age
FROM reader_workers ORDER BY worker"""

_PARTITIONS = """
SELECT r.runner, r.kind, r.partitions, r.categories, l.partition, l.owner,
       coalesce(l.lease_until > clock_timestamp(), false) AS leased, w.host, w.pid,
       c.tx_id::text AS tx, c.position, c.updated_at
FROM readers r JOIN reader_leases l ON l.runner = r.runner
LEFT JOIN checkpoints c
  ON c.name = CASE WHEN r.partitions = 1 THEN r.runner ELSE r.runner || '/' || l.partition END
LEFT JOIN reader_workers w ON w.worker = l.owner
ORDER BY r.runner, l.partition"""

_LAG = """
SELECT count(*) AS events,
       coalesce(extract(epoch FROM clock_timestamp() - min(recorded_at)), 0)::float8 AS seconds
FROM events WHERE (tx_id, position) > ($1::text::xid8, $2) AND ($3::text[] IS NULL OR category = ANY($3))"""


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A worker process as its heartbeats show it."""

    worker: str
    host: str
    pid: int
    started_at: datetime
    alive: bool
    beat_age: float

    def as_json(self) -> Json:
        """The API's shape."""
        return {"worker": self.worker, "host": self.host, "pid": self.pid,
                "started_at": self.started_at.isoformat(), "alive": self.alive,
                "seconds_since_heartbeat": round(self.beat_age, 3)}


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """One partition: who holds it, where it is, how far behind."""

    partition: int
    owner: str | None
    host: str | None
    pid: int | None
    leased: bool
    checkpoint: int
    updated_at: datetime | None
    lag_events: int
    lag_seconds: float

    def as_json(self) -> Json:
        """The API's shape."""
        return {"partition": self.partition, "owner": self.owner, "host": self.host, "pid": self.pid,
                "leased": self.leased, "checkpoint": self.checkpoint,
                "checkpoint_at": None if self.updated_at is None else self.updated_at.isoformat(),
                "lag_events": self.lag_events, "lag_seconds": round(self.lag_seconds, 3)}


@dataclass(frozen=True, slots=True)
class RunnerStatus:
    """A projection or reactor and its partitions."""

    name: str
    kind: str
    categories: tuple[str, ...] | None
    partitions: tuple[PartitionStatus, ...]

    @property
    def lag_events(self) -> int:
        """The most any partition is behind."""
        return max((p.lag_events for p in self.partitions), default=0)

    @property
    def lag_seconds(self) -> float:
        """The age of the oldest event any partition has still to handle."""
        return max((p.lag_seconds for p in self.partitions), default=0.0)

    def as_json(self) -> Json:
        """The API's shape."""
        return {"name": self.name, "kind": self.kind, "partition_count": len(self.partitions),
                "categories": None if self.categories is None else list(self.categories),
                "lag_events": self.lag_events, "lag_seconds": round(self.lag_seconds, 3),
                "partitions": [p.as_json() for p in self.partitions]}


@dataclass(frozen=True, slots=True)
class Status:
    """Every worker and every runner."""

    workers: tuple[WorkerStatus, ...]
    runners: tuple[RunnerStatus, ...]

    def as_json(self) -> Json:
        """`GET /api/v1/status`."""
        return {"workers": [w.as_json() for w in self.workers],
                "runners": [r.as_json() for r in self.runners]}


async def status(conn: asyncpg.Connection) -> Status:
    """The workers and runners now; the lag is counted once per distinct checkpoint of a runner."""
    workers = tuple(WorkerStatus(r["worker"], r["host"], r["pid"], r["started_at"], r["alive"],
                                 r["beat_age"]) for r in await conn.fetch(_WORKERS))
    rows = await conn.fetch(_PARTITIONS)
    lags: dict[tuple[str, str, int], tuple[int, float]] = {}
    by_runner: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_runner.setdefault(row["runner"], []).append(row)
        key = (row["runner"], row["tx"] or "0", row["position"] or 0)
        if key not in lags:
            lag = await conn.fetchrow(_LAG, key[1], key[2], row["categories"])
            lags[key] = (int(lag["events"]), float(lag["seconds"]))
    runners = []
    for name, parts in by_runner.items():
        first = parts[0]
        items = []
        for row in parts:
            events, seconds = lags[(name, row["tx"] or "0", row["position"] or 0)]
            items.append(PartitionStatus(row["partition"], row["owner"], row["host"], row["pid"],
                                         row["leased"], row["position"] or 0, row["updated_at"],
                                         events, seconds))
        categories = first["categories"]
        runners.append(RunnerStatus(name, first["kind"], None if categories is None else tuple(categories),
                                    tuple(items)))
    return Status(workers, tuple(runners))


def format_status(found: Status) -> str:
    """`intake status`'s text: the workers, then a line per runner and one per partition."""
    alive = [w for w in found.workers if w.alive]
    lines = [f"workers: {len(alive)} alive"]
    lines += [f"  {w.host}/{w.pid}  {w.worker}  heartbeat {w.beat_age:.1f} s ago"
              + ("" if w.alive else "  (expired)") for w in found.workers]
    for runner in found.runners:
        lines.append(f"{runner.name} ({runner.kind}, {len(runner.partitions)} partition"
                     f"{'' if len(runner.partitions) == 1 else 's'}): lag {runner.lag_events} events, "
                     f"{runner.lag_seconds:.1f} s")
        for p in runner.partitions:
            owner = f"{p.host}/{p.pid}" if p.host else (p.owner or "-")
            state = "" if p.leased else "  (no lease)"
            lines.append(f"  {p.partition:>3}  {owner:<28} checkpoint {p.checkpoint:<10} "
                         f"lag {p.lag_events} events, {p.lag_seconds:.1f} s{state}")
    return "\n".join(lines)
