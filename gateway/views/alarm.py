"""One-touch alarms over HTTPS and the elderly call-back list.

- `POST /channels/alarm/events` (bearer `channel` token whose scope names `alarm`): a vendor's
  device event.
- `GET /api/v1/elderly/alerts?overdue=true` : alerts, or those whose call-back is overdue.
- `POST /api/v1/elderly/alerts/{case_id}/confirm` `{outcome, note?}`: the agent's call-back.
"""

from __future__ import annotations

from aiohttp import web

from channels.alarm import command_from_json
from channels.errors import ChannelError
from dispatch.core.messages import Json
from dispatch.elderly.alarms import OUTCOMES, AlarmOutcome, ConfirmElderReached
from dispatch.elderly.read_model import list_alerts
from gateway.auth import require
from gateway.http import BadRequest, field, json_response, limit_param, page, parse_json
from gateway.rejections import channel_caller, reject_request
from gateway.services import SERVICES


async def alarm_event(request: web.Request) -> web.Response:
    """`POST /channels/alarm/events`: 200 once committed (a repeat answers the same)."""
    raw = await request.read()
    who = await channel_caller(request, "alarm", raw)
    services = request.app[SERVICES]
    try:
        cmd = command_from_json(parse_json(raw), who.actor, services.clock.now())
    except BadRequest as exc:
        await reject_request(request, channel="alarm", code=exc.error_code, reason=exc.error_message,
                             raw=raw, authenticated=True)
        raise
    except ChannelError as exc:
        await reject_request(request, channel="alarm", code=exc.code, reason=exc.message, raw=raw,
                             authenticated=True)
        raise
    outcome: AlarmOutcome = await services.bus.handle(cmd)
    if not outcome.duplicate:
        services.metrics.events_appended.labels("alarm").inc()
    body = {"alarm_id": outcome.alarm_id, "case_id": outcome.case_id, "kind": outcome.kind,
            "flags": list(outcome.flags), "duplicate": outcome.duplicate}
    return json_response(body, 200 if outcome.duplicate else 201)


async def alerts(request: web.Request) -> web.Response:
    """`GET /api/v1/elderly/alerts`: newest first; `overdue=true` for overdue call-backs."""
    require(request, "agent", "dispatcher", "auditor")
    services = request.app[SERVICES]
    overdue = request.query.get("overdue", "false").lower() in ("1", "true", "yes")
    limit = limit_param(request)
    async with services.store.connection() as conn:
        items = await list_alerts(conn, now=services.clock.now(), overdue=overdue, limit=limit,
                                  after=request.query.get("cursor"))
    return json_response(page(items, items[-1]["case_id"] if len(items) == limit else None))


async def confirm(request: web.Request) -> web.Response:
    """`POST /api/v1/elderly/alerts/{case_id}/confirm`: record the call-back outcome."""
    who = require(request, "agent", "dispatcher")
    body = parse_json(await request.read())
    outcome = field(body, "outcome", str)
    note = field(body, "note", str, required=False) or ""
    case_id = request.match_info["case_id"]
    cmd = ConfirmElderReached(case_id, outcome, note, who.actor)
    version = await request.app[SERVICES].bus.handle(cmd)
    return json_response({"case_id": case_id, "outcome": outcome, "version": version})


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_post("/channels/alarm/events", alarm_event)
    app.router.add_get("/api/v1/elderly/alerts", alerts)
    app.router.add_post("/api/v1/elderly/alerts/{case_id}/confirm", confirm)


_ERR: Json = {"description": "error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}
OPENAPI_PATHS: Json = {
    "/channels/alarm/events": {"post": {
        "summary": "One-touch alarm device event (HTTPS vendors)",
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "required": ["event_id", "account", "code", "at"],
            "properties": {"event_id": {"type": "string"}, "account": {"type": "string"},
                           "code": {"type": "string", "example": "MA or 101 / E101 / R101 / 1101 / 3101"},
                           "zone": {"type": "string"}, "lat": {"type": "number"},
                           "lon": {"type": "number"},
                           "crs": {"type": "string", "enum": ["wgs84", "gcj02", "bd09"]},
                           "at": {"type": "string", "format": "date-time"}}}}}},
        "responses": {"201": {"description": "committed; an alarm opened case_id"},
                      "200": {"description": "repeated event_id, nothing changed"},
                      "409": {"description": "idempotency_conflict: the event_id named another signal"},
                      "400": _ERR, "401": _ERR, "403": _ERR, "503": _ERR}}},
    "/api/v1/elderly/alerts": {"get": {
        "summary": "Elderly alerts and their 30-minute call-back (overdue=true: overdue only)",
        "parameters": [{"name": "overdue", "in": "query", "schema": {"type": "boolean"}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                       {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "{items, next}"}}}},
    "/api/v1/elderly/alerts/{case_id}/confirm": {"post": {
        "summary": "Record the agent's call-back: did someone reach the elder?",
        "parameters": [{"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "required": ["outcome"],
            "properties": {"outcome": {"type": "string", "enum": list(OUTCOMES)},
                           "note": {"type": "string"}}}}}},
        "responses": {"200": {"description": "recorded"}, "404": _ERR}}},
}
