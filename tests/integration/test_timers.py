"""Durable timers on real PostgreSQL: firing on time, surviving a restart, rescheduling, retries."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from dispatch.core.clock import FakeClock, SystemClock
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import Command
from dispatch.core.timers import Reschedule, TimerWorker, cancel, pending, schedule, timer_command
from eventstore.postgres import create_pool


@timer_command
@dataclass(frozen=True, slots=True)
class Ping(Command):
    """A test command."""

    name: str
    repeat: int = 0


class Recorder:
    """A stand-in bus that records the commands it gets and when."""

    def __init__(self, clock: Any, fail: int = 0) -> None:
        self.clock, self.fail = clock, fail
        self.got: list[tuple[str, Any]] = []

    async def handle(self, cmd: object) -> Any:
        assert isinstance(cmd, Ping)
        if self.fail:
            self.fail -= 1
            raise InvalidCommand("boom")
        self.got.append((cmd.name, self.clock.now()))
        runs = sum(1 for n, _ in self.got if n == cmd.name)
        if runs <= cmd.repeat:
            return Reschedule(self.clock.now() + timedelta(minutes=5))
        return None


async def test_due_timers_fire_once_and_others_wait(pg_pool: asyncpg.Pool, clock: FakeClock) -> None:
    await schedule(pg_pool, "a", clock.now() + timedelta(seconds=10), Ping("a"))
    await schedule(pg_pool, "b", clock.now() + timedelta(seconds=20), Ping("b"))
    await schedule(pg_pool, "a", clock.now() + timedelta(seconds=30), Ping("a"))  # moved
    rec = Recorder(clock)
    worker = TimerWorker(pg_pool, rec.handle, clock)
    clock.advance(25)
    assert await worker.fire_due() == 1
    assert [n for n, _ in rec.got] == ["b"]
    assert [t.key for t in await pending(pg_pool)] == ["a"]
    clock.advance(10)
    assert await worker.fire_due() == 1 and await worker.fire_due() == 0
    assert [n for n, _ in rec.got] == ["b", "a"]
    assert await pending(pg_pool) == []
    await schedule(pg_pool, "c", clock.now(), Ping("c"))
    assert await cancel(pg_pool, "c") and not await cancel(pg_pool, "c")


async def test_reschedule_and_retry_with_backoff(pg_pool: asyncpg.Pool, clock: FakeClock) -> None:
    await schedule(pg_pool, "r", clock.now(), Ping("r", repeat=1))
    rec = Recorder(clock, fail=1)
    worker = TimerWorker(pg_pool, rec.handle, clock)
    assert await worker.fire_due() == 1
    [failed] = await pending(pg_pool)
    assert failed.last_error == "InvalidCommand: boom" and failed.due_at > clock.now()
    clock.advance(2)
    await worker.fire_due()
    [again] = await pending(pg_pool)
    assert again.due_at == clock.now() + timedelta(minutes=5) and again.attempts == 0
    clock.advance(timedelta(minutes=5))
    await worker.fire_due()
    assert [n for n, _ in rec.got] == ["r", "r"] and await pending(pg_pool) == []


async def test_a_crashed_firing_refires_after_the_lease(pg_pool: asyncpg.Pool, clock: FakeClock) -> None:
    await schedule(pg_pool, "x", clock.now(), Ping("x"))

    async def crash(cmd: object) -> Any:
        raise asyncio.CancelledError  # the process dies mid-command

    with contextlib.suppress(asyncio.CancelledError):
        await TimerWorker(pg_pool, crash, clock).fire_due()
    rec = Recorder(clock)
    worker = TimerWorker(pg_pool, rec.handle, clock)
    assert await worker.fire_due() == 0  # leased, not lost
    clock.advance(31)
    assert await worker.fire_due() == 1 and [n for n, _ in rec.got] == ["x"]


async def test_timers_survive_a_restart_and_fire_within_a_second(pg_dsn: str) -> None:
    clock = SystemClock()
    first = await create_pool(pg_dsn, min_size=1, max_size=4)
    due = clock.now() + timedelta(seconds=1.5)
    overdue = clock.now() - timedelta(seconds=5)
    await schedule(first, "later", due, Ping("later"))
    await schedule(first, "missed", overdue, Ping("missed"))  # due while nothing ran
    await first.close()  # the process stops

    second = await create_pool(pg_dsn, min_size=1, max_size=4)
    try:
        rec = Recorder(clock)
        task = asyncio.create_task(TimerWorker(second, rec.handle, clock).run())
        try:
            async with asyncio.timeout(10):
                while len(rec.got) < 2:  # noqa: ASYNC110 - polling the worker's effect
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        fired = dict(rec.got)
        assert timedelta(0) <= fired["later"] - due < timedelta(seconds=1)
        assert fired["missed"] - overdue < timedelta(seconds=6)
        assert await pending(second) == []
    finally:
        await second.close()


async def test_a_worker_stopped_mid_batch_hands_the_timers_it_had_not_fired_back_at_once(
        pg_pool: asyncpg.Pool, clock: FakeClock) -> None:
    """SIGTERM (a cancel) while firing the first timer of a leased batch: that one stays leased (its
    command may have run in part), the others go back at once instead of waiting out the lease."""
    for key in ("t1", "t2", "t3"):
        await schedule(pg_pool, key, clock.now(), Ping(key))

    started: list[str] = []

    async def stopped(cmd: object) -> Any:
        assert isinstance(cmd, Ping)
        started.append(cmd.name)
        raise asyncio.CancelledError  # the process is stopping mid-command

    with contextlib.suppress(asyncio.CancelledError):
        await TimerWorker(pg_pool, stopped, clock).fire_due()
    rec = Recorder(clock)
    worker = TimerWorker(pg_pool, rec.handle, clock)
    assert await worker.fire_due() == 2  # the two never started, at once
    assert len(started) == 1 and sorted(n for n, _ in rec.got) == sorted({"t1", "t2", "t3"} - set(started))
    assert [(t.key, t.attempts) for t in await pending(pg_pool)] == [(started[0], 1)]
    clock.advance(31)
    assert await worker.fire_due() == 1 and sorted(n for n, _ in rec.got) == ["t1", "t2", "t3"]
