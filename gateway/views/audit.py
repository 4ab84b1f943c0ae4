"""The audit API: a case's history (`GET /api/v1/audit/cases/{case_id}/history?as_of=`),
the global log in commit order (`GET /api/v1/audit/events`) and the tamper check
(`GET /api/v1/audit/verify`, the same as `intake verify`). Every read is recorded:
a case history read as an `AuditRead` event (as the case's own events are), a read
of the log or of the check in the access record beside the log
(`eventstore/access.py`), so that reading the log never adds to it.
"""

from __future__ import annotations

from aiohttp import web

from dispatch.cases.state import case_stream, load_case
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import Json
from eventstore import tamper
from gateway.auth import require
from gateway.cli.replay import case_history, parse_as_of, record_read, verify_stream
from gateway.http import BadRequest, is_count, json_response, limit_param, page
from gateway.services import SERVICES
from gateway.views.org import check_case, scope_of, unscoped

READERS = ("auditor", "dispatcher", "agent")
"""Roles that may read a case's full history (raw payloads included)."""


async def history(request: web.Request) -> web.Response:
    """Every event of the case with the state after each, the state at `as_of`, the chain check."""
    who = require(request, *READERS)
    case_id = request.match_info["case_id"]
    try:
        as_of = parse_as_of(request.query.get("as_of"))
    except InvalidCommand as exc:
        raise BadRequest("bad_parameter", str(exc)) from exc
    services = request.app[SERVICES]
    scope = await scope_of(request, who)
    if scope is not None:
        check_case(await load_case(services.store, case_id), scope)
    found = await case_history(services.store, case_id, as_of)
    verify = await verify_stream(services.pool, case_stream(case_id))
    await record_read(services.store, services.clock, reader=who.actor, case_id=case_id,
                      as_of=as_of, via="api")
    return json_response(found.as_json(verify))


def _after(request: web.Request) -> int:
    """`after`, or `cursor` (the `next` of the page before, as on every list): a position."""
    after, cursor = request.query.get("after"), request.query.get("cursor")
    if after is not None and cursor is not None:
        raise BadRequest("bad_parameter", "give after or cursor, not both")
    raw = after if after is not None else cursor if cursor is not None else "0"
    if not is_count(raw):
        raise BadRequest("bad_parameter", "after must be a non-negative integer position")
    return int(raw)


async def events(request: web.Request) -> web.Response:
    """`GET /api/v1/audit/events?after=&limit=`: the global log in commit order (`after` exclusive)."""
    who = await unscoped(request, require(request, "auditor"))
    after, limit = _after(request), limit_param(request)
    services = request.app[SERVICES]
    try:
        start = await services.store.checkpoint_at(after)
    except KeyError as exc:
        raise BadRequest("bad_parameter", f"no event at position {after}") from exc
    found = await services.store.read_all(start, limit=limit)
    last = found[-1][1].position if found else after
    await services.access.record(who.actor, "api:events", services.clock.now(), (after, last))
    items = [record.as_json() for _, record in found]
    return json_response(page(items, items[-1]["position"] if len(items) == limit else None))


async def verify(request: web.Request) -> web.Response:
    """`GET /api/v1/audit/verify`: every hash chain and seal checked, the first bad event named."""
    who = await unscoped(request, require(request, "auditor"))
    services = request.app[SERVICES]
    report = await tamper.verify(services.pool, key=services.settings.stores.seal_key)
    await services.access.record(who.actor, "api:verify", services.clock.now())
    return json_response(report.as_json())


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/api/v1/audit/cases/{case_id}/history", history)
    app.router.add_get("/api/v1/audit/events", events)
    app.router.add_get("/api/v1/audit/verify", verify)


_EVENT: Json = {"type": "object", "properties": {
    "position": {"type": "integer"}, "stream": {"type": "string"}, "version": {"type": "integer"},
    "type": {"type": "string"}, "data": {"type": "object"}, "metadata": {"type": "object"},
    "recorded_at": {"type": "string", "format": "date-time"}, "who": {"type": "string"},
    "channel": {"type": "string"}, "raw": {}, "state": {"type": "object"}}}
OPENAPI_PATHS: Json = {
    "/api/v1/audit/events": {"get": {
        "summary": "The global log in commit order; `after` (exclusive, default 0) and `limit`; "
                   "`next` is the last position returned while more may follow (`cursor=NEXT` "
                   "continues as `after=NEXT` does). Reading adds "
                   "nothing to the log: a tailing reader reaches the head; who read which range "
                   "when is kept in the access record (checked by verify). Role: auditor.",
        "parameters": [{"name": "after", "in": "query", "schema": {"type": "integer"}},
                       {"name": "cursor", "in": "query", "schema": {"type": "integer"}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100}}],
        "responses": {"200": {"description": "`{items: [{position, stream, version, type, "
                                             "schema_version, data, metadata, recorded_at}], next}`"}}}},
    "/api/v1/audit/verify": {"get": {
        "summary": "Tamper check of the whole store, like `intake verify`. Role: auditor.",
        "responses": {"200": {"description": "`{ok, checked, first_bad, seals, unsealed, warnings, "
                                             "access_checked}`; `first_bad.stream` `access_log` "
                                             "names a bad row (`position`: its seq) of the "
                                             "access record"}}}},
    "/api/v1/audit/cases/{case_id}/history": {"get": {
        "summary": "A case's history: every event with who/when/channel/raw payload and the state "
                   "after it; `as_of` gives the state at that instant. The read is recorded "
                   "(AuditRead on the reader's auditlog- stream). Roles: auditor, dispatcher, agent.",
        "parameters": [
            {"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "as_of", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        ],
        "responses": {
            "200": {"description": "history", "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "case_id": {"type": "string"}, "as_of": {"type": "string", "nullable": True},
                    "events": {"type": "array", "items": _EVENT},
                    "state": {"type": "object", "nullable": True},
                    "total_events": {"type": "integer"},
                    "verify": {"type": "object", "properties": {
                        "ok": {"type": "boolean"}, "checked": {"type": "integer"},
                        "first_bad": {"type": "object", "nullable": True}}}}}}}},
            "400": {"description": "bad as_of or case id"},
            "401": {"description": "no token"}, "403": {"description": "role may not read"},
            "404": {"description": "no such case"},
        },
    }},
}
