"""`intake bench rebalance`: how long partitions take to move when a worker joins, leaves or dies.

Worker processes (`bench/partition_worker.py`: a projection and a reactor of
16 partitions each, on the default lease) run on a scratch database. Each
round starts 3, then measures from the event until every partition of both
runners is held as `assign` spreads them over the workers alive:

- join: a 4th worker starts (from its first heartbeat, when the others can first see it);
- leave: one gets SIGTERM (it frees its leases and leaves);
- death: one gets SIGKILL (its leases run out after the lease time).

Prints the median and the worst of the rounds, in seconds.

    .venv/bin/python -m bench.rebalance [--dsn URL] [--rounds 3] [--lease 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench.partition_worker import TABLES, live_workers, settled
from bench.scratch import add_server_arguments, create_database, drop_database, load_average
from eventstore.leadership import LEASE_SECONDS
from eventstore.migrate import migrate
from eventstore.postgres import create_pool
from gateway.schema import SCHEMA

ROOT = Path(__file__).resolve().parents[1]


def _start(dsn: str, lease: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.partition_worker", dsn, str(lease)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _until(check: Callable[[], Awaitable[bool]]) -> float:
    start = time.monotonic()
    async with asyncio.timeout(60):
        while not await check():  # noqa: ASYNC110 (the state changes in other processes)
            await asyncio.sleep(0.01)
    return time.monotonic() - start


async def _bench(args: argparse.Namespace) -> int:
    name = f"intake_bench_rebalance_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, name)
    pool = await create_pool(dsn, min_size=1, max_size=4)
    times: dict[str, list[float]] = {"join": [], "leave": [], "death": []}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with pool.acquire() as conn:
            await migrate(conn, SCHEMA)
            await conn.execute(TABLES)
        for _ in range(args.rounds):
            procs = [_start(dsn, args.lease) for _ in range(3)]
            await _until(lambda: settled(pool, 3))
            procs.append(_start(dsn, args.lease))

            async def joined() -> bool:
                return len(await live_workers(pool)) == 4
            await _until(joined)  # its first heartbeat: the interpreter's start is not rebalancing
            start = time.monotonic()
            await _until(lambda: settled(pool, 4))
            times["join"].append(time.monotonic() - start)
            leaving = procs.pop(0)
            start = time.monotonic()
            leaving.send_signal(signal.SIGTERM)
            await _until(lambda: settled(pool, 3))
            times["leave"].append(time.monotonic() - start)
            leaving.wait()
            dying = procs.pop(0)
            start = time.monotonic()
            dying.send_signal(signal.SIGKILL)
            await _until(lambda: settled(pool, 2))
            times["death"].append(time.monotonic() - start)
            dying.wait()
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
            procs = []

            async def none_left() -> bool:
                return not await live_workers(pool)
            await _until(none_left)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        await pool.close()
        await drop_database(args.dsn, name)
    print(f"lease {args.lease} s, {args.rounds} rounds, load {args.load}")
    print("| event | median s | worst s |\n|---|---|---|")
    for event, found in times.items():
        print(f"| {event} | {statistics.median(found):.2f} | {max(found):.2f} |")
    return 0


def main(argv: Sequence[str]) -> int:
    """Run the rebalancing benchmark; print a Markdown table."""
    p = argparse.ArgumentParser(prog="intake bench rebalance")
    add_server_arguments(p)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lease", type=float, default=LEASE_SECONDS)
    args = p.parse_args(argv)
    args.load = load_average()
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
