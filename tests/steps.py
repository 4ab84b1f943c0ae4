"""Runners that count their completed steps, so a test waits for "the runner looked" instead of sleeping.

A check that something did NOT happen is only worth something once the
system has had its chance: these runners let a test wait until a step that
started after the moment of interest has completed, then assert.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eventstore.subscriptions import ProjectionRunner, ReactorRunner, Step


class StepLog:
    """Completed steps of one runner: how many, and what the last one did."""

    def __init__(self) -> None:
        self.done = 0
        self.last: Step | None = None
        self._changed = asyncio.Condition()

    async def record(self, step: Step) -> None:
        async with self._changed:
            self.done += 1
            self.last = step
            self._changed.notify_all()

    async def wait_for(self, done: int, within: float = 10.0) -> None:
        """Wait until at least `done` steps have completed."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: self.done >= done)

    async def one_more(self, within: float = 10.0) -> None:
        """Wait until a step that STARTED after this call has completed (two more completions)."""
        await self.wait_for(self.done + 2, within)


class CountedReactorRunner(ReactorRunner):
    """A `ReactorRunner` whose completed steps are logged in `steps`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps = StepLog()

    async def step(self) -> Step:
        result = await super().step()
        await self.steps.record(result)
        return result


class CountedProjectionRunner(ProjectionRunner):
    """A `ProjectionRunner` whose completed steps are logged in `steps`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps = StepLog()

    async def step(self) -> Step:
        result = await super().step()
        await self.steps.record(result)
        return result
