"""Rejected input: redaction of what a channel keeps of it, and sending it to be recorded."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from dispatch.intake.rejected import InputRejected, RecordRejectedInput
from eventstore import EventStoreError, StoreUnavailable

log = structlog.get_logger(__name__)

MAX_RAW = 64 * 1024
"""Raw payloads of authenticated senders above this many characters are kept truncated."""
MAX_UNAUTHENTICATED = 256
"""Bytes kept of a payload that came with no accepted credential (a bad signature, no
token): anyone can send it, so the log keeps its length, its SHA-256 and this much."""

MAX_QUERY_KEYS = 32
_KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for", "x-twilio-signature")
SECRET_FIELDS: frozenset[str] = frozenset({"api_key", "access_token", "token", "password", "secret"})
"""Credential fields that are never stored in the log, accepted or rejected."""
REDACTED = "***"
_NAMES = "|".join(sorted(SECRET_FIELDS))
_SECRET_IN_TEXT = re.compile(
    r"""(?P<pre>(?:^|[?&]|["']\s*)(?:""" + _NAMES + r""")(?:["']\s*:\s*["']?|=))(?P<value>[^&"'\s,}]*)""",
    re.IGNORECASE,
)
_SECRET_IN_MULTIPART = re.compile(
    r"""(?P<pre>name=["']?(?:""" + _NAMES + r""")["']?[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n)"""
    r"""(?P<value>[^\r\n]*)""",
    re.IGNORECASE,
)
_SECRET_IN_XML = re.compile(r"(?P<pre><(?:" + _NAMES + r")>)(?P<value>[^<]*)", re.IGNORECASE)


def redact_text(text: str) -> str:
    """A raw form, query string, multipart, XML or JSON body with credential values replaced."""
    text = _SECRET_IN_MULTIPART.sub(lambda m: m.group("pre") + REDACTED, text)
    text = _SECRET_IN_XML.sub(lambda m: m.group("pre") + REDACTED, text)
    return _SECRET_IN_TEXT.sub(lambda m: m.group("pre") + REDACTED, text)


def redact_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """A parsed form or JSON object with credential values replaced."""
    return {k: REDACTED if k.lower() in SECRET_FIELDS else v for k, v in values.items()}


def storable(text: str) -> str:
    """Text PostgreSQL can hold: a NUL or a lone surrogate is kept as its escape (`\\x00`, `\\ud800`)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def kept_payload(raw: bytes | str | None, *, authenticated: bool) -> tuple[str | None, int, str | None]:
    """What the log keeps of a payload: its redacted text (cut), its length in bytes, its SHA-256.

    An authenticated sender's payload is kept up to `MAX_RAW` characters; anyone
    else's up to `MAX_UNAUTHENTICATED` bytes (whole characters only).
    """
    if raw is None:
        return None, 0, None
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(data).hexdigest()
    if authenticated:
        text = data[:MAX_RAW * 4].decode("utf-8", "backslashreplace")[:MAX_RAW]
        return storable(redact_text(text)), len(data), digest
    # redacted before it is cut, so a credential across the cut cannot leave its first part
    head = redact_text(data[:MAX_UNAUTHENTICATED * 4].decode("utf-8", "backslashreplace"))
    cut = head.encode("utf-8")[:MAX_UNAUTHENTICATED].decode("utf-8", "ignore")
    return storable(cut), len(data), digest


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
    authenticated: bool = False,
) -> bool:
    """Record an `InputRejected` (payload redacted and cut); False if the store failed.

    `authenticated`: the input came with a credential that was accepted (a valid
    token or signature); otherwise only a short head of it is kept (`kept_payload`).
    Failing to record must never turn a 4xx into a 5xx (the error is logged), but while the
    store is unavailable the input is not answered as refused before its record is in:
    `StoreUnavailable` goes to the caller, which answers 503 (a DC-09 frame: nothing), so the
    sender retries and the rejection is recorded then, as when the store times out.
    """
    text, length, digest = kept_payload(raw, authenticated=authenticated)
    limit = None if authenticated else MAX_UNAUTHENTICATED
    kept = {k: storable(v[:limit]) for k, v in (headers or {}).items() if k.lower() in _KEPT_HEADERS}
    if query is not None:
        query = {storable(k[:limit]): (REDACTED if k.lower() in SECRET_FIELDS else storable(v[:limit]))
                 for k, v in list(query.items())[:MAX_QUERY_KEYS]}
    rejected = InputRejected(channel=channel, code=code, reason=storable(reason), raw=text, raw_length=length,
                             headers=kept, peer=peer, query=None if query is None else dict(query),
                             transport=transport, raw_sha256=digest)
    try:
        await send(RecordRejectedInput(rejected, at))
    except StoreUnavailable:
        raise
    except EventStoreError as exc:
        log.warning("rejected_input_not_recorded", channel=channel, code=code, error=str(exc))
        return False
    log.info("input_rejected", channel=channel, code=code, reason=reason)
    return True
