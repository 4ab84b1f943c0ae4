"""Shutdown stops background tasks even when one swallowed its cancel."""

from __future__ import annotations

import asyncio

import pytest

from gateway import bootstrap


async def test_a_task_that_swallows_a_cancel_is_cancelled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "STOP_GRACE", 0.2)
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()  # as a library racing its own timeout may do
        await asyncio.Event().wait()

    async def polite() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(polite())]
    await asyncio.sleep(0)
    await asyncio.wait_for(bootstrap.stop_tasks(tasks), 5)
    assert swallowed.is_set()
    assert all(t.cancelled() for t in tasks)
