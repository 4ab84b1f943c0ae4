"""`intake bench retention`: how long the daily retention job takes to choose the people it erases.

A scratch database gets `--cases` closed cases, two per person, closed 2020-01-01 (due under
the default 3 years) except every tenth person's, closed ten days ago (not due); every person
has a key. Times `plan` (candidates, widening, each person's cases and contacts) choosing
`--limit` people, over `--rounds` rounds; prints the median and the rounds, in seconds. The
erasures themselves are the erasure's cost (one transaction each).

    .venv/bin/python -m bench.retention [--dsn URL] [--cases 50000] [--limit 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.scratch import add_server_arguments, create_database, drop_database, load_average
from dispatch.personal.retention import RetentionConfig, plan
from eventstore.migrate import migrate
from eventstore.postgres import create_pool
from gateway.schema import SCHEMA

NOW = datetime(2026, 12, 1, tzinfo=UTC)
_COLUMNS = ["case_id", "status", "category", "priority", "channel", "caller_phone", "version",
            "created_at", "accepted_at", "updated_at", "closed_at"]


async def _fill(conn: asyncpg.Connection, cases: int) -> int:
    rows = []
    for i in range(cases):
        person = i // 2
        ended = NOW - timedelta(days=10) if person % 10 == 0 else datetime(2020, 1, 1, tzinfo=UTC)
        rows.append((f"C{i:09d}", "closed", "consultation", 3, "phone", f"139{person:08d}", 0,
                     ended, ended, ended, ended))
    await conn.copy_records_to_table("cases", records=rows, columns=_COLUMNS)
    subjects = sorted({f"phone:{r[5]}" for r in rows})
    await conn.copy_records_to_table("subject_keys", columns=["key_id", "subject", "key"],
                                     records=[(uuid.uuid4(), s, os.urandom(32)) for s in subjects])
    await conn.execute("ANALYZE")
    return len(subjects)


async def _bench(args: argparse.Namespace) -> int:
    name = f"intake_bench_retention_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, name)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, SCHEMA)
            people = await _fill(conn, args.cases)
        finally:
            await conn.close()
        pool = await create_pool(dsn, command_timeout=600)
        try:
            times, chosen = [], 0
            for _ in range(args.rounds):
                async with pool.acquire() as c:
                    start = time.perf_counter()
                    chosen = len(await plan(c, RetentionConfig(), NOW, limit=args.limit))
                    times.append(time.perf_counter() - start)
        finally:
            await pool.close()
    finally:
        await drop_database(args.dsn, name)
    print(f"{args.cases} cases, {people} people, load {args.load}: plan chose {chosen} in median "
          f"{statistics.median(times):.2f} s (rounds: {', '.join(f'{t:.2f}' for t in times)})")
    return 0


def main(argv: Sequence[str]) -> int:
    """Run the retention benchmark."""
    p = argparse.ArgumentParser(prog="intake bench retention")
    add_server_arguments(p)
    p.add_argument("--cases", type=int, default=50_000)
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    args.load = load_average()
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
