"""`intake bench shredding`: what sealing personal data costs appends and a case's history.

Issue 24's targets: appends with personal data stay within 10 % of the
release before sealing, and a case's history of 100 events reads in <= 20 ms
at p99.

Appends: `--appends` case registrations (`CaseRegistered` as the SMS intake
builds it: the caller's name and number, the description, the address, the
raw SMS payload) from `--senders` distinct numbers in a fixed random order,
so that a sender's first case creates its key and the later ones find it
cached; each built with `to_new_event` (which notes the personal paths and
the subject) and appended to a new case stream by `--writers` concurrent
writers through the group-commit store, as the gateway and the worker append
(`INTAKE_GROUP_COMMIT` is on by default). Reports appends/s, and the CPU per
append of this process and of the server's backends serving it (read from
`/proc`, so only for a server on this host). Each timed run starts after a
`CHECKPOINT`, so that rounds do not differ by which of them a checkpoint lands in.

Reads: `--cases` case streams of 100 events each (registration, dispatch,
confirmation, then progress reports, supplements, call-backs and reminders,
most with personal fields); every tenth event is a neighbour's whose key is
erased before the reads, so erased boxes are mixed in. Each case is read
`--reads` times in all, one read at a time, by `PostgresEventStore.read_stream`
and by the audit history's own reads (`case_history` + `verify_stream`, what
`GET /api/v1/audit/cases/{id}/history` runs, without HTTP, auth and the
recorded `AuditRead`): with the pool's key cache warm, and cold (a keyring
that caches nothing, so every read fetches its keys and builds its ciphers).

`--against REF` (default 7987fad, the release before sealing; `''` for this
tree alone) runs this file for this tree and for git `REF` (a temporary `git
worktree`, this venv) in alternating order, `--rounds` rounds, each run in a
process of its own on a fresh database, and prints every round and the
medians with the ratio of this tree's appends/s to the release's.

    .venv/bin/python -m bench.shredding [--dsn URL] [--appends 4000] [--senders 1000] [--writers 16]
        [--cases 10] [--reads 1000] [--against 7987fad] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.scratch import DEFAULT_DSN, create_database, database_dsn, drop_database, load_average
from dispatch.cases.events import (
    CallbackRecorded,
    CallerInfo,
    CaseConfirmed,
    CaseDispatched,
    CaseRegistered,
    CaseSupplemented,
    Fault,
    FeedbackGiven,
    Place,
    ReminderSet,
)
from dispatch.cases.state import case_stream
from dispatch.core.messages import Event, metadata, to_new_event
from eventstore.migrate import migrate
from eventstore.postgres import PostgresEventStore, create_pool
from eventstore.records import NewEvent
from gateway.cli.replay import case_history, verify_stream
from gateway.cli.stores import run_command
from gateway.logging import configure
from gateway.schema import SCHEMA

RELEASE = "7987fad"
"""The release before personal data was sealed (its parent commit 52744ed introduced it)."""
HISTORY = 100
"""Events in each case read."""
NEIGHBOUR_EVERY = 10
"""Every this many events of a case is a neighbour's, whose key is erased before the reads."""
T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
_SUBJECT = "subject" in inspect.signature(to_new_event).parameters  # False before sealing


def _new_event(evt: Event, meta: dict[str, Any], subject: str | None = None) -> NewEvent:
    """`to_new_event` as the tree under test has it (the release before sealing takes no subject)."""
    if _SUBJECT:
        return to_new_event(evt, meta, subject=subject)  # type: ignore[call-arg, unused-ignore]
    return to_new_event(evt, meta)


def phone(n: int) -> str:
    """The mobile number of sender `n`."""
    return f"139{n:08d}"


def registration(case_id: str, sender: int, n: int) -> CaseRegistered:
    """A case opened from an SMS of `sender`, with every personal field an SMS case has."""
    text = (f"人民路{n % 300 + 1}号{n % 17 + 1}单元停电了，已经两个小时，冰箱里的药要坏了，"
            f"老人在家请尽快处理 (case {n})")
    return CaseRegistered(
        case_id=case_id, category="power_outage", priority=2, channel="sms", description=text,
        caller=CallerInfo(name=f"王{n % 97}先生", phone=phone(sender)),
        accepted_at=T0, deadline=T0 + timedelta(hours=4),
        location=Place(lat=30.57 + sender * 1e-5, lon=104.06, district="510104", district_name="锦江区"),
        address=f"成都市锦江区人民路{n % 300 + 1}号{n % 17 + 1}单元", account_number=f"0{sender:09d}",
        fault=Fault(type="outage", scope="building"), flags=("elderly",),
        raw={"from": phone(sender), "to": "95598", "text": text, "id": f"SM{n:010d}",
             "received": T0.isoformat()},
        contact_stream=f"sms-SM{n:010d}")


def _meta(n: int) -> dict[str, Any]:
    return metadata(actor="channel:sms", channel="sms", correlation_id=f"corr-{n}", received_at=T0)


def follow_up(case_id: str, k: int) -> Event:
    """The `k`-th event after registration of a case's history (k >= 1)."""
    at = T0 + timedelta(minutes=k)
    if k == 1:
        return CaseDispatched(case_id=case_id, assignee="unit-jinjiang-3", assignee_kind="unit",
                              dispatched_at=at, confirm_by=at + timedelta(hours=1), by="agent-7")
    if k == 2:
        return CaseConfirmed(case_id=case_id, unit="unit-jinjiang-3", confirmed_at=at,
                             complete_by=at + timedelta(hours=4), by="unit-jinjiang-3")
    kind = k % 4
    if kind == 0:
        return FeedbackGiven(case_id=case_id, unit="unit-jinjiang-3", at=at,
                             text=f"抢修人员已到达现场，正在排查第{k}处线路，预计一小时内恢复")
    if kind == 1:
        return CaseSupplemented(case_id=case_id, at=at, by="agent-7",
                                text=f"市民再次来电：家中有高龄老人，电话{phone(k)}，请优先处理")
    if kind == 2:
        return CallbackRecorded(case_id=case_id, outcome="reached", at=at, handler="unit-jinjiang-3",
                                note=f"回访：市民称第{k}次联系已恢复供电，表示满意", by="agent-7",
                                case_score=5, unit_score=5)
    return ReminderSet(case_id=case_id, remind_at=at + timedelta(hours=1), by="agent-7", at=at,
                       note=f"一小时后再次回访王先生，确认供电稳定 ({k})")


def neighbour(case: int) -> str:
    """The subject of the neighbour whose events are mixed into case `case` (erased before reads)."""
    return f"phone:+86{phone(900_000 + case)}"


def case_events(case_id: str, case: int) -> list[NewEvent]:
    """The 100 events of case `case`: its caller's, and every tenth a neighbour's."""
    caller = f"phone:+86{phone(800_000 + case)}"
    events = [_new_event(registration(case_id, 800_000 + case, case), _meta(case), caller)]
    for k in range(1, HISTORY):
        who = neighbour(case) if k % NEIGHBOUR_EVERY == 0 else caller
        events.append(_new_event(follow_up(case_id, k), _meta(case), who))
    return events


# -- one run of one tree ---------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """What one run of one tree measured (JSON between the processes)."""

    appends: int
    seconds: float
    client_cpu: float
    server_cpu: float | None
    sealed: int
    """Events stored with a sealed box (0 before sealing)."""
    keys: int
    """Subjects' keys created (0 before sealing)."""
    reads: dict[str, list[float]] = field(default_factory=dict)
    """Read latencies in seconds, per way of reading."""
    erased: int = 0
    """Events read as erased in one read of every case."""

    @property
    def rate(self) -> float:
        """Appends per second."""
        return self.appends / self.seconds


def _backend_cpu(pids: Sequence[int]) -> float | None:
    """CPU seconds (user + system) of the server's backends `pids`; None if not on this host."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(parts[11]) + int(parts[12])) / tick
    return total


async def _pids(conn: asyncpg.Connection, database: str) -> list[int]:
    rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    return [r["pid"] for r in rows]


async def _checkpoint(conn: asyncpg.Connection) -> None:
    """Write the server's dirty pages out now, so that no timed run pays for an earlier one's (and
    the timed checkpoint, every `checkpoint_timeout`, starts its wait again); skipped without the
    right to (superuser or `pg_checkpoint`)."""
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("CHECKPOINT")


async def _appends(dsn: str, database: str, count: int, senders: int, writers: int) -> Run:
    """`count` case registrations by `writers` writers through group commit; timed after a warm-up."""
    pool = await create_pool(dsn, min_size=writers + 1, max_size=writers + 2)
    store = PostgresEventStore(pool, group_commit=True)
    order = random.Random(24).choices(range(senders), k=count)
    warmup = [senders + w for w in range(writers * 4)]  # subjects outside the measured ones

    async def run(sequence: list[int], prefix: str) -> None:
        queue = iter(enumerate(sequence))

        async def writer() -> None:
            for n, sender in queue:
                case_id = f"{prefix}{n:07d}"
                evt = registration(case_id, sender, n)
                await store.append(case_stream(case_id), [_new_event(evt, _meta(n))], -1,
                                   idempotency_key=f"sms-{prefix}{n}")

        await asyncio.gather(*(writer() for _ in range(writers)))

    try:
        await run(warmup, "W")
        async with pool.acquire() as conn:
            pids = await _pids(conn, database)
            await _checkpoint(conn)
        server = _backend_cpu(pids)
        cpu, began = time.process_time(), time.perf_counter()
        await run(order, "B")
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        after = _backend_cpu(pids)
        async with pool.acquire() as conn:
            sealed = await conn.fetchval("SELECT count(*) FROM events WHERE metadata ? 'pd'")
            keyed = await conn.fetchval("SELECT to_regclass('subject_keys') IS NOT NULL")
            keys = await conn.fetchval("SELECT count(*) FROM subject_keys") if keyed else 0
    finally:
        await store.close()
        await pool.close()
    return Run(count, seconds, cpu, None if server is None or after is None else after - server,
               int(sealed), int(keys))


async def _timed(times: int, cases: list[str], read: Callable[[str], Awaitable[Any]]) -> list[float]:
    out = []
    for i in range(times):
        began = time.perf_counter()
        await read(cases[i % len(cases)])
        out.append(time.perf_counter() - began)
    return out


async def _cases(store: PostgresEventStore, pool: asyncpg.Pool, ids: list[str]) -> int:
    """Append the cases' histories, erase their neighbours (when sealed); events read as erased."""
    for c, case_id in enumerate(ids):
        events = case_events(case_id, c)
        for start in range(0, HISTORY, 10):
            await store.append(case_stream(case_id), events[start:start + 10], start - 1)
    try:
        from eventstore.shredding import keyring_of
    except ImportError:  # the release before sealing: nothing to erase
        return 0
    async with pool.acquire() as conn:
        await keyring_of(conn).erase(conn, [neighbour(c) for c in range(len(ids))])
    erased = 0
    for case_id in ids:
        erased += sum(1 for r in await store.read_stream(case_stream(case_id)) if r.metadata.get("erased"))
    return erased


async def _reads(dsn: str, cases: int, reads: int) -> tuple[dict[str, list[float]], int]:
    """Latencies of reading `cases` case histories of 100 events, `reads` times per way of reading."""
    try:
        from eventstore.shredding import Keyring
    except ImportError:  # the release before sealing: nothing to open, nothing cached
        Keyring = None  # type: ignore[assignment, misc]
    pool = await create_pool(dsn, min_size=2, max_size=4)
    store = PostgresEventStore(pool, group_commit=True)
    ids = [f"R{c:04d}" for c in range(cases)]
    try:
        erased = await _cases(store, pool, ids)
        ways: list[tuple[str, PostgresEventStore, asyncpg.Pool]] = [("warm", store, pool)]
        cold_pool = None
        if Keyring is not None:
            cold_pool = await create_pool(dsn, min_size=2, max_size=4, keyring=Keyring(ttl=0.0))
            ways.append(("cold", PostgresEventStore(cold_pool), cold_pool))
        found: dict[str, list[float]] = {}
        try:
            for label, reader, on in ways:
                async def history(case_id: str, reader: PostgresEventStore = reader,
                                  on: asyncpg.Pool = on) -> None:
                    await case_history(reader, case_id)
                    await verify_stream(on, case_stream(case_id))

                async def stream(case_id: str, reader: PostgresEventStore = reader) -> None:
                    assert len(await reader.read_stream(case_stream(case_id))) == HISTORY

                await _timed(len(ids), ids, stream)  # warm the cache (a no-op when cold)
                found[f"read_stream, {label} keys"] = await _timed(reads, ids, stream)
                found[f"history, {label} keys"] = await _timed(reads, ids, history)
        finally:
            if cold_pool is not None:
                await cold_pool.close()
    finally:
        await store.close()
        await pool.close()
    return found, erased


async def run_once(admin_dsn: str, args: argparse.Namespace) -> Run:
    """Both measurements of this tree, on a fresh database (dropped after)."""
    name = f"shred_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dsn = await create_database(admin_dsn, name)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
            await migrate(conn, SCHEMA)
        finally:
            await conn.close()
        dsn = database_dsn(admin_dsn, name)
        run = await _appends(dsn, name, args.appends, args.senders, args.writers)
        if args.reads:
            run.reads, run.erased = await _reads(dsn, args.cases, args.reads)
        return run
    finally:
        await drop_database(admin_dsn, name)


# -- reporting ---------------------------------------------------------------------


def pct(values: list[float], p: int) -> float:
    """The `p`-th percentile of `values` (inclusive method)."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def _per(value: float | None, count: int) -> str:
    return "-" if value is None else f"{value * 1e3 / count:.2f}"


def append_row(name: str, runs: list[Run], base: list[Run] | None) -> str:
    """One Markdown row: appends/s each round, the median, the ratio to `base` (round by round)."""
    rates = [r.rate for r in runs]
    ratio = 1.0 if base is None else statistics.median(r.rate / b.rate
                                                       for r, b in zip(runs, base, strict=True))
    servers = [r.server_cpu / r.appends for r in runs if r.server_cpu is not None]
    return (f"| {name} | {', '.join(f'{x:,.0f}' for x in rates)} | {statistics.median(rates):,.0f} | "
            f"{ratio:.2f}x | {statistics.median(r.client_cpu * 1e3 / r.appends for r in runs):.2f} | "
            f"{f'{statistics.median(servers) * 1e3:.2f}' if servers else '-'} | "
            f"{statistics.median(r.sealed for r in runs):,.0f} | "
            f"{statistics.median(r.keys for r in runs):,.0f} |")


APPEND_HEADER = ("| tree | appends/s each round | median appends/s | x release (median of rounds) "
                 "| client CPU ms / append | server CPU ms / append | events sealed | keys created |\n"
                 "|---|---|---:|---:|---:|---:|---:|---:|")
READ_HEADER = ("| tree | read of a 100-event case | reads | p50 ms | p99 ms | max ms | p99 <= 20 ms |\n"
               "|---|---|---:|---:|---:|---:|---|")


def read_rows(name: str, runs: list[Run]) -> list[str]:
    """Per way of reading: medians over the runs of p50, p99 and max."""
    rows = []
    for way in dict.fromkeys(w for r in runs for w in r.reads):
        mine = [r.reads[way] for r in runs if way in r.reads]
        p50, p99 = (statistics.median(pct(x, p) for x in mine) * 1e3 for p in (50, 99))
        top = statistics.median(max(x) for x in mine) * 1e3
        rows.append(f"| {name} | {way} | {sum(len(x) for x in mine):,} | {p50:.2f} | {p99:.2f} | {top:.2f} | "
                    f"{'met' if p99 <= 20 else 'NOT met'} |")
    return rows


def report(trees: list[tuple[str, list[Run]]], args: argparse.Namespace) -> str:
    """The tables: appends (ratios against the last tree's runs, round by round), then reads."""
    base = trees[-1][1] if len(trees) > 1 else None
    lines = [f"{args.appends:,} case registrations from {args.senders:,} senders by {args.writers} writers "
             f"(group commit); {len(trees[0][1])} round(s)", APPEND_HEADER]
    lines += [append_row(name, runs, None if runs is base else base) for name, runs in trees]
    if args.reads:
        erased = trees[0][1][0].erased
        lines += ["", f"{args.cases} cases of {HISTORY} events, every {NEIGHBOUR_EVERY}th a neighbour's "
                      f"(erased: {erased} of {args.cases * HISTORY} events read as erased); "
                      "one read at a time", READ_HEADER]
        for name, runs in trees:
            lines += read_rows(name, runs)
    return "\n".join(lines)


def _against(args: argparse.Namespace) -> int:
    from bench.scratch import release_tree

    here = Path(__file__).resolve().parents[1]
    # This file, run without its folder on sys.path (there `eventstore` is the store's package).
    runner = ("import runpy, sys; sys.argv[0] = sys.argv.pop(1); "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    command = [sys.executable, "-c", runner, str(Path(__file__).resolve()), "--json", "--against", "",
               "--dsn", args.dsn, "--appends", str(args.appends), "--senders", str(args.senders),
               "--writers", str(args.writers), "--cases", str(args.cases), "--reads", str(args.reads)]
    with release_tree(args.against) as release:
        trees = [("this tree", here), (f"release {args.against}", release)]
        found: dict[str, list[Run]] = {name: [] for name, _ in trees}
        for number in range(args.rounds):
            line = []
            for name, tree in trees if number % 2 == 0 else trees[::-1]:
                done = subprocess.run(command, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                                      capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return 1
                run = Run(**json.loads(done.stdout.strip().splitlines()[-1]))
                found[name].append(run)
                line.append(f"{name} {run.rate:,.0f} appends/s")
            print(f"round {number + 1}: {', '.join(line)}", flush=True)
    print(f"load average {args.load} before, {load_average()} after")
    print(report([(name, found[name]) for name, _ in trees], args))
    return 0


def main(argv: Sequence[str]) -> int:
    """Run the benchmark; print Markdown tables (or, with --json, one JSON line of this tree's run)."""
    p = argparse.ArgumentParser(prog="intake bench shredding", description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", default=os.environ.get("INTAKE_BENCH_DATABASE_URL", DEFAULT_DSN),
                   help="a DSN allowed to CREATE DATABASE")
    p.add_argument("--appends", type=int, default=4000)
    p.add_argument("--senders", type=int, default=1000)
    p.add_argument("--writers", type=int, default=16)
    p.add_argument("--cases", type=int, default=10, help="cases of 100 events to read")
    p.add_argument("--reads", type=int, default=1000, help="reads per way of reading (0: no reads)")
    p.add_argument("--against", metavar="REF", default=RELEASE,
                   help=f"git REF to compare with, in alternating rounds (default {RELEASE}; '' for none)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true", help="one JSON line of one run of this tree")
    args = p.parse_args(argv)
    args.load = load_average()
    configure("json", "warning")
    if args.against:
        return _against(args)
    runs = [run_command(run_once(args.dsn, args)) for _ in range(1 if args.json else args.rounds)]
    if args.json:
        os.set_blocking(sys.stdout.fileno(), True)  # the loop left it non-blocking: a long line got cut
        print(json.dumps(asdict(runs[0])), flush=True)
        return 0
    print(f"load average {args.load} before, {load_average()} after")
    print(report([("this tree", runs)], args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
