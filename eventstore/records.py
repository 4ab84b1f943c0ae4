"""Value types the event store reads and writes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventstore.errors import IdempotencyConflict, InvalidIdempotencyKey, InvalidStreamName, InvalidSubject

NO_STREAM = -1
"""Expected version: the stream must not exist yet."""
STREAM_EXISTS = -2
"""Expected version: the stream must already have at least one event."""
ANY = -3
"""Expected version: append whatever the stream's version is."""

_STREAM = re.compile(r"^[a-z][a-z0-9_]*-[A-Za-z0-9_.:\-]+$")

JSON = dict[str, Any]


def category_of(stream: str) -> str:
    """The category of a stream name: the part before the first dash."""
    return stream.partition("-")[0]


def check_stream_name(stream: str) -> str:
    """Return the stream name if it has the form `<category>-<id>`, else raise."""
    if len(stream) > 200 or not _STREAM.match(stream):
        raise InvalidStreamName(f"stream name {stream!r} is not <category>-<id>")
    return stream


MAX_KEY_LENGTH = 500
"""The longest idempotency key or data subject, in characters. PostgreSQL indexes at most 2,704
bytes of a value (a btree tuple): a key or subject built from a long, incompressible client field
(an e-mail of a few KB) failed at the database, and a subject failed its whole group commit with
it. 500 characters are 2,000 bytes at most in UTF-8."""


def check_append(stream: str, events: Sequence[NewEvent], expected_version: int,
                 idempotency_key: str | None = None) -> None:
    """Refuse an append's arguments that no store can take, before anything is written."""
    check_stream_name(stream)
    if idempotency_key is not None and len(idempotency_key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            f"idempotency key of {len(idempotency_key)} characters: at most {MAX_KEY_LENGTH} are indexed")
    for event in events:
        if event.personal is not None and len(event.personal.subject) > MAX_KEY_LENGTH:
            raise InvalidSubject(f"a data subject of {len(event.personal.subject)} characters: "
                                 f"at most {MAX_KEY_LENGTH} are indexed")
    if not events:
        raise ValueError("append needs at least one event")
    if expected_version < ANY:
        raise ValueError(
            f"expected version {expected_version} is not a version (>= 0), "
            "NO_STREAM (-1), STREAM_EXISTS (-2) or ANY (-3)"
        )


Path = tuple[str | int, ...]
"""Where a value is in an event's data: the keys and list indexes leading to it."""


@dataclass(frozen=True, slots=True)
class Personal:
    """Whose personal data an event carries (its subject) and where in its data it is.

    The store seals the values at `paths` with the subject's key
    (`eventstore/shredding.py`); the subject itself is never stored in the log.
    """

    subject: str
    paths: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its type, schema version, data and metadata, and its personal data."""

    type: str
    data: JSON
    schema_version: int = 1
    metadata: JSON = field(default_factory=dict)
    personal: Personal | None = None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: with its stream version and global position."""

    position: int
    stream: str
    version: int
    type: str
    schema_version: int
    data: JSON
    metadata: JSON
    recorded_at: datetime

    @property
    def category(self) -> str:
        """The stream category (`case`, `call`, ...)."""
        return category_of(self.stream)

    def as_json(self) -> JSON:
        """The shape the audit API answers with."""
        return {
            "position": self.position,
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "schema_version": self.schema_version,
            "data": self.data,
            "metadata": self.metadata,
            "recorded_at": self.recorded_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append wrote, or for a repeated idempotency key, what it wrote first."""

    stream: str
    positions: tuple[int, ...]
    first_version: int
    last_version: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class AppendArgs:
    """One append's arguments, checked, in the columns the PostgreSQL append statements take.

    Built once per append (`of`) and shared by the plain append and group
    commit; the event columns run parallel, one entry per event.
    """

    stream: str
    category: str
    expected_version: int
    idempotency_key: str | None
    types: list[str]
    schema_versions: list[int]
    data: list[JSON]
    metadata: list[JSON]
    personal: list[Personal | None] = field(default_factory=list)

    @classmethod
    def of(
        cls, stream: str, events: Sequence[NewEvent], expected_version: int, idempotency_key: str | None
    ) -> AppendArgs:
        """The arguments of `append`, refused (raises) if no store can take them."""
        check_append(stream, events, expected_version, idempotency_key)
        return cls(
            stream,
            category_of(stream),
            expected_version,
            idempotency_key,
            [e.type for e in events],
            [e.schema_version for e in events],
            [e.data for e in events],
            [{**e.metadata, "idempotency_key": idempotency_key} if idempotency_key else e.metadata
             for e in events],
            [e.personal for e in events],
        )

    def answer(self, result: AppendResult) -> AppendResult:
        """The result for this append, unless it is its key's first append to another stream."""
        if result.duplicate and result.stream != self.stream:
            raise IdempotencyConflict(self.idempotency_key or "", self.stream, result.stream)
        return result


@dataclass(frozen=True, slots=True, order=True)
class Checkpoint:
    """A reader's place in the global log.

    `position` names the last event read; `order` is the store's internal
    sort key for it (the PostgreSQL store orders by commit horizon, so the
    order of positions alone is not the read order). `Checkpoint()` is the start.
    """

    order: tuple[int, int] = (0, 0)
    position: int = 0


@dataclass(frozen=True, slots=True)
class ReadBatch:
    """A page of the global log in read order.

    `pending` says that committed events exist that are not readable yet
    because an older transaction is still running (they sit above the commit
    horizon): a reader should poll again soon rather than wait for a wake-up.
    `skipped_to`: a read of some event types only passed over the events of
    other types up to this checkpoint (None: it skipped none after its last event).
    """

    events: tuple[tuple[Checkpoint, RecordedEvent], ...]
    pending: bool = False
    skipped_to: Checkpoint | None = None

    @property
    def end(self) -> Checkpoint | None:
        """Where the next read starts: past every event read or skipped (None: nothing was)."""
        if self.skipped_to is not None:
            return self.skipped_to
        return self.events[-1][0] if self.events else None
