"""Record rejected input as an event, so that nothing is silently dropped."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from eventstore import NO_STREAM, EventStore, EventStoreError, NewEvent

log = structlog.get_logger(__name__)

MAX_RAW = 64 * 1024
"""Raw payloads above this many characters are kept truncated (with the length)."""

_KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for", "x-twilio-signature")


def _raw_text(raw: bytes | str | None) -> tuple[str | None, int]:
    if raw is None:
        return None, 0
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    return text[:MAX_RAW], len(text)


async def record_rejected(
    store: EventStore,
    *,
    channel: str,
    code: str,
    reason: str,
    raw: bytes | str | None,
    at: datetime,
    headers: Mapping[str, str] | None = None,
    peer: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str | None:
    """Append an `InputRejected` event; return its stream, or None if the store failed.

    Failing to record must never turn a 4xx into a 5xx: the error is logged.
    """
    text, length = _raw_text(raw)
    kept = {k: v for k, v in (headers or {}).items() if k.lower() in _KEPT_HEADERS}
    stream = f"rejected-{uuid.uuid4().hex}"
    data = {
        "channel": channel,
        "code": code,
        "reason": reason,
        "raw": text,
        "raw_length": length,
        "headers": kept,
        "peer": peer,
        **dict(extra or {}),
    }
    meta = {"channel": channel, "received_at": at.isoformat(), "actor": f"channel:{channel}"}
    try:
        await store.append(stream, [NewEvent("InputRejected", data, 1, meta)], NO_STREAM)
    except EventStoreError as exc:
        log.warning("rejected_input_not_recorded", channel=channel, code=code, error=str(exc))
        return None
    log.info("input_rejected", channel=channel, code=code, reason=reason)
    return stream
