"""Client-side micro-measurements quoted in bench/RESULTS.md (session 5): CPU per call, in-process.

- a pooled connection taken and given back: with asyncpg's acquire timeout (the
  event store's old way), without it (now, when a connection is idle);
- decoding an SMS event from its stored JSON (`dispatch.messages.from_data`);
- one writer's appends, each awaited: the plain store against the group
  committer (whose flush keeps its connection for the next append), CPU and
  wall time per append, in alternating blocks of 200 on a scratch database.

    .venv/bin/python -m bench.micro [--dsn URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from bench.scratch import DEFAULT_DSN, create_database, drop_database
from channels.message import Caller, InboundContact
from dispatch.messages import from_data, to_data
from dispatch.sms import CaseMessageReceived, SmsReceived
from eventstore.migrate import migrate
from eventstore.postgres import PostgresEventStore, _cheap_reset, create_pool
from eventstore.records import NewEvent
from gateway.cli import run_command


async def _per_call(work: Callable[[], Awaitable[None]], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        await work()
    return (time.process_time() - started) / n * 1e6


async def _pool(dsn: str, n: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4, reset=_cheap_reset)
    try:
        async def timed() -> None:
            async with pool.acquire(timeout=4.0):
                pass

        async def untimed() -> None:
            conn = await pool.acquire()
            await pool.release(conn, timeout=4.0)

        for _ in range(2):
            print(f"acquire + release, acquire timeout 4 s: {await _per_call(timed, n):.1f} us")
            print(f"acquire + release, no acquire timeout:  {await _per_call(untimed, n):.1f} us")
    finally:
        await pool.close()


async def _appends(admin_dsn: str, blocks: int, per_block: int = 200) -> None:
    name = f"micro_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(admin_dsn, name)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(dsn, min_size=2, max_size=4)
        stores = {"plain": PostgresEventStore(pool), "group": PostgresEventStore(pool, group_commit=True)}
        cpu: dict[str, list[float]] = {label: [] for label in stores}
        wall: dict[str, list[float]] = {label: [] for label in stores}
        try:
            for block in range(blocks):
                for label, store in stores.items():
                    events = [NewEvent("SmsReceived", {"text": "停电了", "n": block}, 1, {"actor": "micro"})]
                    started, used = time.perf_counter(), time.process_time()
                    for i in range(per_block):
                        await store.append(f"micro-{label}{block}", events, i - 1,
                                           idempotency_key=f"{label}:{block}:{i}")
                    cpu[label].append((time.process_time() - used) / per_block * 1e6)
                    wall[label].append((time.perf_counter() - started) / per_block * 1e6)
        finally:
            for store in stores.values():
                await store.close()
            await pool.close()
        for label in stores:
            print(f"one writer, {label} store: {statistics.median(cpu[label]):.0f} us CPU, "
                  f"{statistics.median(wall[label]):.0f} us wall per append (median of {blocks} blocks)")
    finally:
        await drop_database(admin_dsn, name)


def _decode(n: int) -> None:
    now = datetime.now(UTC)
    contact = InboundContact(
        channel="sms", kind="sms", idempotency_key="twilio:sms:SM1", caller=Caller(phone="+8613900000001"),
        occurred_at=now, received_at=now, text="停电了，整栋楼没电",
        raw={"MessageSid": "SM1", "From": "+8613900000001", "Body": "停电了"},
        extra={"source": "twilio", "message_sid": "SM1", "to": "+8695598"})
    for evt in (SmsReceived(contact), CaseMessageReceived("C1", "sms", "+8613900000001", "停电了", contact)):
        data = to_data(evt)
        started = time.process_time()
        for _ in range(n):
            from_data(type(evt), data)
        print(f"decode {type(evt).__name__}: {(time.process_time() - started) / n * 1e6:.1f} us")


def main(argv: list[str]) -> int:
    """Print the micro-measurements."""
    p = argparse.ArgumentParser(prog="python -m bench.micro")
    p.add_argument("--dsn", default=DEFAULT_DSN)
    p.add_argument("--calls", type=int, default=30_000)
    p.add_argument("--blocks", type=int, default=20, help="alternating blocks of 200 appends per store")
    args = p.parse_args(argv)
    _decode(args.calls)
    run_command(_pool(args.dsn, args.calls))
    run_command(_appends(args.dsn, args.blocks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
