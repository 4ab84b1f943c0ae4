"""Client-side micro-measurements quoted in bench/RESULTS.md (session 5): CPU per call, in-process.

- a pooled connection taken and given back: with asyncpg's acquire timeout (the
  event store's old way), without it (now, when a connection is idle);
- decoding an SMS event from its stored JSON (`dispatch.core.messages.from_data`);
- one writer's appends, each awaited: the plain store against the group
  committer (whose flush keeps its connection for the next append), CPU and
  wall time per append, in alternating blocks of 200 on a scratch database.
- a contact from a caller whose call-back stream already holds N events (one
  per earlier contact): the handler, which keeps each stream's folded state and
  reads only what is new (session 8), against the old way (read and fold the
  whole stream at each contact), in alternating blocks.

    .venv/bin/python -m bench.micro [--dsn URL] [--only decode|pool|appends|contacts]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.scratch import DEFAULT_DSN, create_database, drop_database
from dispatch.cases.registration import CallerInfo
from dispatch.core.messages import from_data, metadata, to_data, to_new_event
from dispatch.intake.contact import InboundContact
from dispatch.intake.sms import CaseMessageReceived, SmsReceived
from dispatch.missed_calls.policy import CloseOnContact, close_on_contact
from dispatch.missed_calls.task import CallerGotThrough, callback_stream, decide_got_through, fold
from eventstore.migrate import migrate
from eventstore.postgres import PostgresEventStore, _cheap_reset, create_pool
from eventstore.records import NewEvent
from gateway.cli.stores import run_command
from gateway.schema import SCHEMA


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


@asynccontextmanager
async def _scratch_pool(admin_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a migrated scratch database, dropped afterwards."""
    name = f"micro_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(admin_dsn, name)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, SCHEMA)
        finally:
            await conn.close()
        pool = await create_pool(dsn, min_size=2, max_size=4)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        await drop_database(admin_dsn, name)


async def _appends(admin_dsn: str, blocks: int, per_block: int = 200) -> None:
    async with _scratch_pool(admin_dsn) as pool:
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
        for label in stores:
            print(f"one writer, {label} store: {statistics.median(cpu[label]):.0f} us CPU, "
                  f"{statistics.median(wall[label]):.0f} us wall per append (median of {blocks} blocks)")


async def _whole_fold_contact(cmd: CloseOnContact, store: PostgresEventStore) -> None:
    """The handler as it was before session 8: the whole stream read and folded at each contact."""
    stream = callback_stream(cmd.caller)
    state = fold(cmd.caller, await store.read_stream(stream))
    events = decide_got_through(state, cmd.at, cmd.via)
    meta = metadata(actor="policy:missed-calls", correlation_id=stream)
    await store.append(stream, [to_new_event(e, meta) for e in events], state.version,
                       idempotency_key=cmd.idempotency_key)


async def _contacts(admin_dsn: str, lengths: tuple[int, ...] = (0, 1_000, 5_000), per_block: int = 20,
                    blocks: int = 5) -> None:
    async with _scratch_pool(admin_dsn) as pool:
        store = PostgresEventStore(pool)
        t0 = datetime(2026, 12, 1, tzinfo=UTC)
        try:
            for length in lengths:
                callers = {"kept": f"1390000{length:05d}", "whole": f"1391111{length:05d}"}
                for caller in callers.values():
                    for start in range(0, length, 500):
                        earlier = [to_new_event(CallerGotThrough(t0 + timedelta(seconds=i), "sms"))
                                   for i in range(start, min(length, start + 500))]
                        await store.append(callback_stream(caller), earlier, start - 1)
                cpu: dict[str, list[float]] = {label: [] for label in callers}
                wall: dict[str, list[float]] = {label: [] for label in callers}
                at = length
                for _ in range(blocks):
                    for label, caller in callers.items():
                        started, used = time.perf_counter(), time.process_time()
                        for _ in range(per_block):
                            at += 1
                            when = t0 + timedelta(seconds=at)
                            cmd = CloseOnContact(caller, when, "sms", f"c:{caller}:{at}")
                            if label == "kept":
                                await close_on_contact(cmd, store=store)
                            else:
                                await _whole_fold_contact(cmd, store)
                        cpu[label].append((time.process_time() - used) / per_block * 1e3)
                        wall[label].append((time.perf_counter() - started) / per_block * 1e3)
                for label in callers:
                    print(f"contact on a {length:,}-event stream, {label} state: "
                          f"{statistics.median(cpu[label]):.2f} ms CPU, "
                          f"{statistics.median(wall[label]):.2f} ms wall per contact "
                          f"(median of {blocks} blocks of {per_block})")
        finally:
            await store.close()


def _decode(n: int) -> None:
    now = datetime.now(UTC)
    contact = InboundContact(
        channel="sms", kind="sms", idempotency_key="twilio:sms:SM1",
        caller=CallerInfo(phone="+8613900000001"), occurred_at=now, received_at=now,
        text="停电了，整栋楼没电",
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
    p.add_argument("--only", choices=("decode", "pool", "appends", "contacts"))
    args = p.parse_args(argv)
    if args.only in (None, "decode"):
        _decode(args.calls)
    if args.only in (None, "pool"):
        run_command(_pool(args.dsn, args.calls))
    if args.only in (None, "appends"):
        run_command(_appends(args.dsn, args.blocks))
    if args.only in (None, "contacts"):
        run_command(_contacts(args.dsn))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
