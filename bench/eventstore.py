"""`intake bench eventstore`: single-event appends, ours vs the eventsourcing library vs raw INSERTs.

Every scenario runs on its own fresh database of the same server with
`synchronous_commit = on`: 1 and 16 concurrent writers appending one event
per transaction for `--seconds`. The harness is the same for all three: the
writers run in `--procs` separate writer processes (asyncio tasks, or threads
for the synchronous baseline), each append sends the same payload (event
data and metadata JSON-encoded per append, stream name, type, idempotency
key). Ours runs plain and with group commit (`eventstore/group.py`: each
writer still awaits each single-event append until it is durable), each
with a subscriber tailing the log in its own process, woken by NOTIFY (lag
= from the append returning to the subscriber receiving it). The asyncio
processes run on uvloop, as `intake serve` does.

Two ceilings, both in every round. The per-row ceiling is a raw INSERT loop
that commits every row on its own, one connection per writer. Group commit
shares one commit among the appends that meet in a flush, so it is also held
against a batched ceiling: raw INSERTs committing as many rows per commit as
group commit did (its rows per commit are measured from the log: events per
distinct transaction id), with as many rows in flight as there are writers
(`batched_shape`). The batched scenario takes the rows per commit of the
latest group commit run with the same writers, in this round or the one
before; without one, group commit's cap (`MAX_BATCH`, at most the writers).

With `--rounds N` every scenario runs N times, one round after another, and a
table of medians follows: each ratio is taken against the baseline and the
ceilings of its own round, so a slow spell of a shared machine weighs on a
round's stores together and not on one of them. Every other round runs its
scenarios in reverse order (`schedule`), so no store always runs first, or
always right after the same neighbour.

    .venv/bin/python -m bench.eventstore [--dsn URL | --embedded] [--seconds 10] [--writers 1,16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from bench.scratch import DEFAULT_DSN, create_database, database_dsn, drop_database, load_average
from eventstore.group import MAX_BATCH
from eventstore.migrate import migrate
from eventstore.postgres import PostgresEventStore, create_pool
from eventstore.records import Checkpoint, NewEvent
from gateway.cli.stores import run_command
from gateway.schema import SCHEMA

WARMUP = 1.0
DATA = {"caller": "1380000xxxx", "channel": "sms", "text": "power cut on Renmin Road no. 12"}
RECEIVED_AT = "2026-11-23T14:00:00.123456+00:00"
LABELS = {
    "ours": "intake event store",
    "group": "intake event store (group commit)",
    "eventsourcing": "eventsourcing PostgresApplicationRecorder (baseline)",
    "raw": "raw INSERT loop, one row per commit (per-row ceiling)",
    "batched": "raw INSERT, group commit's rows per commit (batched ceiling)",
}
KINDS = tuple(LABELS)


def metadata(w: int, i: int) -> dict[str, Any]:
    """The metadata of append `i` of writer `w`, as a channel adapter would send it."""
    return {"actor": "channel:sms", "channel": "sms", "correlation_id": f"corr-{w}-{i}",
            "causation_id": None, "received_at": RECEIVED_AT}


def key(w: int, i: int) -> str:
    """The idempotency key of append `i` of writer `w`."""
    return f"sms-SM{w:02d}{i:08d}"


@dataclass(slots=True)
class Result:
    """What one scenario measured."""

    store: str
    writers: int
    seconds: float
    events: int = 0
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    undelivered: int = 0
    per_commit: float = 1.0
    """Rows per commit: measured from the log for ours, by construction for the others."""
    positions: list[int] = field(default_factory=list, repr=False)
    """Ours: the log positions of the appends that began inside the window."""

    @property
    def rate(self) -> float:
        """Events per second in the window."""
        return self.events / self.seconds

    def row(self, round_: dict[str, Result]) -> str:
        """One markdown table row, with ratios to the baseline and the ceilings of its own round."""
        lag = f"{_pct(self.lags, 99) * 1000:.1f}" if self.lags else "-"
        return (
            f"| {LABELS[self.store]} | {self.writers} | {self.rate:,.0f} | "
            f"{_spread(_ratios([round_], self.store, 'eventsourcing'), '{:.1f}x')} | "
            f"{_spread(_ratios([round_], self.store, 'raw'), '{:.0%}')} | "
            f"{_pct(self.latencies, 50) * 1000:.2f} | {_pct(self.latencies, 99) * 1000:.2f} | "
            f"{lag} | {self.events:,} | "
            f"{_spread(_ratios([round_], self.store, 'batched'), '{:.0%}')} | {self.per_commit:.2f} |"
        )


def _pct(values: list[float], pct: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


@dataclass(frozen=True, slots=True)
class Window:
    """The measuring window in `time.monotonic()` seconds (system-wide on Linux)."""

    start: float
    end: float

    def running(self) -> bool:
        """Whether writers should keep going."""
        return time.monotonic() < self.end

    def counts(self, at: float) -> bool:
        """Whether a measurement taken at `at` is inside the window."""
        return self.start <= at < self.end


@dataclass(slots=True)
class Shard:
    """What one writer process measured: latencies and, for ours, when each position returned."""

    latencies: list[float] = field(default_factory=list)
    returned: dict[int, float] = field(default_factory=dict)

    def record(self, window: Window, began: float, done: float, rows: int = 1) -> None:
        """Count `rows` rows committed together if they began inside the window."""
        if window.counts(began):
            self.latencies.extend([done - began] * rows)


# -- writer processes -----------------------------------------------------------------


async def _writers_group(dsn: str, ids: list[int], sync: _Sync) -> Shard:
    """Ours with group commit on: the same single-event appends, each awaited until durable."""
    return await _writers_ours(dsn, ids, sync, group_commit=True)


async def _writers_ours(dsn: str, ids: list[int], sync: _Sync, *, group_commit: bool = False) -> Shard:
    pool = await create_pool(dsn, min_size=len(ids) + 1, max_size=len(ids) + 2)
    store = PostgresEventStore(pool, group_commit=group_commit)
    shard = Shard()
    window = await sync.ready()

    async def writer(w: int) -> None:
        i = 0
        while window.running():
            began = time.monotonic()
            appended = await store.append(
                f"bench-w{w}s{i // 1000}", [NewEvent("Received", DATA, 1, metadata(w, i))],
                i % 1000 - 1, idempotency_key=key(w, i))
            done = time.monotonic()
            shard.record(window, began, done)
            if window.counts(began):
                shard.returned[appended.positions[0]] = done
            i += 1

    try:
        await asyncio.gather(*(writer(w) for w in ids))
    finally:
        await store.close()
        await pool.close()
    return shard


async def _writers_raw(dsn: str, ids: list[int], sync: _Sync) -> Shard:
    conns = [await asyncpg.connect(dsn) for _ in ids]
    shard = Shard()
    window = await sync.ready()

    async def writer(w: int, conn: asyncpg.Connection) -> None:
        i = 0
        while window.running():
            began = time.monotonic()
            await conn.execute(
                "INSERT INTO raw_events (stream, type, data, metadata) VALUES ($1, $2, $3, $4)",
                f"bench-w{w}s{i // 1000}", "Received", _dumps(DATA),
                _dumps({**metadata(w, i), "idempotency_key": key(w, i)}))
            shard.record(window, began, time.monotonic())
            i += 1

    try:
        await asyncio.gather(*(writer(w, c) for w, c in zip(ids, conns, strict=True)))
    finally:
        for conn in conns:
            await conn.close()
    return shard


_BATCH_SQL = ("INSERT INTO raw_events (stream, type, data, metadata) "
              "SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[])")


async def _writers_batched(dsn: str, ids: list[int], sync: _Sync, rows: int) -> Shard:
    """Raw INSERTs, `rows` rows per statement and commit, one connection per id."""
    conns = [await asyncpg.connect(dsn) for _ in ids]
    shard = Shard()
    window = await sync.ready()

    async def writer(w: int, conn: asyncpg.Connection) -> None:
        i = 0
        while window.running():
            began = time.monotonic()
            batch = range(i, i + rows)
            await conn.execute(
                _BATCH_SQL, [f"bench-w{w}s{n // 1000}" for n in batch], ["Received"] * rows,
                [_dumps(DATA)] * rows, [_dumps({**metadata(w, n), "idempotency_key": key(w, n)})
                                        for n in batch])
            shard.record(window, began, time.monotonic(), rows)
            i += rows

    try:
        await asyncio.gather(*(writer(w, c) for w, c in zip(ids, conns, strict=True)))
    finally:
        for conn in conns:
            await conn.close()
    return shard


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _recorder(dsn: str, pool_size: int) -> Any:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    parts = urlsplit(dsn)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"), host=host, port=parts.port or 5432,
        user=unquote(parts.username or "postgres"), password=unquote(parts.password or ""),
        pool_size=pool_size, max_overflow=2,
    )
    return PostgresApplicationRecorder(datastore), datastore


def _writers_eventsourcing(dsn: str, ids: list[int], sync: _Sync) -> Shard:
    from eventsourcing.persistence import StoredEvent

    recorder, datastore = _recorder(dsn, len(ids))
    shard = Shard()
    lock = threading.Lock()
    window = sync.ready_blocking()

    def writer(w: int) -> None:
        originator = uuid.uuid4()
        i = 0
        while window.running():
            began = time.monotonic()
            state = _dumps({"data": DATA, "metadata": {**metadata(w, i), "idempotency_key": key(w, i)}})
            recorder.insert_events([StoredEvent(originator, i, "bench:Received", state.encode())])
            done = time.monotonic()
            with lock:
                shard.record(window, began, done)
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    datastore.close()
    return shard


# -- the subscriber process (ours) ----------------------------------------------------


async def _subscriber(dsn: str, sync: _Sync, stop: Any) -> dict[int, float]:
    """Tail the log from another process, woken by NOTIFY; when each position arrived."""
    pool = await create_pool(dsn, min_size=2, max_size=3)
    store = PostgresEventStore(pool)
    await store.listen()
    wakeup = store.wakeup()
    delivered: dict[int, float] = {}
    after = Checkpoint()
    await sync.ready()
    try:
        while not stop.is_set():
            wakeup.clear()
            batch = await store.read_batch(after, limit=1000)
            now = time.monotonic()
            for checkpoint, event in batch.events:
                after = checkpoint
                delivered[event.position] = now
            if batch.events:
                continue
            if batch.pending:
                await asyncio.sleep(0.005)
            elif await wakeup.wait(0.1):
                await asyncio.sleep(0.003)  # coalesce a burst, as the runners do
    finally:
        await store.close()
        await pool.close()
    return delivered


# -- process plumbing ----------------------------------------------------------------


class _Sync:
    """Start line shared by the processes of one scenario: all set up, then one window."""

    def __init__(self, parties: int, seconds: float) -> None:
        self._ready = mp.get_context("spawn").Barrier(parties + 1)
        self._go = mp.get_context("spawn").Barrier(parties + 1)
        self._start = mp.get_context("spawn").Value("d", 0.0)
        self._seconds = seconds

    def ready_blocking(self) -> Window:
        """Wait for every process to be set up; the window everybody measures."""
        self._ready.wait()
        self._go.wait()
        start = float(self._start.value)
        return Window(start, start + self._seconds)

    async def ready(self) -> Window:
        """`ready_blocking` from asyncio."""
        return await asyncio.to_thread(self.ready_blocking)

    def open(self) -> Window:
        """Parent: once all are ready, open the window after the warm-up."""
        self._ready.wait()
        self._start.value = time.monotonic() + WARMUP
        self._go.wait()
        start = float(self._start.value)
        return Window(start, start + self._seconds)


TAILED = ("ours", "group")
"""Our stores: measured with a subscriber tailing the log in its own process."""
WRITERS: dict[str, Callable[..., Any]] = {
    "ours": _writers_ours, "group": _writers_group, "raw": _writers_raw,
    "eventsourcing": _writers_eventsourcing}


def _child(kind: str, dsn: str, ids: list[int], sync: _Sync, out: Connection, stop: Any,
           rows: int) -> None:
    if kind == "subscriber":
        out.send(run_command(_subscriber(dsn, sync, stop)))
    elif kind == "eventsourcing":
        out.send(_writers_eventsourcing(dsn, ids, sync))
    elif kind == "batched":
        out.send(run_command(_writers_batched(dsn, ids, sync, rows)))
    else:
        out.send(run_command(WRITERS[kind](dsn, ids, sync)))
    out.close()


def batched_shape(writers: int, per_commit: float) -> tuple[int, int]:
    """(connections, rows per commit) of the batched ceiling for `writers` writers.

    As many rows per commit as group commit's mean (rounded, 1 to `writers`),
    and as many rows in flight as writers: group commit's writers each wait
    for their own append, so no more rows than writers are ever waiting.
    """
    rows = max(1, min(writers, round(per_commit)))
    return max(1, round(writers / rows)), rows


def run_scenario(kind: str, dsn: str, writers: int, procs: int, seconds: float,
                 rows: int = 1) -> Result:
    """Run one store with `writers` writers over `procs` processes (+ a subscriber for ours).

    `batched`: `writers` connections committing `rows` rows each time.
    """
    ctx = mp.get_context("spawn")
    groups = [list(range(writers))[p::procs] for p in range(min(procs, writers))]
    roles = [(kind, ids) for ids in groups] + ([("subscriber", [])] if kind in TAILED else [])
    sync = _Sync(len(roles), seconds)
    stop = ctx.Event()
    pipes, children = [], []
    for role, ids in roles:
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(role, dsn, ids, sync, send, stop, rows))
        child.start()
        pipes.append(receive)
        children.append(child)
    window = sync.open()
    shards = [pipe.recv() for pipe in pipes[: len(groups)]]
    time.sleep(0.5)
    stop.set()
    delivered: dict[int, float] = pipes[-1].recv() if kind in TAILED else {}
    for child in children:
        child.join()
    return _merge(kind, writers, window, shards, delivered)


def _merge(kind: str, writers: int, window: Window, shards: list[Shard],
           delivered: dict[int, float]) -> Result:
    result = Result(kind, writers, window.end - window.start)
    for shard in shards:
        result.latencies.extend(shard.latencies)
        result.positions.extend(shard.returned)
        for position, returned in shard.returned.items():
            arrived = delivered.get(position)
            if arrived is None:
                result.undelivered += 1
            else:
                result.lags.append(max(0.0, arrived - returned))
    result.events = len(result.latencies)
    return result


# -- databases ---------------------------------------------------------------------


async def _fresh_db(admin_dsn: str, kind: str) -> str:
    name = f"es_bench_{kind[:4]}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dsn = await create_database(admin_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
        if kind in TAILED:
            await migrate(conn, SCHEMA)
        elif kind in ("raw", "batched"):
            await conn.execute(
                "CREATE TABLE raw_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "stream text NOT NULL, type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL)")
    finally:
        await conn.close()
    if kind == "eventsourcing":
        await asyncio.to_thread(lambda: _recorder(dsn, 1)[0].create_table())
    return name


async def _scenario(admin_dsn: str, kind: str, writers: int, procs: int, seconds: float,
                    per_commit: float) -> Result:
    """One scenario on a fresh database; `per_commit`: the batched ceiling's target."""
    name = await _fresh_db(admin_dsn, kind)
    dsn = database_dsn(admin_dsn, name)
    connections, rows = batched_shape(writers, per_commit)
    try:
        if kind != "batched":
            result = await asyncio.to_thread(run_scenario, kind, dsn, writers, procs, seconds)
            if kind in TAILED:
                result.per_commit = await rows_per_commit(dsn, result.positions)
            return result
        result = await asyncio.to_thread(run_scenario, kind, dsn, connections, procs, seconds, rows)
        result.writers, result.per_commit = writers, rows  # a ceiling for `writers` writers
        return result
    finally:
        await drop_database(admin_dsn, name)


async def rows_per_commit(dsn: str, positions: list[int]) -> float:
    """Events per transaction among the events at `positions` (their log's `tx_id`)."""
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT count(*)::float8 / NULLIF(count(DISTINCT tx_id), 0) FROM events "
            "WHERE position = ANY($1::bigint[])", positions)
    finally:
        await conn.close()
    return float(value or 1.0)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="intake bench eventstore", description=__doc__)
    p.add_argument("--dsn", default=os.environ.get("INTAKE_DATABASE_URL", DEFAULT_DSN),
                   help="a DSN allowed to CREATE DATABASE (default: INTAKE_DATABASE_URL or local)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario")
    p.add_argument("--writers", default="1,16", help="comma-separated writer counts")
    p.add_argument("--procs", type=int, default=2,
                   help="writer processes per scenario (at most one per writer), same for every store")
    p.add_argument("--skip", default="", help="comma-separated: " + ",".join(KINDS))
    p.add_argument("--rounds", type=int, default=1,
                   help="run every scenario this many times, every other round in reverse order, "
                        "and add a table of medians")
    p.add_argument("--embedded", action="store_true",
                   help="run on a private embedded PostgreSQL (pgserver) in a temp dir, so that "
                        "other clients' transactions on a shared server cannot disturb the run")
    return p.parse_args(argv)


def schedule(writers: Sequence[int], kinds: Sequence[str], rounds: int) -> list[tuple[int, int, str]]:
    """(round, writers, kind) in running order: as given in odd rounds, reversed in even ones.

    Scenario after scenario, round after round: a slow spell of a shared machine
    falls on every store instead of on one of them; reversing every other round
    takes away the advantage of going first (or of following a given neighbour).
    """
    plan = [(w, kind) for w in writers for kind in kinds]
    return [(number, w, kind) for number in range(1, rounds + 1)
            for w, kind in (plan if number % 2 else plan[::-1])]


async def main(argv: list[str]) -> int:
    """Run the scenarios and print markdown tables; exit 0."""
    args = _parse(argv)
    if args.embedded:
        return await _on_embedded(args)
    skip = set(filter(None, args.skip.split(",")))
    kinds = [kind for kind in KINDS if kind not in skip]
    writer_counts = [int(w) for w in args.writers.split(",")]
    print(f"load average before: {load_average()}", flush=True)
    runs: dict[tuple[int, int], dict[str, Result]] = {}
    measured: dict[int, float] = {}  # group commit's rows per commit, latest run per writer count
    for number, writers, kind in schedule(writer_counts, kinds, args.rounds):
        result = await _scenario(args.dsn, kind, writers, args.procs, args.seconds,
                                 measured.get(writers, float(MAX_BATCH)))
        if kind == "group":
            measured[writers] = result.per_commit
        runs.setdefault((number, writers), {})[kind] = result
        print(f"... round {number}, {writers} writers: {kind} done", flush=True)
    rounds = [{kind: runs[at][kind] for kind in kinds if kind in runs[at]} for at in sorted(runs)]
    print(f"load average after: {load_average()}")
    print(await _server_line(args.dsn, args.procs))
    print(_HEADER)
    for results in rounds:
        for result in results.values():
            print(result.row(results))
            if result.undelivered:
                print(f"| (subscriber missed {result.undelivered} events) |")
    if args.rounds > 1:
        print(f"\nMedians of {args.rounds} rounds (each ratio against the baseline and the ceilings "
              "of its own round; range in brackets):\n")
        print(_HEADER)
        print("\n".join(summarise(rounds)))
    return 0


_HEADER = ("| store | writers | events/s | x baseline | of per-row ceiling | append p50 ms "
           "| append p99 ms | subscriber lag p99 ms | events | of batched ceiling | rows/commit |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def _ratios(rounds: list[dict[str, Result]], kind: str, against: str) -> list[float]:
    """`kind`'s rate over `against`'s, per round in which both ran."""
    return [r[kind].rate / r[against].rate for r in rounds
            if kind in r and against in r and r[against].rate]


def summarise(rounds: list[dict[str, Result]]) -> list[str]:
    """One row per store and writer count: medians over the rounds, ratios taken within each round."""
    rows: list[str] = []
    for writers in dict.fromkeys(r.writers for results in rounds for r in results.values()):
        same = [results for results in rounds if next(iter(results.values())).writers == writers]
        for kind in dict.fromkeys(kind for results in same for kind in results):
            mine = [results[kind] for results in same if kind in results]
            lags = [_pct(r.lags, 99) * 1000 for r in mine if r.lags]
            rows.append(
                f"| {LABELS[kind]} | {writers} | {statistics.median(r.rate for r in mine):,.0f} | "
                f"{_spread(_ratios(same, kind, 'eventsourcing'), '{:.1f}x')} | "
                f"{_spread(_ratios(same, kind, 'raw'), '{:.0%}')} | "
                f"{statistics.median(_pct(r.latencies, 50) for r in mine) * 1000:.2f} | "
                f"{statistics.median(_pct(r.latencies, 99) for r in mine) * 1000:.2f} | "
                f"{f'{statistics.median(lags):.1f}' if lags else '-'} | "
                f"{sum(r.events for r in mine):,} | "
                f"{_spread(_ratios(same, kind, 'batched'), '{:.0%}')} | "
                f"{_spread([r.per_commit for r in mine], '{:.2f}')} |")
    return rows


def _spread(values: list[float], form: str) -> str:
    if not values:
        return "-"
    middle = form.format(statistics.median(values))
    if len(values) == 1:
        return middle
    return f"{middle} ({form.format(min(values))}-{form.format(max(values))})"


async def _on_embedded(args: argparse.Namespace) -> int:
    import tempfile

    import pgserver

    with tempfile.TemporaryDirectory(prefix="es_bench_") as folder:
        server = await asyncio.to_thread(pgserver.get_server, folder, cleanup_mode="stop")  # type: ignore[attr-defined]
        try:
            argv = ["--dsn", f"postgresql://postgres@/postgres?host={folder}",
                    "--seconds", str(args.seconds), "--writers", args.writers, "--skip", args.skip,
                    "--procs", str(args.procs), "--rounds", str(args.rounds)]
            return await main(argv)
        finally:
            await asyncio.to_thread(server.cleanup)


async def _server_line(dsn: str, procs: int) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        fsync = await conn.fetchval("SHOW fsync")
        sync = await conn.fetchval("SHOW synchronous_commit")
    finally:
        await conn.close()
    return (f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync}), "
            f"{os.cpu_count()} CPUs shared by client and server; writers in {procs} process(es)\n")


if __name__ == "__main__":
    import sys

    sys.exit(asyncio.run(main(sys.argv[1:])))
