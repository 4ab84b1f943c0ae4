"""`intake bench storm`: a storm of contacts at a fixed offered rate, taken in by one gateway and one worker.

On a fresh database of the PostgreSQL given (`--dsn`), one `intake serve`
with `INTAKE_ROLE=gateway` and one with `INTAKE_ROLE=worker` run as in
production. For `--seconds` (60) this process offers signed Twilio SMS
webhooks at `--rate` per second (open loop: each request is sent at its
time whether or not the earlier ones were answered; every SMS from a number
of its own, so each opens a case) and CTI `abandoned` events at
`--cti-rate` per second. Meanwhile it polls the dispatcher's board (`GET
/api/v1/cases`, newest first, one page of `--page` cases every
`--poll` seconds, further pages only while they hold cases newer than the
last poll's newest) and notes when each SMS's case (its caller's number)
first appears. `--settle` (5) seconds after the storm it reports:

- the rate accepted (2xx answers per second of storm) and the rate taken in
  (SMS whose case was on the board by then, per second of storm);
- contact-to-board latency: from the webhook's 2xx to the first poll that
  showed the case, p50 / p99 (it includes up to one poll interval); a case
  the incremental polls missed is found by a full sweep at the end and
  counts from then;
- the backlog then: SMS the worker's `sms-intake` had not taken in, and
  accepted SMS not on the board;
- CTI abandon-to-task p50 / p99 from the log (`CallAbandoned` to
  `CallbackTaskOpened`, as `intake bench channels`);
- each server's CPU seconds over the storm.

`--against REF` runs the same storm against git `REF` (checked out with `git
worktree` into a temporary directory; its servers run from there with this
venv) in the same run, rounds alternating (`--rounds`, 3), and prints every
round and the medians. The worker runs at its role's niceness (10) unless
`--worker-nice` says otherwise: on a host loaded by other work, a niced
worker starves, so runs there use `--worker-nice 0`.

    .venv/bin/python -m bench.storm [--rate 1000] [--seconds 60] [--against REF] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg

from bench.channels import TOKEN, _abandon_latencies, _cpu_seconds, _stop, _wait_ready
from bench.scratch import add_server_arguments, create_database, drop_database, load_average, release_tree
from bench.worker import SMS_BACKLOG_SQL
from channels.signatures import twilio_signature

CHANNEL_TOKEN = "bench-storm-channel-token-01"
BOARD_TOKEN = "bench-storm-dispatcher-token-01"
TEXT = "停电了，整栋楼没电"
HERE = Path(__file__).resolve().parents[1]


@dataclass(slots=True)
class Storm:
    """One storm against one tree."""

    tree: str
    seconds: float
    offered: int = 0
    accepted: int = 0
    refused: int = 0
    late: float = 0.0
    acked: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    swept: int = 0
    backlog: int = 0
    abandons: int = 0
    abandon_latencies: list[float] = field(default_factory=list)
    gateway_cpu: float = 0.0
    worker_cpu: float = 0.0
    load: str = ""

    @property
    def latencies(self) -> list[float]:
        """Contact-to-board seconds of every accepted SMS on the board, sorted."""
        return sorted(self.seen[p] - t for p, t in self.acked.items() if p in self.seen)

    @property
    def not_on_board(self) -> int:
        """Accepted SMS whose case was not on the board `--settle` seconds after the storm."""
        return sum(p not in self.seen for p in self.acked)

    def taken_in_rate(self) -> float:
        """SMS on the board after the storm and its settle time, per second of storm."""
        return sum(p in self.seen for p in self.acked) / self.seconds


def pct(values: list[float], q: float) -> float:
    """The `q` quantile of sorted `values`, in milliseconds (nan when empty)."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def _free_port() -> int:
    """A TCP port nothing listens on now (each run's servers get their own)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(env: dict[str, str], tree: Path, role: str, port: int,
           nice: int | None = None) -> subprocess.Popen[bytes]:
    code = "from gateway.cli.main import main; raise SystemExit(main(['serve']))"
    niceness = {} if nice is None else {"INTAKE_NICE": str(nice)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=tree,
                            env={**env, "PYTHONPATH": str(tree), "INTAKE_ROLE": role,
                                 "INTAKE_HTTP_PORT": str(port), **niceness})


async def _sms(session: aiohttp.ClientSession, url: str, n: int, nonce: str, storm: Storm) -> None:
    phone = f"+86139{n:08d}"
    params = {"From": phone, "MessageSid": f"SM{nonce}{n:024d}", "AccountSid": "ACbench",
              "To": "+8695598", "NumMedia": "0", "Body": TEXT}
    headers = {"X-Twilio-Signature": twilio_signature(TOKEN, url, {k: [v] for k, v in params.items()},
                                                      "HMAC_SHA1"),
               "Content-Type": "application/x-www-form-urlencoded"}
    try:
        async with session.post(url, data=urlencode(params), headers=headers) as response:
            await response.read()
            ok = 200 <= response.status < 300
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    if ok:
        storm.accepted += 1
        storm.acked[phone[-11:]] = time.perf_counter()
    else:
        storm.refused += 1


async def _offer_sms(session: aiohttp.ClientSession, base: str, rate: float, seconds: float,
                     storm: Storm) -> None:
    """Open loop: SMS number n is sent at start + n / rate."""
    url, nonce = f"{base}/channels/twilio/sms", uuid.uuid4().hex[:8]
    total, start = int(rate * seconds), time.perf_counter()
    running: set[asyncio.Task[None]] = set()
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            storm.late = max(storm.late, -delay)
        task = asyncio.create_task(_sms(session, url, n, nonce, storm))
        running.add(task)
        task.add_done_callback(running.discard)
        storm.offered += 1
    await asyncio.gather(*running)


async def _offer_cti(session: aiohttp.ClientSession, base: str, rate: float, seconds: float,
                     storm: Storm) -> None:
    if rate <= 0:
        return
    headers = {"Authorization": f"Bearer {CHANNEL_TOKEN}"}
    total, start = int(rate * seconds), time.perf_counter()
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body = {"event_id": f"storm{n}", "type": "abandoned", "call_id": f"storm{n}",
                "caller": f"1378{n:07d}", "queue": "fault",
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.post(f"{base}/channels/cti/events", json=body, headers=headers) as r:
                await r.read()
                storm.abandons += r.status < 300


async def _board_page(session: aiohttp.ClientSession, base: str, limit: int,
                      cursor: str | None, storm: Storm) -> tuple[list[datetime], str | None]:
    """One page of the board, newest first: note its cases' numbers; their acceptance times and the cursor."""
    query = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
    headers = {"Authorization": f"Bearer {BOARD_TOKEN}"}
    async with session.get(f"{base}/api/v1/cases", params=query, headers=headers) as response:
        body = await response.json()
    now = time.perf_counter()
    accepted = []
    for item in body["items"]:
        phone = (item.get("caller") or {}).get("phone")
        if phone and phone[-11:] not in storm.seen:  # the board shows the number as it normalised it
            storm.seen[phone[-11:]] = now
        accepted.append(datetime.fromisoformat(item["accepted_at"]))
    return accepted, body.get("next")


async def _poll_board(session: aiohttp.ClientSession, base: str, args: argparse.Namespace,
                      storm: Storm, stop: asyncio.Event) -> None:
    """Each poll reads pages until one reaches below the previous poll's newest case (less a margin)."""
    margin = timedelta(seconds=args.poll)
    newest_before = datetime.now(UTC) - timedelta(seconds=5)
    while not stop.is_set():
        cursor: str | None = None
        newest: datetime | None = None
        while True:
            accepted, cursor = await _board_page(session, base, args.page, cursor, storm)
            if accepted and newest is None:
                newest = accepted[0]
            if not cursor or not accepted or accepted[-1] < newest_before - margin:
                break
        newest_before = newest or newest_before
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.poll)


async def _sweep(session: aiohttp.ClientSession, base: str, storm: Storm) -> None:
    """Read the whole board once: cases the incremental polls missed count from now."""
    before = len(storm.seen)
    cursor: str | None = None
    while True:
        _, cursor = await _board_page(session, base, 1000, cursor, storm)
        if not cursor:
            break
    storm.swept = len(storm.seen) - before


async def _storm(args: argparse.Namespace, name: str, tree: Path) -> Storm:
    port, worker_port = _free_port(), _free_port()
    base = f"http://127.0.0.1:{port}"
    database = f"intake_bench_storm_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, database)
    env = {**os.environ, "INTAKE_DATABASE_URL": dsn, "INTAKE_REDIS_URL": args.redis,
           "INTAKE_REDIS_PREFIX": f"bench-{database}:", "INTAKE_SIA_PORT": "0",
           "INTAKE_TOKENS": f"{CHANNEL_TOKEN}:channel:bench,{BOARD_TOKEN}:dispatcher:bench",
           "INTAKE_TWILIO_AUTH_TOKEN": TOKEN, "INTAKE_PUBLIC_URL": base,
           "INTAKE_LOG_LEVEL": "warning", "INTAKE_SMS_PROVIDER": "log",
           "INTAKE_ALLOW_OWNER": "1"}  # a scratch database made through the given (owner's) DSN
    storm = Storm(name, args.seconds, load=load_average())
    gateway = _serve(env, tree, "gateway", port)
    worker = None
    try:
        await _wait_ready(base, gateway)  # the gateway applied its tree's migrations
        worker = _serve(env, tree, "worker", worker_port, args.worker_nice)
        await _wait_ready(f"http://127.0.0.1:{worker_port}", worker)
        cpu = _cpu_seconds(gateway.pid), _cpu_seconds(worker.pid)
        connector = aiohttp.TCPConnector(limit=args.connections)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session, \
                aiohttp.ClientSession(timeout=timeout) as board:
            stop = asyncio.Event()
            poller = asyncio.create_task(_poll_board(board, base, args, storm, stop))
            await asyncio.gather(_offer_sms(session, base, args.rate, args.seconds, storm),
                                 _offer_cti(session, base, args.cti_rate, args.seconds, storm))
            storm.gateway_cpu = _cpu_seconds(gateway.pid) - cpu[0]
            storm.worker_cpu = _cpu_seconds(worker.pid) - cpu[1]
            await asyncio.sleep(args.settle)
            stop.set()
            await poller
            conn = await asyncpg.connect(dsn)
            try:
                storm.backlog = int(await conn.fetchval(SMS_BACKLOG_SQL))
            finally:
                await conn.close()
            await _sweep(board, base, storm)
        storm.abandon_latencies, _ = await _abandon_latencies(dsn)
    finally:
        for proc in (gateway, worker):
            if proc is not None:
                _stop(proc)
        await drop_database(args.dsn, database)
    return storm


def row(storm: Storm) -> str:
    """A Markdown row of one storm."""
    lat, ab = storm.latencies, storm.abandon_latencies
    return (f"| {storm.tree} | {storm.offered / storm.seconds:,.0f} | "
            f"{storm.accepted / storm.seconds:,.0f} | "
            f"{storm.taken_in_rate():,.1f} | {pct(lat, 0.5):,.0f} | {pct(lat, 0.99):,.0f} | "
            f"{storm.backlog:,} | {storm.not_on_board:,} | {pct(ab, 0.5):,.0f} | {pct(ab, 0.99):,.0f} | "
            f"{storm.gateway_cpu:.1f} | {storm.worker_cpu:.1f} | {storm.refused:,} | {storm.late:.2f} | "
            f"{storm.load} |")


HEADER = ("| tree | offered /s | accepted /s | taken in /s | to board p50 ms | p99 ms | SMS backlog "
          "| not on board | abandon-to-task p50 ms | p99 ms | gateway CPU s | worker CPU s | refused "
          "| client late s | load before |\n|---|" + "---:|" * 14)


def _median_row(name: str, runs: list[Storm]) -> str:
    columns: list[tuple[Callable[[Storm], float], str]] = [
        (lambda s: s.offered / s.seconds, ",.0f"), (lambda s: s.accepted / s.seconds, ",.0f"),
        (Storm.taken_in_rate, ",.1f"), (lambda s: pct(s.latencies, 0.5), ",.0f"),
        (lambda s: pct(s.latencies, 0.99), ",.0f"), (lambda s: s.backlog, ",.0f"),
        (lambda s: s.not_on_board, ",.0f"), (lambda s: pct(s.abandon_latencies, 0.5), ",.0f"),
        (lambda s: pct(s.abandon_latencies, 0.99), ",.0f"), (lambda s: s.gateway_cpu, ".1f"),
        (lambda s: s.worker_cpu, ".1f"), (lambda s: s.refused, ",.0f"), (lambda s: s.late, ".2f"),
    ]
    cells = [format(statistics.median([float(f(s)) for s in runs]), spec) for f, spec in columns]
    return f"| {name}, median of {len(runs)} | {' | '.join(cells)} | - |"


@contextlib.contextmanager
def _trees(against: str | None) -> Iterator[list[tuple[str, Path]]]:
    if against is None:
        yield [("this tree", HERE)]
        return
    with release_tree(against) as release:
        yield [("this tree", HERE), (f"release {against}", release)]


async def _bench(args: argparse.Namespace) -> int:
    with _trees(args.against) as trees:
        runs: dict[str, list[Storm]] = {name: [] for name, _ in trees}
        rounds = args.rounds if args.against else 1
        print(f"storm: {args.rate:g} SMS/s and {args.cti_rate:g} CTI abandons/s offered for "
              f"{args.seconds:g} s, backlog {args.settle:g} s after; {rounds} round(s)", flush=True)
        print(HEADER, flush=True)
        for number in range(rounds):
            for name, tree in trees if number % 2 == 0 else trees[::-1]:
                storm = await _storm(args, name, tree)
                runs[name].append(storm)
                print(row(storm), flush=True)
        if rounds > 1:
            for name, _ in trees:
                print(_median_row(name, runs[name]))
    print(f"load average after: {load_average()}")
    return 0


def main(argv: list[str]) -> int:
    """Run the storm benchmark; print a Markdown table."""
    p = argparse.ArgumentParser(prog="intake bench storm")
    add_server_arguments(p)
    p.add_argument("--rate", type=float, default=1000.0, help="SMS offered per second")
    p.add_argument("--cti-rate", type=float, default=20.0, help="CTI abandoned calls offered per second")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the storm lasts")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds after the storm at which the backlog is measured")
    p.add_argument("--poll", type=float, default=0.1, help="seconds between polls of the board")
    p.add_argument("--page", type=int, default=200, help="cases per page of the board")
    p.add_argument("--connections", type=int, default=64, help="client connections at most")
    p.add_argument("--worker-nice", type=int, default=None,
                   help="INTAKE_NICE of the worker (default: the worker role's own, 10; on a host "
                        "loaded by other work, 0 keeps the worker from starving)")
    p.add_argument("--against", metavar="REF", help="also run the storm against git REF")
    p.add_argument("--rounds", type=int, default=3, help="with --against: alternating rounds")
    args = p.parse_args(argv)
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
