"""Rejected input: redaction of what a channel keeps of it, and sending it to be recorded."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from dispatch.intake.rejected import InputRejected, RecordRejectedInput
from eventstore import EventStoreError

log = structlog.get_logger(__name__)

MAX_RAW = 64 * 1024
"""Raw payloads above this many characters are kept truncated (with the length)."""

_KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for", "x-twilio-signature")
SECRET_FIELDS: frozenset[str] = frozenset({"api_key", "access_token", "token", "password", "secret"})
"""Credential fields that are never stored in the log, accepted or rejected."""
REDACTED = "***"
_NAMES = "|".join(sorted(SECRET_FIELDS))
_SECRET_IN_TEXT = re.compile(
    r"""(?P<pre>(?:^|[?&]|["']\s*)(?:""" + _NAMES + r""")(?:["']\s*:\s*["']?|=))(?P<value>[^&"'\s,}]*)""",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """A raw form, query string or JSON body with credential values replaced."""
    return _SECRET_IN_TEXT.sub(lambda m: m.group("pre") + REDACTED, text)


def redact_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """A parsed form or JSON object with credential values replaced."""
    return {k: REDACTED if k.lower() in SECRET_FIELDS else v for k, v in values.items()}


def storable(text: str) -> str:
    """Text PostgreSQL can hold: a NUL or a lone surrogate is kept as its escape (`\\x00`, `\\ud800`)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _raw_text(raw: bytes | str | None) -> tuple[str | None, int]:
    if raw is None:
        return None, 0
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    return storable(redact_text(text[:MAX_RAW])), len(text)


Send = Callable[[object], Awaitable[object]]
"""The message bus's `handle`: sends one command to its handler."""


async def record_rejected(
    send: Send,
    *,
    channel: str,
    code: str,
    reason: str,
    raw: bytes | str | None,
    at: datetime,
    headers: Mapping[str, str] | None = None,
    peer: str | None = None,
    query: Mapping[str, str] | None = None,
    transport: str | None = None,
) -> bool:
    """Record an `InputRejected` (payload redacted and cut); False if the store failed.

    Failing to record must never turn a 4xx into a 5xx: the error is logged.
    """
    text, length = _raw_text(raw)
    kept = {k: storable(v) for k, v in (headers or {}).items() if k.lower() in _KEPT_HEADERS}
    asked = None if query is None else {storable(k): storable(v) for k, v in query.items()}
    rejected = InputRejected(channel=channel, code=code, reason=storable(reason), raw=text, raw_length=length,
                             headers=kept, peer=peer, query=asked, transport=transport)
    try:
        await send(RecordRejectedInput(rejected, at))
    except EventStoreError as exc:
        log.warning("rejected_input_not_recorded", channel=channel, code=code, error=str(exc))
        return False
    log.info("input_rejected", channel=channel, code=code, reason=reason)
    return True
