"""`intake bench eventstore`: single-event appends, ours vs the eventsourcing library vs raw INSERTs.

Every scenario runs on its own fresh database of the same server with
`synchronous_commit = on`: 1 and 16 concurrent writers appending one event
per transaction for `--seconds`. Ours also runs a subscriber tailing the log
(lag = from the append returning to the subscriber receiving the event).

    .venv/bin/python -m bench.eventstore [--dsn URL] [--seconds 10] [--writers 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import asyncpg

from eventstore.migrate import migrate
from eventstore.postgres import PostgresEventStore, create_pool
from eventstore.records import Checkpoint, NewEvent

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
WARMUP = 1.0
DATA = {"caller": "1380000xxxx", "channel": "sms", "text": "power cut on Renmin Road no. 12"}


@dataclass(slots=True)
class Result:
    """What one scenario measured."""

    scenario: str
    writers: int
    events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)

    def row(self) -> str:
        """One markdown table row."""
        lag = f"{_pct(self.lags, 99) * 1000:.1f}" if self.lags else "-"
        return (
            f"| {self.scenario} | {self.writers} | {self.events / self.seconds:,.0f} | "
            f"{_pct(self.latencies, 50) * 1000:.2f} | {_pct(self.latencies, 99) * 1000:.2f} | "
            f"{lag} | {self.events:,} |"
        )


def _pct(values: list[float], pct: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _with_db(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class Window:
    """The measuring window: after a warm-up, for a fixed time."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter() + WARMUP
        self.end = self.start + seconds

    def running(self) -> bool:
        """Whether writers should keep going."""
        return time.perf_counter() < self.end

    def counts(self, at: float) -> bool:
        """Whether a measurement taken at `at` is inside the window."""
        return self.start <= at < self.end


async def _fresh_db(admin_dsn: str, label: str) -> str:
    name = f"es_bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    finally:
        await admin.close()
    return name


async def _drop_db(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _run_writers(writers: int, one: Callable[[int, int], Awaitable[None]],
                       window: Window, result: Result) -> dict[int, float]:
    async def writer(w: int) -> None:
        i = 0
        while window.running():
            began = time.perf_counter()
            await one(w, i)
            done = time.perf_counter()
            i += 1
            if window.counts(began):
                result.latencies.append(done - began)
                result.events += 1

    await asyncio.gather(*(writer(w) for w in range(writers)))
    result.seconds = window.end - window.start
    return {}


async def bench_ours(dsn: str, writers: int, seconds: float) -> Result:
    """Our store: `PostgresEventStore.append`, with a subscriber tailing the log."""
    pool = await create_pool(dsn, min_size=writers + 2, max_size=writers + 4)
    async with pool.acquire() as conn:
        await migrate(conn)
    store = PostgresEventStore(pool)
    result = Result("intake event store", writers)
    returned: dict[int, float] = {}
    window = Window(seconds)
    stop = asyncio.Event()

    async def one(w: int, i: int) -> None:
        appended = await store.append(f"bench-w{w}s{i // 1000}", [NewEvent("Received", DATA)],
                                      i % 1000 - 1, idempotency_key=f"{w}:{i}")
        returned[appended.positions[0]] = time.perf_counter()

    tail = asyncio.create_task(_tail(store, returned, window, result, stop))
    try:
        await _run_writers(writers, one, window, result)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await tail
        await store.close()
        await pool.close()
    return result


async def _tail(store: PostgresEventStore, returned: dict[int, float], window: Window,
                result: Result, stop: asyncio.Event) -> None:
    """A subscriber following the log; records lag for events appended in the window."""
    wakeup = store.wakeup()
    after = Checkpoint()
    while not stop.is_set():
        wakeup.clear()
        batch = await store.read_batch(after, limit=1000)
        now = time.perf_counter()
        for checkpoint, event in batch.events:
            after = checkpoint
            sent = returned.pop(event.position, None)
            if sent is not None and window.counts(sent):
                result.lags.append(max(0.0, now - sent))
        if batch.events:
            continue
        if batch.pending:
            await asyncio.sleep(0.005)
        elif await wakeup.wait(0.1):
            await asyncio.sleep(0.003)  # coalesce a burst, as the runners do


async def bench_raw(dsn: str, writers: int, seconds: float) -> Result:
    """The ceiling: single-row INSERTs, one connection per writer, autocommit."""
    conns = [await asyncpg.connect(dsn) for _ in range(writers)]
    await conns[0].execute(
        "CREATE TABLE raw_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "stream text NOT NULL, data jsonb NOT NULL)"
    )
    payload = asyncpg_json(DATA)
    result = Result("raw INSERT loop (ceiling)", writers)

    async def one(w: int, i: int) -> None:
        await conns[w].execute("INSERT INTO raw_events (stream, data) VALUES ($1, $2::jsonb)",
                               f"bench-w{w}", payload)

    try:
        await _run_writers(writers, one, Window(seconds), result)
    finally:
        for conn in conns:
            await conn.close()
    return result


def asyncpg_json(value: object) -> str:
    """JSON text for a jsonb parameter."""
    import json

    return json.dumps(value)


def bench_eventsourcing(dsn: str, writers: int, seconds: float) -> Result:
    """The baseline: the eventsourcing library's PostgreSQL application recorder, in threads."""
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    parts = urlsplit(dsn)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"), host=host, port=parts.port or 5432,
        user=unquote(parts.username or "postgres"), password=unquote(parts.password or ""),
        pool_size=writers, max_overflow=2,
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    state = asyncpg_json(DATA).encode()
    result = Result("eventsourcing PostgresApplicationRecorder (baseline)", writers)
    window = Window(seconds)
    lock = threading.Lock()

    def writer() -> None:
        originator = uuid.uuid4()
        version = 0
        while window.running():
            began = time.perf_counter()
            recorder.insert_events([StoredEvent(originator, version, "bench:Received", state)])
            done = time.perf_counter()
            version += 1
            if window.counts(began):
                with lock:
                    result.latencies.append(done - began)
                    result.events += 1

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = window.end - window.start
    datastore.close()
    return result


def _bind(bench: Callable[[str, int, float], Awaitable[Result]], writers: int,
          seconds: float) -> Callable[[str], Awaitable[Result]]:
    return lambda dsn: bench(dsn, writers, seconds)


async def _eventsourcing_async(dsn: str, writers: int, seconds: float) -> Result:
    return await asyncio.to_thread(bench_eventsourcing, dsn, writers, seconds)


async def _scenario(admin_dsn: str, label: str, run: Callable[[str], Awaitable[Result]]) -> Result:
    name = await _fresh_db(admin_dsn, label)
    try:
        return await run(_with_db(admin_dsn, name))
    finally:
        await _drop_db(admin_dsn, name)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="intake bench eventstore", description=__doc__)
    p.add_argument("--dsn", default=os.environ.get("INTAKE_DATABASE_URL", DEFAULT_DSN),
                   help="a DSN allowed to CREATE DATABASE (default: INTAKE_DATABASE_URL or local)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario")
    p.add_argument("--writers", default="1,16", help="comma-separated writer counts")
    p.add_argument("--skip", default="", help="comma-separated: ours,eventsourcing,raw")
    p.add_argument("--embedded", action="store_true",
                   help="run on a private embedded PostgreSQL (pgserver) in a temp dir, so that "
                        "other clients' transactions on a shared server cannot stall the horizon")
    return p.parse_args(argv)


async def main(argv: list[str]) -> int:
    """Run the scenarios and print a markdown table; exit 0."""
    args = _parse(argv)
    if args.embedded:
        return await _on_embedded(args)
    skip = set(filter(None, args.skip.split(",")))
    results: list[Result] = []
    scenarios: dict[str, Callable[[str, int, float], Awaitable[Result]]] = {
        "ours": bench_ours, "eventsourcing": _eventsourcing_async, "raw": bench_raw}
    for writers in (int(w) for w in args.writers.split(",")):
        for label, bench in scenarios.items():
            if label not in skip:
                results.append(await _scenario(args.dsn, label[:4], _bind(bench, writers, args.seconds)))
        print(f"... {writers} writers done", flush=True)
    print(await _server_line(args.dsn))
    print("| store | writers | events/s | append p50 ms | append p99 ms | subscriber lag p99 ms | events |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for result in results:
        print(result.row())
    return 0


async def _on_embedded(args: argparse.Namespace) -> int:
    import tempfile

    import pgserver

    with tempfile.TemporaryDirectory(prefix="es_bench_") as folder:
        server = await asyncio.to_thread(pgserver.get_server, folder, cleanup_mode="stop")  # type: ignore[attr-defined]
        try:
            argv = ["--dsn", f"postgresql://postgres@/postgres?host={folder}",
                    "--seconds", str(args.seconds), "--writers", args.writers, "--skip", args.skip]
            return await main(argv)
        finally:
            await asyncio.to_thread(server.cleanup)


async def _server_line(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        fsync = await conn.fetchval("SHOW fsync")
        sync = await conn.fetchval("SHOW synchronous_commit")
    finally:
        await conn.close()
    return (f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync}), "
            f"{os.cpu_count()} CPUs shared by client and server\n")


if __name__ == "__main__":
    import sys

    sys.exit(asyncio.run(main(sys.argv[1:])))
