"""Wake-up signals for readers of the log: one latch per reader, never shared.

A reader clears its own `Wakeup` *before* it reads and waits on it only when
the read came back empty, so an append that lands between the read and the
wait is never lost. Several readers in one process each get their own latch:
one of them waking never consumes the signal of another.

A latch may name the stream categories its reader follows: it is then set only
by appends to those categories (or by a signal that does not say which), so a
flood of contacts does not wake a reader of provider or timer events.
"""

from __future__ import annotations

import asyncio
import weakref


class Wakeup:
    """One reader's latch: set by appends it follows (or NOTIFY), cleared by its reader."""

    __slots__ = ("__weakref__", "_event", "categories")

    def __init__(self, categories: frozenset[str] | None = None) -> None:
        self._event = asyncio.Event()
        self.categories = categories  # None: every category

    def follows(self, categories: frozenset[str] | None) -> bool:
        """Whether appends to `categories` (None: unknown, maybe any) concern this reader."""
        return self.categories is None or categories is None or not self.categories.isdisjoint(categories)

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

    def subscribe(self, categories: frozenset[str] | None = None) -> Wakeup:
        """A new latch set by every later `wake_all` of its categories (kept while referenced)."""
        latch = Wakeup(categories)
        self._latches.add(latch)
        return latch

    def wake_all(self, categories: frozenset[str] | None = None) -> None:
        """Set every live latch following any of `categories` (None: every latch)."""
        for latch in list(self._latches):
            if latch.follows(categories):
                latch.set()

    async def wait(self, seconds: float) -> None:
        """Wait for the next `wake_all`, or `seconds` (one-shot helper)."""
        latch = self.subscribe()
        await latch.wait(seconds)
