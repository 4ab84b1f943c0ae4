"""Rejected channel input, the one way every endpoint and listener records it.

Each rejection is counted (`intake_rejected_inputs`). One that came with an
accepted credential is recorded with its payload (redacted, up to 64 KiB);
one that did not (no token, a bad signature, an unparsable frame) keeps only
its length, SHA-256 and first 256 bytes, and is recorded only within the
per-source and overall allowances of `RejectionLimits`: beyond them it is
counted in `intake_dropped_inputs{reason="rejections_rate_limited"}` and not
written, so a flood cannot grow the append-only log without bound.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from channels.rejected import record_rejected
from gateway.auth import Forbidden, Principal, Unauthorized, require_channel
from gateway.services import SERVICES, Services

RATE_LIMITED = "rejections_rate_limited"
"""The `reason` label of unauthenticated rejections counted but not recorded."""


async def record_rejection(
    services: Services,
    *,
    channel: str,
    code: str,
    reason: str,
    raw: bytes | str | None,
    authenticated: bool,
    source: str | None,
    headers: Mapping[str, str] | None = None,
    peer: str | None = None,
    query: Mapping[str, str] | None = None,
    transport: str | None = None,
) -> bool:
    """Count a rejection and record it (see the module); True when it was written."""
    services.metrics.rejected_inputs.labels(channel, code).inc()
    if not authenticated and not services.rejection_limits.allow(source or peer or "unknown"):
        services.metrics.dropped_inputs.labels(channel, RATE_LIMITED).inc()
        return False
    return await record_rejected(
        services.bus.handle, channel=channel, code=code, reason=reason, raw=raw, at=services.clock.now(),
        headers=headers, peer=peer, query=query, transport=transport, authenticated=authenticated)


async def reject_request(
    request: web.Request, *, channel: str, code: str, reason: str, raw: bytes | None, authenticated: bool,
    query: bool = False,
) -> bool:
    """`record_rejection` for an HTTP request (its address is the source)."""
    return await record_rejection(
        request.app[SERVICES], channel=channel, code=code, reason=reason, raw=raw,
        authenticated=authenticated, source=request.remote, headers=request.headers, peer=request.remote,
        query=request.query if query else None)


async def channel_caller(request: web.Request, channel: str, raw: bytes) -> Principal:
    """The caller of a token-authenticated channel endpoint (`require_channel`); a request
    without a token, or with one whose scope does not name `channel`, is recorded before its 401 / 403."""
    try:
        return require_channel(request, channel)
    except (Unauthorized, Forbidden) as exc:
        await reject_request(request, channel=channel, code=exc.reason.lower(), reason=exc.reason, raw=raw,
                             authenticated=False)
        raise
