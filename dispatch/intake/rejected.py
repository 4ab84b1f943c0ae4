"""Rejected input: what a channel refused, recorded as an event so nothing is silently dropped.

Each rejection is its own stream `rejected-<uuid>` holding one `InputRejected`.
The channel adapter decides what is kept (a redacted, truncated payload and a
few headers); this module only declares the event and appends it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from dispatch.core.bus import Handler
from dispatch.core.messages import Command, Event, event, metadata, to_new_event
from dispatch.core.personal import PERSONAL
from eventstore import NO_STREAM, AppendResult, EventStore


@event
@dataclass(frozen=True, slots=True)
class InputRejected(Event):
    """A channel refused an input (bad signature, malformed body, missing field...).

    `raw` is the redacted payload, cut to a limit (short for input that came with
    no accepted credential); `raw_length` its full length in bytes and `raw_sha256`
    the SHA-256 (hex) of it as received, so a copy kept elsewhere can be matched.
    `query` (WeChat) and `transport` (SIA) are kept by the channels that have them.
    Whose input it was is unknown: the payload, the peer and the query are sealed with a
    key of the month it came in (`rejected:YYYY-MM`), which retention erases as a whole.
    """

    channel: str
    code: str
    reason: str
    raw: str | None = field(metadata=PERSONAL)
    raw_length: int
    headers: dict[str, str] = field(default_factory=dict)
    peer: str | None = field(default=None, metadata=PERSONAL)
    query: dict[str, str] | None = field(default=None, metadata=PERSONAL)
    transport: str | None = None
    raw_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class RecordRejectedInput(Command):
    """Record one rejected input, received at `at`."""

    rejected: InputRejected
    at: datetime


async def record_rejected_input(cmd: RecordRejectedInput, *, store: EventStore) -> AppendResult:
    """Append the `InputRejected` on a stream of its own."""
    channel = cmd.rejected.channel
    meta = metadata(actor=f"channel:{channel}", channel=channel, received_at=cmd.at)
    sealed = to_new_event(cmd.rejected, meta, subject=rejected_subject(cmd.at))
    return await store.append(f"rejected-{uuid.uuid4().hex}", [sealed], NO_STREAM)


def rejected_subject(at: datetime) -> str:
    """The key rejected inputs of `at`'s month are sealed with (erased whole by retention)."""
    return f"rejected:{at:%Y-%m}"


HANDLERS: dict[type, Handler] = {RecordRejectedInput: record_rejected_input}
