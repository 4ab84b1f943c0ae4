"""Errors raised by the event store; `EventStoreError` is the package root."""

from __future__ import annotations


class EventStoreError(Exception):
    """Root of every error the event store raises."""


class WrongExpectedVersion(EventStoreError):
    """An append's expected version did not match the stream's actual version."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r}: expected version {expected}, actual {actual}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


class IdempotencyConflict(EventStoreError):
    """An idempotency key already stored was reused for a different stream."""

    def __init__(self, key: str, stream: str, stored_stream: str) -> None:
        super().__init__(f"idempotency key {key!r} belongs to {stored_stream!r}, not {stream!r}")
        self.key = key
        self.stream = stream
        self.stored_stream = stored_stream


class StoreUnavailable(EventStoreError):
    """The database cannot be reached; the caller should retry later."""


class InvalidIdentifier(EventStoreError):
    """A stream name or idempotency key no store can index; refused before anything is written."""


class InvalidStreamName(InvalidIdentifier):
    """A stream name is not of the form `<category>-<id>`."""


class InvalidIdempotencyKey(InvalidIdentifier):
    """An idempotency key is longer than the store indexes (`records.MAX_KEY_LENGTH`)."""


class InvalidSubject(InvalidIdentifier):
    """A data subject (whose key seals an event's personal data) is longer than the store indexes."""


class AppendFailed(EventStoreError):
    """The database refused an append for another reason than its expected version.

    For example, data PostgreSQL cannot store (a NUL character in a string).
    Nothing of the append was written.
    """
