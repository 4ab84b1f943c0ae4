"""Append-only event store: the single source of truth of intake."""

from eventstore.errors import (
    EventStoreError,
    IdempotencyConflict,
    StoreUnavailable,
    WrongExpectedVersion,
)
from eventstore.interface import EventStore
from eventstore.records import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    Checkpoint,
    NewEvent,
    Personal,
    RecordedEvent,
    category_of,
)

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "Checkpoint",
    "EventStore",
    "EventStoreError",
    "IdempotencyConflict",
    "NewEvent",
    "Personal",
    "RecordedEvent",
    "StoreUnavailable",
    "WrongExpectedVersion",
    "category_of",
]
