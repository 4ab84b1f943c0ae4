"""`GET /api/v1/stream`: projection changes as server-sent events, with resume.

Changes come from the capped Redis Stream `Services.changes_stream` (every
`Services.publish` XADDs there), so an event's id is its Redis Stream id and a
client reconnecting with `Last-Event-ID` gets what it missed. When the gap
cannot be replayed (trimmed, Redis restarted) or Redis is down, the client
gets a `resync` event and reloads its snapshot over REST; while Redis is down
the stream polls the read models' checkpoints in PostgreSQL (the truth) once
a second and sends `resync` whenever they move, so the console keeps up.

Events: `mode` (`{"mode": "live"|"polling"}`), `change` (`{"topic", "data"}`),
`resync` (`{"reason"}`); a comment line every 15 s keeps proxies from closing.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import cast

from aiohttp import web
from redis.exceptions import RedisError

from dispatch.cases.read_model import in_scope
from dispatch.core.messages import Json
from eventstore.postgres import UNAVAILABLE
from gateway.auth import Principal, require
from gateway.http import dumps
from gateway.privacy import mask_change, sees_personal_data
from gateway.services import SERVICES, Services
from gateway.views.org import scope_of

READERS = ("agent", "dispatcher", "unit", "auditor")
BLOCK_MS = 1000
"""How long one XREAD waits (below the Redis client's 2 s socket timeout)."""
POLL_INTERVAL = 1.0
PROBE_TIMEOUT = 1.0
"""How long a Redis call may take before the stream falls back to polling."""
HEARTBEAT = 15.0
BATCH = 200
_STREAM_ID = re.compile(r"^\d+-\d+$")


@dataclass(slots=True)
class OpenStreams:
    """The handler tasks of the streams open now, ended when the app shuts down (`end_streams`)."""

    tasks: set[asyncio.Task[object]] = field(default_factory=set)
    closing: bool = False


STREAMS = web.AppKey("sse_streams", OpenStreams)
BARE_TOPICS = frozenset({"incident", "case_link", "missed_call", "call", "harassment", "customer",
                         "elderly_alert"})
"""Topics a scoped caller gets as a bare signal (the topic, no data): what it names may lie outside
the caller's subtree, and the console only reloads its (scoped) lists on them."""


def in_view(scope: frozenset[str] | None, change: Json) -> bool:
    """Whether a change is for a caller who sees `scope`: a case change is, when the case is
    held by or assigned to a node of the scope now, or was before the change (it left)."""
    data = change.get("data")
    if scope is None or change.get("topic") != "case" or not isinstance(data, dict):
        return True
    before = data.get("before")
    return any(_held_in(scope, held) for held in (data, before) if isinstance(held, dict))


def scoped(scope: frozenset[str] | None, change: Json) -> Json:
    """A change as a caller who sees `scope` gets it: a topic of `BARE_TOPICS` without its data."""
    if scope is None or change.get("topic") not in BARE_TOPICS:
        return change
    return {"topic": change.get("topic"), "data": {}}


def _held_in(scope: frozenset[str], held: Json) -> bool:
    owner, assigned = held.get("owner"), held.get("assigned_to")
    return in_scope(scope, owner if isinstance(owner, str) else None,
                    assigned if isinstance(assigned, str) else None)


def visible(who: Principal, change: Json) -> Json:
    """What this caller may see of one change."""
    data = change.get("data")
    data = data if isinstance(data, dict) else {}
    assigned = data.get("assigned_to")
    if sees_personal_data(who, assigned_to=assigned if isinstance(assigned, str) else None):
        return {"topic": change.get("topic"), "data": data}
    topic = change.get("topic")
    return {"topic": topic, "data": mask_change(topic if isinstance(topic, str) else "", data)}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq)


class _Feed:
    """One client's place in the change feed and its way of writing events."""

    def __init__(self, services: Services, who: Principal, response: web.StreamResponse,
                 scope: frozenset[str] | None = None) -> None:
        self.services = services
        self.who = who
        self.scope = scope
        self.response = response
        self.mode = ""
        self.last_write = time.monotonic()

    async def send(self, kind: str, data: object, event_id: str | None = None) -> None:
        lines = [f"id: {event_id}"] if event_id is not None else []
        lines += [f"event: {kind}", f"data: {dumps(data)}", "", ""]
        await self.response.write("\n".join(lines).encode())
        self.last_write = time.monotonic()

    async def heartbeat(self) -> None:
        if time.monotonic() - self.last_write >= HEARTBEAT:
            await self.response.write(b": keep-alive\n\n")
            self.last_write = time.monotonic()

    async def set_mode(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            await self.send("mode", {"mode": mode})

    async def resume_point(self, last_id: str | None) -> str:
        """Where to read from; sends `resync` when the client's gap cannot be replayed."""
        redis = self.services.redis
        assert redis is not None
        key = self.services.changes_stream
        newest = await redis.xrevrange(key, count=1)
        head = _text(newest[0][0]) if newest else "0-0"
        if last_id is None:
            return head
        oldest = await redis.xrange(key, count=1)
        first = _text(oldest[0][0]) if oldest else None
        if (_STREAM_ID.match(last_id) and _id_key(last_id) <= _id_key(head)
                and (first is None or _id_key(first) <= _id_key(last_id))):
            return last_id
        await self.send("resync", {"reason": "gap"})
        return head

    async def follow_redis(self, cursor: str) -> str:
        """Read and forward one batch (or wait up to BLOCK_MS); the new cursor."""
        redis = self.services.redis
        assert redis is not None
        # RESP2 (the client's protocol) answers [[stream, [(id, {field: value})]]] or None.
        found = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None, await redis.xread(
            {self.services.changes_stream: cursor}, count=BATCH, block=BLOCK_MS))
        for _, entries in found or []:
            for raw_id, fields in entries:
                cursor = _text(raw_id)
                change = json.loads(fields[b"change"])
                if in_view(self.scope, change):
                    await self.send("change", visible(self.who, scoped(self.scope, change)), cursor)
        return cursor

    async def watermark(self) -> str | None:
        """A value that moves whenever any read model commits (None if PostgreSQL is down)."""
        try:
            async with self.services.pool.acquire(timeout=POLL_INTERVAL) as conn:
                value = await conn.fetchval(
                    "SELECT count(*)::text || '/' || coalesce(max(updated_at)::text, '') FROM checkpoints")
        except UNAVAILABLE:
            return None
        return str(value)


def _stop_if_cancelled() -> None:
    """Raise `CancelledError` if this stream was cancelled (the gateway stops: `end_streams`),
    even if the Redis client swallowed the cancel or turned it into an error."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _live(feed: _Feed, last_id: str | None) -> None:
    """Follow Redis until it fails or stalls (raises RedisError / OSError / TimeoutError)."""
    if feed.services.redis is None:
        raise RedisError("redis is not configured")
    async with asyncio.timeout(PROBE_TIMEOUT):
        cursor = await feed.resume_point(last_id)
    await feed.set_mode("live")
    while True:
        async with asyncio.timeout(BLOCK_MS / 1000 + PROBE_TIMEOUT):
            cursor = await feed.follow_redis(cursor)
        _stop_if_cancelled()
        await feed.heartbeat()


async def _poll(feed: _Feed) -> None:
    """Poll the read models until Redis answers again (a few seconds at a time)."""
    await feed.set_mode("polling")
    seen = await feed.watermark()
    await feed.send("resync", {"reason": "polling"}, f"poll-{int(time.time() * 1000)}")
    for _ in range(5):
        await asyncio.sleep(POLL_INTERVAL)
        mark = await feed.watermark()
        if mark is not None and mark != seen:
            seen = mark
            await feed.send("resync", {"reason": "polling"}, f"poll-{int(time.time() * 1000)}")
        await feed.heartbeat()


async def stream(request: web.Request) -> web.StreamResponse:
    """`GET /api/v1/stream`: live changes for the console (`Last-Event-ID` resumes)."""
    who = require(request, *READERS)
    services = request.app[SERVICES]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    feed = _Feed(services, who, response, await scope_of(request, who))
    last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    open_now = request.app[STREAMS]
    task = asyncio.current_task()
    if task is not None:
        open_now.tasks.add(task)
    try:
        while True:
            try:
                await _live(feed, last_id)
            except (RedisError, OSError) as exc:
                if isinstance(exc, ConnectionResetError):
                    raise
                _stop_if_cancelled()
                await _poll(feed)
                last_id = "after-outage"
    except ConnectionResetError:
        pass  # the client went away
    except asyncio.CancelledError:
        if not open_now.closing or task is None:
            raise
        task.uncancel()  # ended by `end_streams`: finish the response, the client reconnects
    finally:
        open_now.tasks.discard(task)
    return response


async def end_streams(app: web.Application) -> None:
    """On shutdown (SIGTERM), end every open stream at once: a stream never ends by itself, so the
    gateway would otherwise wait out its whole drain timeout for it. The browser reconnects (to
    another gateway behind the proxy) with Last-Event-ID and misses nothing."""
    open_now = app[STREAMS]
    open_now.closing = True
    for task in list(open_now.tasks):
        task.cancel()


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/api/v1/stream", stream)
    app[STREAMS] = OpenStreams()
    app.on_shutdown.append(end_streams)


OPENAPI_PATHS: Json = {
    "/api/v1/stream": {"get": {
        "summary": "Server-sent events of projection changes (event types mode, change, resync). "
                   "Send Last-Event-ID (or ?last_event_id=) to resume; on `resync` reload the "
                   "snapshot. Personal data is masked for roles that do not see it; a token "
                   "scoped to an organisation node gets the changes of its subtree's cases only.",
        "parameters": [{"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "text/event-stream"},
                      "401": {"description": "no token"}, "403": {"description": "role"}},
    }},
}
