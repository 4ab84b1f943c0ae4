"""One process's copy of the newest stretch of the log, shared by its readers (reads combined).

A worker runs some twenty runners, and each reads the events of its categories
from its own checkpoint on every step: the log was read and sent some twenty
times over, and typed reads (a category filtered by type) scanned and sorted
each category every time. A `LogTail` keeps the stretch of the log read lately,
complete and in read order (every event between its start and its end, as
stored), and answers a read that starts inside it from memory.

A read that reaches the end of the stretch (its page not full) first waits for a
refresh of the tail that *started after the read arrived*: one statement reads
the log on from the end, below the commit horizon, for every reader waiting, so
the answer is as fresh as a read of its own would have been (nothing committed
before the call is missed). At most one refresh is in flight; the reads that
arrive meanwhile share the next one. A read that starts before the stretch
(a reader far behind) or after it (a checkpoint another process moved) is not
answered here: the caller reads the log itself (`None`).

The answer is exactly the page the store's own read would give (same events,
`pending`, `skipped_to`): `pending` from the categories of the rows the last
refresh saw settling above the horizon, `skipped_to` from the newest event of the categories in the stretch.
Personal data is opened per read by the caller's `open` (on its connection: a
projection's transaction holds the keys it read, as before).

A refresh runs on the connection of the read that leads it, which may be inside a
projection's transaction (`read_batch_in`). Such a transaction must append no
events: the horizon does not count a statement's own transaction, so a refresh
there could pass over the events that transaction commits later - for every
reader of the process, not only for its own. Projections write read models only.
"""

from __future__ import annotations

import asyncio
import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import asyncpg

from eventstore.records import Checkpoint, ReadBatch, RecordedEvent, category_of

KEEP = 20_000
"""Events the tail keeps: a backlog of 4,000 SMS is about 9,000 (the keyring keeps as many, `_RECENT`)."""
PAGE = 1000
"""Events one refresh reads at most (or the caller's limit, if larger)."""
GAP = 0.02
"""Seconds between the starts of two refreshes at least. A busy worker's runners re-poll within
milliseconds while rows settle above the horizon, and each re-poll led a refresh of its own (some
170 a second, each paying the horizon's test); the reads arriving within the gap share the next
one. Freshness is unchanged (a read still waits for a refresh started after it arrived); a
caught-up read waits up to this much longer."""


@dataclass(frozen=True, slots=True)
class TailPage:
    """A refresh: the events after the tail's end below the horizon (as stored), and the categories
    of the rows settling above it (None: too many to say, any)."""

    events: Sequence[tuple[Checkpoint, RecordedEvent]]
    settling: frozenset[str] | None


Fetch = Callable[[asyncpg.Connection, Checkpoint, int], Awaitable[TailPage]]
"""Read the log after a checkpoint, at most so many events, on a connection."""
Open = Callable[[asyncpg.Connection, list[RecordedEvent]], Awaitable[list[RecordedEvent]]]
"""The events as stored with their personal data opened (`Keyring.open`)."""


class LogTail:
    """The newest stretch of the log a process read, answering its readers' reads."""

    def __init__(self, fetch: Fetch, open_: Open, *, keep: int = KEEP, page: int = PAGE,
                 gap: float = GAP) -> None:
        self._fetch, self._open = fetch, open_
        self._keep, self._page, self._gap = keep, page, gap
        self._last = float("-inf")
        """When the last refresh started (the event loop's clock)."""
        self._start: Checkpoint | None = None
        """Where the stretch begins (its first event follows it); None: nothing read yet."""
        self._end = Checkpoint()
        """The last event of the stretch (or its start while empty)."""
        self._base = 0
        """The sequence number of `_events[0]` (numbers only grow: `_by_category` holds them)."""
        self._orders: list[tuple[int, int]] = []
        self._events: list[tuple[Checkpoint, RecordedEvent]] = []
        self._by_category: dict[str, list[int]] = {}
        self._settling: frozenset[str] | None = frozenset()
        self._behind = False
        """The last refresh filled its page: more events wait below the horizon."""
        self._flight: asyncio.Future[int] | None = None
        """The refresh in flight; its result is its number (0: it failed)."""
        self.refreshes = 0
        """Refreshes started so far: a read waits for one numbered above those when it arrived."""

    def __len__(self) -> int:
        return len(self._events)

    async def read(
        self,
        conn: asyncpg.Connection,
        after: Checkpoint,
        *,
        limit: int,
        categories: frozenset[str] | None = None,
        types: frozenset[str] | None = None,
    ) -> ReadBatch | None:
        """The page a read of the log after `after` would give now, or None: read it yourself."""
        arrived = self.refreshes
        if self._start is None:
            self._start = self._end = after
        seqs = self._match(after, limit, categories, types)
        if seqs is None:
            return None
        fresh = False
        while len(seqs) < limit and (not fresh or self._behind):
            # Short: the events after the stretch are wanted, as of now (and on while a refresh
            # filled its page: a read of its own would have returned a full page).
            if not await self._fresh(conn, arrived, limit):
                return None
            fresh, arrived = True, self.refreshes
            seqs = self._match(after, limit, categories, types)
            if seqs is None:
                return None
        base = self._base
        found = [self._events[seq - base] for seq in seqs]
        # Decided before the opening's await: a refresh meanwhile may add events of the types read,
        # which a skip point taken after it would pass over unread.
        skipped_to = None
        if types is not None and len(found) < limit:
            newest = self._newest(categories)
            last = found[-1][0].order if found else after.order
            if newest is not None and newest.order > last:
                skipped_to = newest
        pending = self._settles(categories)
        opened = await self._open(conn, [event for _, event in found])
        events = tuple((checkpoint, event) for (checkpoint, _), event in zip(found, opened, strict=True))
        return ReadBatch(events, pending, skipped_to)

    def _settles(self, categories: frozenset[str] | None) -> bool:
        settling = self._settling
        if settling is None:
            return True
        return bool(settling) if categories is None else not settling.isdisjoint(categories)

    def _match(self, after: Checkpoint, limit: int, categories: frozenset[str] | None,
               types: frozenset[str] | None) -> list[int] | None:
        """The sequence numbers of the events the read returns, or None: it does not start in the stretch."""
        start = self._start
        if start is None or after.order < start.order or after.order > self._end.order:
            return None
        first = self._base + bisect_right(self._orders, after.order)
        seqs: Iterator[int]
        if categories is None:
            seqs = iter(range(first, self._base + len(self._events)))
        else:
            lists = [found for category in categories if (found := self._by_category.get(category))]
            seqs = heapq.merge(*(islice(found, bisect_left(found, first), None) for found in lists))
        if types is None:
            return list(islice(seqs, limit))
        base, events = self._base, self._events
        return list(islice((seq for seq in seqs if events[seq - base][1].type in types), limit))

    def _newest(self, categories: frozenset[str] | None) -> Checkpoint | None:
        """The last event of `categories` in the stretch."""
        if categories is None:
            return self._events[-1][0] if self._events else None
        newest = max((found[-1] for category in categories if (found := self._by_category.get(category))),
                     default=None)
        return None if newest is None else self._events[newest - self._base][0]

    async def _fresh(self, conn: asyncpg.Connection, arrived: int, limit: int) -> bool:
        """Wait for a refresh started after `arrived` refreshes had; lead one when none is in flight.

        False: the one waited for failed (the caller reads the log itself). The leader's own
        failure is raised to it, as a read of its own would have been.
        """
        while (flight := self._flight) is not None:
            await asyncio.wait([flight])
            number = 0 if flight.cancelled() else flight.result()
            if not number:
                return False
            if number > arrived:
                return True
        loop = asyncio.get_running_loop()
        self._flight = flight = loop.create_future()
        done, size = 0, max(self._page, limit)
        try:
            pause = self._last + self._gap - loop.time()
            if pause > 0:  # the reads arriving meanwhile join this refresh
                await asyncio.sleep(pause)
            self.refreshes += 1
            number, self._last = self.refreshes, loop.time()
            self._extend(await self._fetch(conn, self._end, size), size)
            done = number
        finally:
            self._flight = None
            flight.set_result(done)
        return True

    def _extend(self, page: TailPage, limit: int) -> None:
        """Add a refresh's events at the end; forget the oldest beyond `keep`."""
        seq = self._base + len(self._events)
        for checkpoint, event in page.events:
            self._orders.append(checkpoint.order)
            self._events.append((checkpoint, event))
            self._by_category.setdefault(category_of(event.stream), []).append(seq)
            seq += 1
        if page.events:
            self._end = page.events[-1][0]
        self._settling = page.settling
        self._behind = len(page.events) >= limit
        over = len(self._events) - self._keep
        if over > self._keep // 4:  # in chunks: each drop moves every list
            self._start = self._events[over - 1][0]
            del self._orders[:over], self._events[:over]
            self._base += over
            for category, found in list(self._by_category.items()):
                del found[:bisect_left(found, self._base)]
                if not found:
                    del self._by_category[category]
