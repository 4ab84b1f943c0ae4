"""In-memory twin of the PostgreSQL event store, for fast unit tests."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventstore.errors import IdempotencyConflict, WrongExpectedVersion
from eventstore.records import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    Checkpoint,
    NewEvent,
    ReadBatch,
    RecordedEvent,
    category_of,
    check_append,
)
from eventstore.shredding import SEALED, open_event, seal_event
from eventstore.wakeup import Wakeup, WakeupHub


def check_expected(stream: str, expected: int, actual: int) -> None:
    """Raise `WrongExpectedVersion` unless `actual` satisfies `expected`."""
    if expected == ANY:
        return
    if expected == STREAM_EXISTS:
        if actual == NO_STREAM:
            raise WrongExpectedVersion(stream, expected, actual)
        return
    if expected != actual:
        raise WrongExpectedVersion(stream, expected, actual)


class MemoryEventStore:
    """An `EventStore` held in process memory; same contract, no durability."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._keys: dict[str, AppendResult] = {}
        self._checkpoints: dict[str, Checkpoint] = {}
        self._lock = asyncio.Lock()
        self._hub = WakeupHub()
        self._subject_keys: dict[str, tuple[uuid.UUID, AESGCM]] = {}
        self._key_ids: dict[uuid.UUID, AESGCM | None] = {}

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """See `EventStore.append`."""
        check_append(stream, events, expected_version, idempotency_key)
        async with self._lock:
            if idempotency_key is not None and idempotency_key in self._keys:
                stored = self._keys[idempotency_key]
                if stored.stream != stream:
                    raise IdempotencyConflict(idempotency_key, stream, stored.stream)
                return AppendResult(
                    stored.stream, stored.positions, stored.first_version, stored.last_version, True
                )
            existing = self._streams.setdefault(stream, [])
            actual = len(existing) - 1
            check_expected(stream, expected_version, actual)
            recorded = []
            for offset, event in enumerate(events):
                data, metadata = event.data, dict(event.metadata)
                if idempotency_key is not None:
                    metadata["idempotency_key"] = idempotency_key
                if event.personal is not None:
                    key = self._key(event.personal.subject)
                    data, metadata = seal_event(data, metadata, event.personal, *key)
                record = RecordedEvent(
                    position=len(self._log) + 1,
                    stream=stream,
                    version=actual + 1 + offset,
                    type=event.type,
                    schema_version=event.schema_version,
                    data=data,
                    metadata=metadata,
                    recorded_at=self._now(),
                )
                self._log.append(record)
                existing.append(record)
                recorded.append(record)
            result = AppendResult(
                stream,
                tuple(r.position for r in recorded),
                recorded[0].version,
                recorded[-1].version,
            )
            if idempotency_key is not None:
                self._keys[idempotency_key] = result
        self._hub.wake_all(frozenset({category_of(stream)}))
        return result

    def _key(self, subject: str) -> tuple[uuid.UUID, AESGCM]:
        if subject not in self._subject_keys:
            key_id, aead = uuid.uuid4(), AESGCM(os.urandom(32))
            self._subject_keys[subject] = (key_id, aead)
            self._key_ids[key_id] = aead
        return self._subject_keys[subject]

    def erase(self, subjects: Collection[str]) -> list[uuid.UUID]:
        """Delete the subjects' keys (`Keyring.erase`): their sealed data reads as erased."""
        gone = [self._subject_keys.pop(s)[0] for s in subjects if s in self._subject_keys]
        for key_id in gone:
            self._key_ids[key_id] = None
        return gone

    def _open(self, record: RecordedEvent) -> RecordedEvent:
        return open_event(record, self._key_ids) if SEALED in record.metadata else record

    async def read_stream(
        self, stream: str, *, after_version: int = NO_STREAM, limit: int | None = None
    ) -> list[RecordedEvent]:
        """See `EventStore.read_stream`."""
        return [self._open(e) for e in self._streams.get(stream, []) if e.version > after_version][:limit]

    async def read_streams(self, streams: Collection[str]) -> dict[str, list[RecordedEvent]]:
        """See `EventStore.read_streams`."""
        return {stream: [self._open(e) for e in self._streams.get(stream, [])] for stream in streams}

    async def stream_version(self, stream: str) -> int:
        """See `EventStore.stream_version`."""
        return len(self._streams.get(stream, [])) - 1

    async def read_all(
        self,
        after: Checkpoint,
        *,
        limit: int = 1000,
        categories: frozenset[str] | None = None,
    ) -> list[tuple[Checkpoint, RecordedEvent]]:
        """See `EventStore.read_all`."""
        out: list[tuple[Checkpoint, RecordedEvent]] = []
        for record in self._log[after.position :]:
            if categories is None or category_of(record.stream) in categories:
                out.append((self._checkpoint(record.position), self._open(record)))
                if len(out) >= limit:
                    break
        return out

    async def read_batch(
        self,
        after: Checkpoint,
        *,
        limit: int = 1000,
        categories: frozenset[str] | None = None,
        types: frozenset[str] | None = None,
    ) -> ReadBatch:
        """See `EventStore.read_batch`; in memory nothing is ever pending."""
        if types is None:
            return ReadBatch(tuple(await self.read_all(after, limit=limit, categories=categories)))
        out: list[tuple[Checkpoint, RecordedEvent]] = []
        skipped_to: Checkpoint | None = None
        for record in self._log[after.position :]:
            if categories is not None and category_of(record.stream) not in categories:
                continue
            checkpoint = self._checkpoint(record.position)
            if record.type in types:
                out.append((checkpoint, self._open(record)))
                skipped_to = None
                if len(out) >= limit:
                    break
            else:
                skipped_to = checkpoint
        return ReadBatch(tuple(out), skipped_to=skipped_to)

    def wakeup(self, categories: frozenset[str] | None = None) -> Wakeup:
        """See `EventStore.wakeup`."""
        return self._hub.subscribe(categories)

    def wake(self, categories: Iterable[str] | None = None) -> None:
        """See `EventStore.wake`."""
        self._hub.wake_all(None if categories is None else frozenset(categories))

    async def checkpoint_at(self, position: int) -> Checkpoint:
        """See `EventStore.checkpoint_at`."""
        return self._checkpoint(position)

    @staticmethod
    def _checkpoint(position: int) -> Checkpoint:
        return Checkpoint((0, position), position)

    async def find_by_idempotency_key(self, key: str) -> AppendResult | None:
        """See `EventStore.find_by_idempotency_key`."""
        stored = self._keys.get(key)
        if stored is None:
            return None
        return AppendResult(stored.stream, stored.positions, stored.first_version, stored.last_version, True)

    async def wait_for_events(self, timeout: float) -> None:  # noqa: ASYNC109 (fixed API)
        """See `EventStore.wait_for_events`."""
        await self._hub.wait(timeout)

    async def load_checkpoint(self, name: str) -> Checkpoint:
        """See `EventStore.load_checkpoint`."""
        return self._checkpoints.get(name, Checkpoint())

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """See `EventStore.save_checkpoint`."""
        self._checkpoints[name] = checkpoint
