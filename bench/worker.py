"""`intake bench worker`: how fast a worker takes a backlog of SMS into cases.

A storm leaves the worker behind the gateway (`intake bench channels` shows
the backlog when its load ends). Here the backlog is made first: `--sms`
inbound SMS from `--senders` numbers are recorded on a fresh database with
nothing running, then taken in, each scenario on its own fresh copy:

- `sms-intake` alone, one reaction at a time (baseline: `concurrency=1`);
- `sms-intake` alone as the worker runs it (keyed by sender, chains at once);
- the whole worker (`INTAKE_ROLE=worker`: every projection, policy and timer),
  until `sms-intake` has taken in the last SMS;
- the `cases` projection rebuilt over that log event by event (baseline),
  then in batches (`apply_batch`).

Reports SMS (or events) per second, this process's CPU per SMS (or event;
PostgreSQL's CPU is not included) and the server's WAL flushes per SMS (or
event; `pg_stat_wal`, so nothing else should write to that server meanwhile);
for the whole worker also the statements it sent and the transactions it
committed per SMS (counted in the process, around asyncpg's connection: a
statement outside a transaction is one, a BEGIN starts one). Runs on
uvloop, as `intake serve`.

`--workers 1,2,3 --rounds 3` runs the whole worker as that many processes
on one host (each `INTAKE_ROLE=worker` as `intake worker` runs it, sharing
the runners' partitions through their leases), rounds alternating the
order, and reports the rate, the CPU of each worker process and of the
PostgreSQL backends serving them (Linux /proc), so the cost per core is
known. The processes are started and connected first; the clock starts
when all of them are told to begin.

`--only whole` runs the whole worker alone; `--profile FILE` writes its
cProfile (`python -m pstats FILE`). `--against REF --rounds 3` runs the
whole worker of this tree and of git `REF` (checked out with `git worktree`
into a temporary directory, run by this file with this venv) in alternating
rounds, each in a process of its own, and prints every round and the medians.

    .venv/bin/python -m bench.worker [--dsn URL] [--redis URL] [--sms 4000] [--senders 1000]
    .venv/bin/python -m bench.worker --against main --rounds 3
    .venv/bin/python -m bench.worker --workers 1,2,3 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from asyncpg.connection import Connection

from bench.scratch import (
    add_server_arguments,
    create_database,
    drop_database,
    load_average,
    wal_flushes,
)
from dispatch.cases.events import CallerInfo
from dispatch.cases.read_model import CasesProjection
from dispatch.intake.contact import InboundContact
from dispatch.intake.sms import ReceiveSms, SmsIntakePolicy, receive_sms
from eventstore import RecordedEvent
from eventstore.subscriptions import Change, ProjectionRunner, ReactorRunner
from gateway.bootstrap import build_services, close_services, run_background
from gateway.cli.serve import tune_collector
from gateway.cli.stores import run_command
from gateway.logging import configure
from gateway.services import Services
from gateway.settings import from_env

T = TypeVar("T")

TEXTS = ("停电了，整栋楼没电", "请问什么时候来电", "电压不稳灯一直闪")
_INTAKE_CHECKPOINT = """coalesce((SELECT (c.tx_id, c.position) FROM checkpoints c
    WHERE c.name = 'sms-intake' OR c.name LIKE 'sms-intake/%' ORDER BY c.tx_id, c.position LIMIT 1),
    ('0'::xid8, 0))"""
"""The oldest checkpoint of the policy's partitions (eventstore/partitions.py)."""
SMS_BACKLOG_SQL = f"""SELECT count(*) FROM events e
    WHERE e.category = 'sms' AND (e.tx_id, e.position) > {_INTAKE_CHECKPOINT}"""
"""The recorded SMS the worker's `sms-intake` policy has not taken in yet."""
SMS_PENDING_SQL = f"""SELECT coalesce((SELECT (e.tx_id, e.position) FROM events e WHERE e.category = 'sms'
    ORDER BY e.tx_id DESC, e.position DESC LIMIT 1) > {_INTAKE_CHECKPOINT}, false)"""
"""Whether any is left: what polling needs. The newest SMS in read order against the checkpoint is one
backward index probe; counting (or EXISTS over the same range) scans it, 4-10 ms of server time a poll."""


_SAMPLE_EVERY = 0.5
"""Seconds between samples of the backends' CPU (one that leaves between two is missed: the pool's stay)."""


@dataclass(frozen=True, slots=True)
class Result:
    """One scenario: items done, wall seconds, this process's CPU seconds, the server's WAL flushes."""

    name: str
    items: int
    seconds: float
    cpu: float
    flushes: int | None
    statements: int | None = None
    transactions: int | None = None
    by_statement: dict[str, int] | None = None
    server_cpu: float | None = None
    """CPU seconds of the database's PostgreSQL backends (/proc: a server on this host; the whole worker)."""

    def row(self, unit: str, baseline: Result | None) -> str:
        """A Markdown table row."""
        rate = self.items / self.seconds
        speedup = f"{rate / (baseline.items / baseline.seconds):.1f}x" if baseline else "1.0x"
        return (f"| {self.name} | {self.items:,} {unit} | {self.seconds:.2f} | {rate:,.0f} | {speedup} | "
                f"{self.cpu * 1e3 / self.items:.2f} | {_each(self.flushes, self.items)} | "
                f"{_each(self.statements, self.items)} | {_each(self.transactions, self.items)} |")


HEADER = ("| scenario | done | seconds | per second | x baseline | client CPU ms each "
          "| WAL flushes each | statements each | transactions each |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|")


@contextlib.contextmanager
def counting(by_statement: dict[str, int] | None = None, skip: object = None) -> Iterator[list[int]]:
    """Count the statements this process sends and the transactions it commits: [statements, transactions].

    Wraps asyncpg's query methods: a statement sent outside a transaction is a
    transaction of its own (an explicit one starts with such a BEGIN). Each
    statement's count is added to `by_statement` under its first words, if given.
    The connection `skip` (the benchmark's own) is not counted.
    """
    counts = [0, 0]
    originals = {name: getattr(Connection, name)
                 for name in ("execute", "executemany", "fetch", "fetchval", "fetchrow")}

    def counted(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def run(self: Connection, *args: Any, **kwargs: Any) -> Any:
            if self is skip:
                return await method(self, *args, **kwargs)
            counts[0] += 1
            if by_statement is not None:
                key = " ".join(str(args[0] if args else kwargs.get("query", "")).split())[:90]
                by_statement[key] = by_statement.get(key, 0) + 1
            counts[1] += not self.is_in_transaction()
            return await method(self, *args, **kwargs)
        return run

    for name, method in originals.items():
        setattr(Connection, name, counted(method))
    try:
        yield counts
    finally:
        for name, method in originals.items():
            setattr(Connection, name, method)


@contextlib.contextmanager
def tuned_collector() -> Iterator[None]:
    """The garbage collector as `intake serve` (and so `intake worker`) tunes it once started
    (`gateway.cli.serve.tune_collector`: start-up's objects frozen, young collections every
    10,000 allocations), and as it was after; the collection it starts with is not timed."""
    threshold = gc.get_threshold()
    tune_collector()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def _each(count: int | None, items: int) -> str:
    return "-" if count is None else f"{count / items:.2f}"


class OneByOne:
    """The cases projection without `apply_batch`: the event-by-event baseline."""

    def __init__(self, inner: CasesProjection) -> None:
        self.name, self.categories, self.tables = inner.name, inner.categories, inner.tables
        self._inner = inner

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """The projection's own `apply`."""
        return await self._inner.apply(conn, event)


def _sms(n: int, senders: int) -> ReceiveSms:
    at = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)
    sid = f"SM{n:032d}"
    return ReceiveSms(InboundContact(
        channel="sms", kind="sms", idempotency_key=f"twilio:sms:{sid}",
        caller=CallerInfo(phone=f"+86139{n % senders:08d}"), occurred_at=at, received_at=at,
        text=TEXTS[n % 3], raw={"MessageSid": sid}, extra={"source": "twilio", "message_sid": sid}))


async def _timed(admin_dsn: str, name: str, items: int, work: Callable[[], Awaitable[Any]]) -> Result:
    flushed = await wal_flushes(admin_dsn)
    started, cpu = time.perf_counter(), time.process_time()
    await work()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    now = await wal_flushes(admin_dsn)
    flushes = None if now is None or flushed is None else now - flushed
    return Result(name, items, seconds, cpu, flushes)


async def _with_backlog(args: argparse.Namespace, template: str,
                        scenario: Callable[[Services], Awaitable[T]]) -> T:
    """Run `scenario` on a fresh copy of the backlog database."""
    name = f"intake_bench_worker_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, name, template=template)
    settings = from_env({"INTAKE_DATABASE_URL": dsn, "INTAKE_REDIS_URL": args.redis,
                         "INTAKE_REDIS_PREFIX": f"{name}:", "INTAKE_ROLE": "worker",
                         "INTAKE_SMS_PROVIDER": "log", "INTAKE_SIA_PORT": "0"})
    services = await build_services(settings)
    try:
        return await scenario(services)
    finally:
        await close_services(services)
        await drop_database(args.dsn, name)


async def _whole_worker(admin_dsn: str, services: Services, count: int,
                        profile: str | None = None) -> Result:
    admin = await asyncpg.connect(admin_dsn)
    backends = _Backends(admin, str(await services.pool.fetchval("SELECT current_database()")))

    async def drained() -> None:
        await backends.start()
        background = run_background(services)
        await anext(background)  # the runners are started
        try:
            async with services.pool.acquire() as conn:
                sampled = time.monotonic()
                while await conn.fetchval(SMS_PENDING_SQL):
                    if time.monotonic() - sampled >= _SAMPLE_EVERY:  # /proc reads cost this process CPU
                        await backends.sample()
                        sampled = time.monotonic()
                    await asyncio.sleep(0.05)
            await backends.sample()
        finally:
            with contextlib.suppress(StopAsyncIteration):
                await anext(background)  # stops them

    profiler = cProfile.Profile() if profile else None
    tally: dict[str, int] = {}
    with counting(tally, skip=admin) as counts, tuned_collector():
        if profiler is not None:
            profiler.enable()
        result = await _timed(admin_dsn, "the whole worker (INTAKE_ROLE=worker)", count, drained)
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)
    await admin.close()
    return Result(result.name, result.items, result.seconds, result.cpu, result.flushes,
                  statements=counts[0], transactions=counts[1], by_statement=tally,
                  server_cpu=backends.used)



async def _backlog(dsn: str, args: argparse.Namespace) -> None:
    """`args.sms` SMS from `args.senders` senders received into the database at `dsn`, untaken."""
    settings = from_env({"INTAKE_DATABASE_URL": dsn, "INTAKE_REDIS_URL": args.redis})
    services = await build_services(settings)
    try:
        for start in range(0, args.sms, 500):
            await asyncio.gather(*(receive_sms(_sms(n, args.senders), store=services.store)
                                   for n in range(start, min(start + 500, args.sms))))
    finally:
        await close_services(services)

async def _bench(args: argparse.Namespace) -> int:
    configure("json", "warning")
    template = f"intake_bench_worker_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, template)
    try:
        await _backlog(dsn, args)

        def intake(concurrency: int, label: str) -> Callable[[Services], Awaitable[Result]]:
            async def run(services: Services) -> Result:
                runner = ReactorRunner(services.store, SmsIntakePolicy(services.bus.handle),
                                       concurrency=concurrency)
                return await _timed(args.dsn, label, args.sms, runner.run_until_caught_up)
            return run

        if args.only == "whole":
            whole = await _with_backlog(
                args, template, lambda s: _whole_worker(args.dsn, s, args.sms, args.profile))
            if args.json:
                print(json.dumps(asdict(whole)))
            else:
                print(HEADER)
                print(whole.row("SMS", None))
                print(by_statement(whole))
            return 0
        alone = [await _with_backlog(args, template, intake(1, "sms-intake, one SMS at a time (baseline)")),
                 await _with_backlog(args, template, intake(4, "sms-intake, keyed by sender (4 chains)"))]
        whole = await _with_backlog(
            args, template, lambda s: _whole_worker(args.dsn, s, args.sms, args.profile))

        async def rebuilds(services: Services) -> list[Result]:
            events = await ReactorRunner(services.store, SmsIntakePolicy(services.bus.handle)
                                         ).run_until_caught_up()
            found: list[Result] = []
            for label, projection in (("cases projection rebuilt event by event (baseline)",
                                       OneByOne(CasesProjection(services.clock))),
                                      ("cases projection rebuilt in batches (apply_batch)",
                                       CasesProjection(services.clock))):
                runner = ProjectionRunner(services.store, projection, batch_size=500)
                found.append(await _timed(args.dsn, label, events, runner.rebuild))
            return found

        projected = await _with_backlog(args, template, rebuilds)
    finally:
        await drop_database(args.dsn, template)
    print(f"{args.sms:,} SMS from {args.senders:,} senders; load average {args.load} before, "
          f"{load_average()} after")
    print(HEADER)
    print(alone[0].row("SMS", None))
    print(alone[1].row("SMS", alone[0]))
    print(whole.row("SMS", alone[0]))
    print(projected[0].row("events", None))
    print(projected[1].row("events", projected[0]))
    return 0


def by_statement(result: Result, top: int = 15) -> str:
    """The statements the whole worker sent most, per SMS, as a Markdown table."""
    tally = sorted((result.by_statement or {}).items(), key=lambda kv: -kv[1])
    lines = ["| statements per SMS | statement (its first words) |", "|---:|---|"]
    lines += [f"| {count / result.items:.3f} | `{text}` |" for text, count in tally[:top]]
    return "\n".join(lines)


def _against(args: argparse.Namespace) -> int:
    """The whole worker of this tree and of `args.against`, alternating, `args.rounds` rounds."""
    from bench.scratch import release_tree  # not in older releases, which run this file too

    here = Path(__file__).resolve().parents[1]
    # This file, run without its folder on sys.path (there `eventstore` is the benchmark's name).
    runner = ("import runpy, sys; sys.argv[0] = sys.argv.pop(1); "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    command = [sys.executable, "-c", runner, str(Path(__file__).resolve()), "--only", "whole", "--json",
               "--dsn", args.dsn, "--redis", args.redis, "--sms", str(args.sms),
               "--senders", str(args.senders)]
    with release_tree(args.against) as release:
        trees = [("this tree", here), (f"release {args.against}", release)]
        rounds: list[dict[str, Result]] = []
        for number in range(args.rounds):
            found: dict[str, Result] = {}
            for name, tree in trees if number % 2 == 0 else trees[::-1]:
                done = subprocess.run(command, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                                      capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return 1
                found[name] = Result(**json.loads(done.stdout.strip().splitlines()[-1]))
            rounds.append(found)
            print(f"round {number + 1}: " + ", ".join(
                f"{name} {r.items / r.seconds:,.0f} SMS/s" for name, r in found.items()), flush=True)
    print(f"{args.sms:,} SMS from {args.senders:,} senders, {args.rounds} rounds alternating; "
          f"load average {args.load} before, {load_average()} after")
    print("| whole worker (INTAKE_ROLE=worker) | SMS/s each round | median SMS/s | x release (median of "
          "rounds) | client CPU ms each (median) | PostgreSQL CPU ms each (median) | statements each | "
          "transactions each | WAL flushes each |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    base = trees[1][0]
    for name, _ in trees:
        runs = [r[name] for r in rounds]
        rates = [r.items / r.seconds for r in runs]
        ratio = statistics.median(r[base].seconds / r[name].seconds for r in rounds)

        def median_ms(values: list[float | None], items: int) -> str:
            known = [v for v in values if v is not None]
            return f"{statistics.median(known) * 1e3 / items:.2f}" if known else "-"

        def median_each(values: list[int | None], items: int) -> str:
            known = [v for v in values if v is not None]
            return _each(int(statistics.median(known)), items) if known else "-"

        print(f"| {name} | {', '.join(f'{x:,.0f}' for x in rates)} | {statistics.median(rates):,.0f} | "
              f"{ratio:.2f}x | {statistics.median(r.cpu * 1e3 / r.items for r in runs):.2f} | "
              f"{median_ms([r.server_cpu for r in runs], args.sms)} | "
              f"{median_each([r.statements for r in runs], args.sms)} | "
              f"{median_each([r.transactions for r in runs], args.sms)} | "
              f"{median_each([r.flushes for r in runs], args.sms)} |")
    for name, _ in trees:
        print(f"\n{name}, last round:\n{by_statement(rounds[-1][name])}")
    return 0


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc); None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _host_busy() -> float:
    """CPU seconds the whole host spent busy so far (/proc/stat: all but idle and iowait)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


async def _serve(dsn: str, redis: str) -> int:
    """One worker process of `--workers`: connect, say `ready`, run from `go` until stdin closes."""
    configure("json", "warning")
    settings = from_env({"INTAKE_DATABASE_URL": dsn, "INTAKE_REDIS_URL": redis,
                         "INTAKE_REDIS_PREFIX": f"{dsn.rsplit('/', 1)[1]}:", "INTAKE_ROLE": "worker",
                         "INTAKE_SMS_PROVIDER": "log", "INTAKE_SIA_PORT": "0"})
    services = await build_services(settings)
    loop = asyncio.get_running_loop()
    tune_collector()  # as `intake worker` does once started
    try:
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # "go"
        background = run_background(services)
        await anext(background)
        try:
            await loop.run_in_executor(None, sys.stdin.readline)  # "stop", or closed
        finally:
            with contextlib.suppress(StopAsyncIteration):
                await anext(background)
    finally:
        await close_services(services)
    return 0


@dataclass(frozen=True, slots=True)
class Spread:
    """One run of `--workers`: processes, SMS, wall seconds, CPU seconds of each worker and of the server."""

    workers: int
    items: int
    seconds: float
    worker_cpu: tuple[float, ...]
    server_cpu: float
    host_cpu: float

    @property
    def rate(self) -> float:
        """SMS taken in per second."""
        return self.items / self.seconds


_HERE = Path(__file__).resolve().parents[1]


def _start(dsn: str, redis: str, workers: int) -> list[subprocess.Popen[str]]:
    """Start `workers` worker processes of this tree on `dsn` (they connect, then wait for `go`)."""
    command = [sys.executable, "-m", "bench.worker", "--serve", dsn, "--redis", redis]
    return [subprocess.Popen(command, cwd=_HERE, env={**os.environ, "PYTHONPATH": str(_HERE)},
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(workers)]


def _tell(procs: Sequence[subprocess.Popen[str]], line: str | None) -> None:
    """Send each process a line; None: close their stdin and wait for them to stop."""
    for proc in procs:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            if line is None:
                proc.stdin.close()
            else:
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
    if line is None:
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class _Backends:
    """The CPU the PostgreSQL backends of one database used since `start` (/proc, same host)."""

    def __init__(self, conn: asyncpg.Connection, database: str) -> None:
        self._conn, self._database = conn, database
        self._seen: dict[int, tuple[float, float]] = {}  # pid: CPU at the start or first sight, last

    async def sample(self) -> None:
        """Note the CPU of every backend of the database (one opened since: counted from 0)."""
        rows = await self._conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1 "
                                      "AND pid <> pg_backend_pid()", self._database)
        for row in rows:
            cpu = _cpu_seconds(row["pid"])
            if cpu is not None:
                self._seen[row["pid"]] = (self._seen.get(row["pid"], (0.0, 0.0))[0], cpu)

    async def start(self) -> None:
        """Start counting from now for the backends open now."""
        await self.sample()
        self._seen = {pid: (last, last) for pid, (_, last) in self._seen.items()}

    @property
    def used(self) -> float:
        """CPU seconds since the start (as of the last sample)."""
        return sum(last - first for first, last in self._seen.values())


async def _spread(args: argparse.Namespace, template: str, workers: int) -> Spread:
    """Take the backlog in with `workers` processes on a fresh copy; their CPU and the server's."""
    name = f"intake_bench_worker_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, name, template=template)
    loop = asyncio.get_running_loop()
    procs = _start(dsn, args.redis, workers)
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await loop.run_in_executor(None, proc.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError(f"worker process said {line!r}")
        watch = await asyncpg.connect(dsn)
        try:
            backends = _Backends(watch, name)
            await backends.start()
            before = [_cpu_seconds(p.pid) or 0.0 for p in procs]
            host, started = _host_busy(), time.perf_counter()
            _tell(procs, "go")
            polls = 0
            while await watch.fetchval(SMS_PENDING_SQL):
                await asyncio.sleep(0.05)
                polls += 1
                if polls % 5 == 0:
                    await backends.sample()  # backends opened meanwhile
            seconds = time.perf_counter() - started
            await backends.sample()
            used = tuple((_cpu_seconds(p.pid) or 0.0) - b for p, b in zip(procs, before, strict=True))
            host = _host_busy() - host
        finally:
            await watch.close()
        return Spread(workers, args.sms, seconds, used, backends.used, host)
    finally:
        await loop.run_in_executor(None, _tell, procs, None)
        await drop_database(args.dsn, name)


async def _spreads(args: argparse.Namespace) -> int:
    """`--workers`: every count in each round, the order alternating; each round and the medians."""
    configure("json", "warning")
    counts = [int(n) for n in args.workers.split(",")]
    template = f"intake_bench_worker_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, template)
    runs: dict[int, list[Spread]] = {n: [] for n in counts}
    try:
        await _backlog(dsn, args)
        for number in range(args.rounds):
            found = []
            for n in counts if number % 2 == 0 else counts[::-1]:
                run = await _spread(args, template, n)
                runs[n].append(run)
                found.append(run)
            print(f"round {number + 1}: " + ", ".join(
                f"{r.workers} worker(s) {r.rate:,.0f} SMS/s (worker CPU s "
                f"{'+'.join(f'{c:.1f}' for c in r.worker_cpu)}, PostgreSQL {r.server_cpu:.1f}, "
                f"host {r.host_cpu:.1f} in {r.seconds:.1f} s)" for r in found), flush=True)
    finally:
        await drop_database(args.dsn, template)
    print(f"{args.sms:,} SMS from {args.senders:,} senders, {args.rounds} rounds alternating; "
          f"load average {args.load} before, {load_average()} after")
    print(SPREAD_HEADER)
    for n in counts:
        print(spread_row(runs[n]))
    return 0


SPREAD_HEADER = (
    "| worker processes | SMS/s each round | median SMS/s | CPU s of each worker (median) "
    "| worker CPU ms per SMS | PostgreSQL CPU ms per SMS | worker + PostgreSQL ms per SMS "
    "| SMS/s per core (worker + PostgreSQL) | host busy CPU s (all processes) "
    "| of it other work, CPU s (other users, Redis, PostgreSQL's shared processes) |\n"
    "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|")


def spread_row(runs: Sequence[Spread]) -> str:
    """The medians of one worker count's runs, as a Markdown row."""
    med = statistics.median
    first = runs[0]
    each = [med(r.worker_cpu[i] for r in runs) for i in range(first.workers)]
    worker_ms = med(sum(r.worker_cpu) * 1e3 / r.items for r in runs)
    server_ms = med(r.server_cpu * 1e3 / r.items for r in runs)
    total_ms = med((sum(r.worker_cpu) + r.server_cpu) * 1e3 / r.items for r in runs)
    return (f"| {first.workers} | {', '.join(f'{r.rate:,.0f}' for r in runs)} | "
            f"{med(r.rate for r in runs):,.0f} | {' + '.join(f'{c:.2f}' for c in each)} | "
            f"{worker_ms:.2f} | {server_ms:.2f} | {total_ms:.2f} | {1e3 / total_ms:,.0f} | "
            f"{med(r.host_cpu for r in runs):.1f} | "
            f"{med(r.host_cpu - sum(r.worker_cpu) - r.server_cpu for r in runs):.1f} |")


def main(argv: Sequence[str]) -> int:
    """Run the worker benchmark; print a Markdown table."""
    p = argparse.ArgumentParser(prog="intake bench worker")
    add_server_arguments(p)
    p.add_argument("--sms", type=int, default=4000)
    p.add_argument("--senders", type=int, default=1000)
    p.add_argument("--only", choices=("all", "whole"), default="all",
                   help="every scenario, or the whole worker alone")
    p.add_argument("--profile", metavar="FILE", help="write the whole worker's cProfile to FILE")
    p.add_argument("--json", action="store_true", help="with --only whole: one JSON line")
    p.add_argument("--against", metavar="REF",
                   help="also run the whole worker of git REF, in alternating rounds")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", metavar="N,N",
                   help="the whole worker as N processes on this host, e.g. 1,2,3 (alternating rounds)")
    p.add_argument("--serve", metavar="DSN", help=argparse.SUPPRESS)  # one process of --workers
    args = p.parse_args(argv)
    args.load = load_average()
    if args.serve:
        return int(run_command(_serve(args.serve, args.redis)))
    if args.workers:
        return int(run_command(_spreads(args)))
    if args.against:
        return _against(args)
    return int(run_command(_bench(args)))  # on uvloop, as `intake serve` runs


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
