"""The event store interface shared by the PostgreSQL store and its in-memory twin."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Protocol

from eventstore.records import AppendResult, Checkpoint, NewEvent, ReadBatch, RecordedEvent
from eventstore.wakeup import Wakeup


class EventStore(Protocol):
    """An append-only log of streams with a gap-free global order for readers."""

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append events atomically to one stream.

        Versions count from 0. `expected_version` is the stream's current last
        version, or `NO_STREAM`, `STREAM_EXISTS` or `ANY`. A stored
        `idempotency_key` returns the first append's result with
        `duplicate=True` and writes nothing. A key over `MAX_KEY_LENGTH`
        characters raises `InvalidIdempotencyKey`, a bad stream name
        `InvalidStreamName`, both before anything is written.
        """
        ...

    async def read_stream(
        self, stream: str, *, after_version: int = -1, limit: int | None = None
    ) -> list[RecordedEvent]:
        """Events of one stream with version > `after_version` (default: all), in version order."""
        ...

    async def read_streams(self, streams: Collection[str]) -> dict[str, list[RecordedEvent]]:
        """Every event of each stream, in version order (a stream without events: []), at once."""
        ...

    async def stream_version(self, stream: str) -> int:
        """The stream's last version, or `NO_STREAM` (-1) when it has no events."""
        ...

    async def read_all(
        self,
        after: Checkpoint,
        *,
        limit: int = 1000,
        categories: frozenset[str] | None = None,
    ) -> list[tuple[Checkpoint, RecordedEvent]]:
        """Committed events after a checkpoint in the global read order.

        Gap-free: an event that commits later is never ordered before an event
        already returned. Each event comes with the checkpoint that follows it.
        """
        ...

    async def read_batch(
        self,
        after: Checkpoint,
        *,
        limit: int = 1000,
        categories: frozenset[str] | None = None,
        types: frozenset[str] | None = None,
    ) -> ReadBatch:
        """Like `read_all`, and says whether committed events wait behind the horizon.

        With `types`, only events of those types are returned (and decoded): the
        others are passed over, and the batch's `end` is past them, so that a
        reader saving `end` as its checkpoint does not read them again.
        """
        ...

    def wakeup(self, categories: frozenset[str] | None = None) -> Wakeup:
        """A latch of the caller's own, set whenever new events may be readable.

        With `categories`, only appends to those stream categories set it.
        Clear it before reading and wait on it after an empty read: an append
        in between is never missed. Keep a reference while you use it.
        """
        ...

    def wake(self, categories: Iterable[str] | None = None) -> None:
        """Wake readers of `categories` (None: every reader) after a transaction that
        appended with `append_on` committed; `append` does this itself."""
        ...

    async def checkpoint_at(self, position: int) -> Checkpoint:
        """The checkpoint that resumes reading just after the event at `position`."""
        ...

    async def find_by_idempotency_key(self, key: str) -> AppendResult | None:
        """What an append with this idempotency key stored, if any."""
        ...

    async def wait_for_events(self, timeout: float) -> None:  # noqa: ASYNC109 (fixed API)
        """Return when new events may be readable, or after `timeout` seconds."""
        ...

    async def load_checkpoint(self, name: str) -> Checkpoint:
        """A named reader's stored checkpoint (the start if it has none)."""
        ...

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """Store a named reader's checkpoint."""
        ...
