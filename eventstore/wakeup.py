"""Wake-up signals for readers of the log: one latch per reader, never shared.

A reader clears its own `Wakeup` *before* it reads and waits on it only when
the read came back empty, so an append that lands between the read and the
wait is never lost. Several readers in one process each get their own latch:
one of them waking never consumes the signal of another.
"""

from __future__ import annotations

import asyncio
import weakref


class Wakeup:
    """One reader's latch: set by every append (or NOTIFY), cleared by its reader."""

    __slots__ = ("__weakref__", "_event")

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        """Mark that new events may be readable."""
        self._event.set()

    def clear(self) -> None:
        """Forget earlier signals; call this before reading."""
        self._event.clear()

    def is_set(self) -> bool:
        """Whether a signal arrived since the last `clear`."""
        return self._event.is_set()

    async def wait(self, seconds: float) -> bool:
        """Wait for a signal up to `seconds`; True when one arrived."""
        if self._event.is_set():
            return True
        try:  # not wait_for: on 3.11 it can swallow a cancel that races a set() (bpo-42130)
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class WakeupHub:
    """Hands out `Wakeup` latches and sets all of them at once."""

    __slots__ = ("_latches",)

    def __init__(self) -> None:
        self._latches: weakref.WeakSet[Wakeup] = weakref.WeakSet()

    def subscribe(self) -> Wakeup:
        """A new latch that every later `wake_all` sets (kept while referenced)."""
        latch = Wakeup()
        self._latches.add(latch)
        return latch

    def wake_all(self) -> None:
        """Set every live latch."""
        for latch in list(self._latches):
            latch.set()

    async def wait(self, seconds: float) -> None:
        """Wait for the next `wake_all`, or `seconds` (one-shot helper)."""
        latch = self.subscribe()
        await latch.wait(seconds)
