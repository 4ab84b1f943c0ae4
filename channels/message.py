"""The normalised inbound contact every channel adapter produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Channel = Literal["phone", "sms", "web", "wechat", "alarm"]
CHANNELS: tuple[str, ...] = ("phone", "sms", "web", "wechat", "alarm")


@dataclass(frozen=True, slots=True)
class Location:
    """A point in WGS84 (EPSG:4326); adapters convert GCJ-02 / BD-09 before this."""

    lat: float
    lon: float
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made contact, as far as the channel can tell."""

    phone: str | None = None
    name: str | None = None
    email: str | None = None
    openid: str | None = None
    device_account: str | None = None


@dataclass(frozen=True, slots=True)
class InboundContact:
    """One inbound contact from any channel, with its raw payload for audit.

    `kind` says what happened (`sms`, `call_offered`, `call_abandoned`, `web_request`,
    `wechat_text`, `alarm`, ...); `idempotency_key` is the channel's own message id
    (scoped by channel), so a redelivery maps to the same key.
    """

    channel: str
    kind: str
    idempotency_key: str
    caller: Caller
    occurred_at: datetime
    received_at: datetime
    text: str | None = None
    location: Location | None = None
    raw: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
