"""Client-side micro-measurements quoted in bench/RESULTS.md (session 5): CPU per call, in-process.

- a pooled connection taken and given back: with asyncpg's acquire timeout (the
  event store's old way), without it (now, when a connection is idle);
- decoding an SMS event from its stored JSON (`dispatch.messages.from_data`).

    .venv/bin/python -m bench.micro [--dsn URL]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from bench.scratch import DEFAULT_DSN
from channels.message import Caller, InboundContact
from dispatch.messages import from_data, to_data
from dispatch.sms import CaseMessageReceived, SmsReceived
from eventstore.postgres import _cheap_reset
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
    args = p.parse_args(argv)
    _decode(args.calls)
    run_command(_pool(args.dsn, args.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
