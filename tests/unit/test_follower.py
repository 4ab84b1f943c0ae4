"""The live loop of a log reader: woken by appends, it steps at most once per step interval."""

from __future__ import annotations

import asyncio

from eventstore.subscriptions import Follower, Step
from eventstore.wakeup import Wakeup


class Steps:
    """A step that reads one event per call and notes when each call started (loop time)."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.stepped = asyncio.Event()

    async def __call__(self) -> Step:
        self.started.append(asyncio.get_running_loop().time())
        self.stepped.set()
        return Step(applied=1, pending=False)


async def _follow(follower: Follower, steps: Steps) -> asyncio.Task[None]:
    task = asyncio.create_task(follower.follow(steps))
    await asyncio.wait_for(steps.stepped.wait(), 2)  # the catch-up step
    return task


async def test_a_reader_woken_by_every_commit_steps_once_per_interval() -> None:
    wakeup, steps = Wakeup(), Steps()
    follower = Follower("test", wakeup, batch_size=100, poll_interval=30, step_interval=0.1)
    task = await _follow(follower, steps)
    try:
        for _ in range(100):  # a commit every 5 ms for half a second
            wakeup.set()
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    gaps = [b - a for a, b in zip(steps.started, steps.started[1:], strict=False)]
    assert gaps, "the reader never stepped again"
    assert min(gaps) >= 0.1 - 0.002  # the loop's clock resolution; never sooner
    assert len(steps.started) <= 1 + 0.6 / 0.1 + 1


async def test_a_wake_up_after_a_quiet_spell_is_read_at_once() -> None:
    wakeup, steps = Wakeup(), Steps()
    follower = Follower("test", wakeup, batch_size=100, poll_interval=30, step_interval=0.3)
    task = await _follow(follower, steps)
    try:
        await asyncio.sleep(0.4)  # quiet for longer than the interval
        steps.stepped.clear()
        woken = asyncio.get_running_loop().time()
        wakeup.set()
        await asyncio.wait_for(steps.stepped.wait(), 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert steps.started[-1] - woken < 0.15  # a few ms: no wait for an interval


async def test_a_full_batch_is_followed_by_the_next_one_at_once() -> None:
    wakeup = Wakeup()
    started: list[float] = []

    async def full() -> Step:
        started.append(asyncio.get_running_loop().time())
        return Step(applied=10 if len(started) < 5 else 0, pending=False)

    follower = Follower("test", wakeup, batch_size=10, poll_interval=30, step_interval=1.0)
    task = asyncio.create_task(follower.follow(full))
    try:
        async with asyncio.timeout(2):
            while len(started) < 5:  # noqa: ASYNC110 (watches the reader's own progress)
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert started[4] - started[0] < 0.5  # a backlog is read without the live interval


def test_the_lag_is_the_age_of_the_newest_event_read_and_zero_once_caught_up() -> None:
    from datetime import UTC, datetime, timedelta

    told: list[float] = []
    follower = Follower("test", Wakeup(), batch_size=100, poll_interval=30, lag=told.append)
    behind = datetime.now(UTC) - timedelta(seconds=30)
    follower.observe(Step(applied=100, pending=False, read=100, newest=behind))
    follower.observe(Step(applied=0, pending=True, read=0))  # waiting behind an open transaction
    follower.observe(Step(applied=0, pending=False, read=0))  # caught up
    follower.observe(Step(applied=0, pending=False, idle=0.5))  # holds no partition
    assert len(told) == 3 and 29.0 < told[0] < 60.0 and told[1:] == [0.0, 0.0]
