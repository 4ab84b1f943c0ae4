"""The contact every channel adapter parses its wire format into, and the key of a repeat."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from dispatch.cases.events import CallerInfo, Place
from dispatch.core.personal import PERSONAL
from eventstore import EventStore

Channel = Literal["phone", "sms", "web", "wechat", "alarm"]
CHANNELS: tuple[str, ...] = ("phone", "sms", "web", "wechat", "alarm")
REPEAT_WINDOW = timedelta(minutes=10)
"""A contact keyed by its content (no message id) repeated within this time is the same contact."""


@dataclass(frozen=True, slots=True)
class InboundContact:
    """One inbound contact from any channel, with its raw payload for audit.

    `kind` says what happened (`sms`, `call_offered`, `call_abandoned`, `web_request`,
    `wechat_text`, `alarm`, ...); `idempotency_key` is the channel's own message id
    (scoped by channel), so a redelivery maps to the same key. `caller` is who
    made contact as far as the channel can tell; `location` is in WGS84 (adapters
    convert GCJ-02 / BD-09 before this).
    """

    channel: str
    kind: str
    idempotency_key: str
    caller: CallerInfo
    occurred_at: datetime
    received_at: datetime
    text: str | None = field(default=None, metadata=PERSONAL)
    location: Place | None = None
    raw: Any = field(default=None, metadata=PERSONAL)
    extra: dict[str, Any] = field(default_factory=dict, metadata=PERSONAL)


async def repeat_key(store: EventStore, base: str, at: datetime, window: timedelta = REPEAT_WINDOW) -> str:
    """The idempotency key of a contact known by its content (`base`) and received `at`: the
    first contact's key when it came at most `window` earlier, else a new one.

    Keys are `base:bucket`, the `window`-wide bucket of time since the epoch. A repeat
    within the window falls in the first contact's bucket or the next one, never further
    (the buckets are as wide as the window), so one look-up of the previous bucket's key
    and of when its contact came decides; a repeat in the same bucket needs none, the store
    answers it. Concurrent first deliveries compute the same key and the store keeps one.
    """
    bucket = int(at.timestamp() // window.total_seconds())
    previous = f"{base}:{bucket - 1}"
    seen = await store.find_by_idempotency_key(previous)
    if seen is not None:
        first = await store.read_stream(seen.stream, limit=1)
        if first:
            received = first[0].metadata.get("received_at")
            came = datetime.fromisoformat(received) if received else first[0].recorded_at
            if at - came <= window:
                return previous
    return f"{base}:{bucket}"
