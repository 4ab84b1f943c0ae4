"""The auditor's case history: `GET /api/v1/audit/cases/{case_id}/history?as_of=`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatch.case import case_stream
from dispatch.errors import InvalidCommand
from gateway.auth import require
from gateway.http import BadRequest, json_response
from gateway.replay import case_history, parse_as_of, record_read, verify_stream
from gateway.services import SERVICES

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
    found = await case_history(services.store, case_id, as_of)
    verify = await verify_stream(services.pool, case_stream(case_id))
    await record_read(services.store, services.clock, reader=who.actor, case_id=case_id,
                      as_of=as_of, via="api")
    return json_response(found.as_json(verify))


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/api/v1/audit/cases/{case_id}/history", history)


_EVENT: dict[str, Any] = {"type": "object", "properties": {
    "position": {"type": "integer"}, "stream": {"type": "string"}, "version": {"type": "integer"},
    "type": {"type": "string"}, "data": {"type": "object"}, "metadata": {"type": "object"},
    "recorded_at": {"type": "string", "format": "date-time"}, "who": {"type": "string"},
    "channel": {"type": "string"}, "raw": {}, "state": {"type": "object"}}}
OPENAPI_PATHS: dict[str, Any] = {
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
