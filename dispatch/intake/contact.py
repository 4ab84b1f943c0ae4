"""The contact every channel adapter parses its wire format into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from dispatch.cases.events import CallerInfo, Place

Channel = Literal["phone", "sms", "web", "wechat", "alarm"]
CHANNELS: tuple[str, ...] = ("phone", "sms", "web", "wechat", "alarm")


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
    text: str | None = None
    location: Place | None = None
    raw: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
