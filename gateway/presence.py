"""Agent presence in Redis with a heartbeat TTL, its API, and the call-back assigner.

`PUT /api/v1/agents/{agent_id}/presence {"status": "online"|"busy"|"offline"}`
is also the heartbeat: an agent that does not repeat it within the TTL
(`INTAKE_PRESENCE_TTL`, default 30 s) counts as offline. Presence lives in a
sorted set scored by expiry time plus a status hash. A status change is
recorded as an `AgentPresenceChanged` event for audit, before the board shows
it: with PostgreSQL down the PUT answers 503 and the board is left as it was.

Redis down: presence is unknown, the PUT answers 503, and the assigner leaves
tasks where they are (new ones wait unassigned in PostgreSQL) until it returns.

A dispatcher's token scoped to an organisation node sets and lists the presence of its
subtree's agents only (agent reference data's `org`; another's: 403, left out of the list).
"""

from __future__ import annotations

import re

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from dispatch.core.capability import Task
from dispatch.core.messages import Json
from dispatch.missed_calls.policy import Assigner
from dispatch.missed_calls.presence import RecordPresence
from gateway.auth import Forbidden, require
from gateway.http import BadRequest, error_response, json_response, limit_param, page, read_json
from gateway.presence_board import STATUSES, PresenceBoard
from gateway.services import SERVICES, Services
from gateway.views.missed_calls import check_agent
from gateway.views.org import forbidden, reach_of

log = structlog.get_logger(__name__)

_AGENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def board_of(services: Services) -> PresenceBoard:
    """The process's presence board (made once, kept in `services.presence`)."""
    return services.presence_board()


async def put_presence(request: web.Request) -> web.Response:
    """`PUT /api/v1/agents/{agent_id}/presence`: an agent's own, or anyone's for dispatchers."""
    who = require(request, "agent", "dispatcher")
    agent_id = request.match_info["agent_id"]
    if who.role == "agent" and who.subject != agent_id:
        raise Forbidden(text='{"error":{"code":"forbidden","message":"agents set only their own presence"}}',
                        content_type="application/json")
    if not _AGENT_ID.match(agent_id):
        raise BadRequest("bad_identifier", "agent id may hold only letters, digits and _ . : -")
    if who.role == "dispatcher":
        agents = await (await reach_of(request, who)).agents(request)
        if agents is not None and agent_id not in agents:
            raise forbidden(f"agent {agent_id} does not work for {who.org}'s subtree")
    if who.role != "agent":  # another's presence: a mistyped id would take call-back tasks
        await check_agent(request, agent_id)
    status = (await read_json(request)).get("status")
    if status not in STATUSES:
        raise BadRequest("bad_field", f"status must be one of {', '.join(STATUSES)}")
    services = request.app[SERVICES]
    board = board_of(services)
    try:
        previous = await board.status_of(agent_id)
    except (RedisError, OSError) as exc:
        return _board_unavailable(exc)
    # on record before the board shows it: a change the log refused (503) is still a change when
    # the console retries it, and is recorded then (the board set first, the retry changed nothing)
    await services.bus.handle(RecordPresence(agent_id, status, previous, who.actor))
    try:
        await board.beat(agent_id, status)
    except (RedisError, OSError) as exc:
        return _board_unavailable(exc)
    return json_response({"agent_id": agent_id, "status": status, "ttl_seconds": board.ttl})


def _board_unavailable(exc: Exception) -> web.Response:
    log.warning("presence_not_recorded", error=str(exc))
    return error_response(503, "presence_unavailable", "presence store (Redis) is unavailable",
                          {"Retry-After": "2"})


async def get_presence(request: web.Request) -> web.Response:
    """`GET /api/v1/agents/presence`: the present agents and their status."""
    who = require(request, "agent", "dispatcher", "auditor")
    agents = await (await reach_of(request, who)).agents(request)
    try:
        statuses = await board_of(request.app[SERVICES]).statuses()
    except (RedisError, OSError):
        return error_response(503, "presence_unavailable", "presence store (Redis) is unavailable",
                              {"Retry-After": "2"})
    limit, after = limit_param(request), request.query.get("cursor") or ""
    items = [{"agent_id": a, "status": s} for a, s in sorted(statuses.items())
             if (agents is None or a in agents or a == who.subject) and a > after]
    more = len(items) > limit
    return json_response(page(items[:limit], items[limit - 1]["agent_id"] if more else None))


def setup(app: web.Application) -> None:
    """Add the presence routes."""
    app.router.add_put("/api/v1/agents/{agent_id}/presence", put_presence)
    app.router.add_get("/api/v1/agents/presence", get_presence)


def workers(services: Services) -> list[Task]:
    """The call-back assigner, fed by this presence board."""
    assigner = Assigner(services.pool, services.bus.handle, board_of(services).present)
    return [assigner.run]


_STATUS_BODY: Json = {"type": "object", "required": ["status"], "properties": {
    "status": {"type": "string", "enum": list(STATUSES)}}}
OPENAPI_PATHS: Json = {
    "/api/v1/agents/{agent_id}/presence": {"put": {
        "summary": "Set an agent's presence (also the heartbeat; repeat within the TTL)",
        "parameters": [{"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"content": {"application/json": {"schema": _STATUS_BODY}}},
        "responses": {"200": {"description": "recorded"}, "403": {"description": "not your own"},
                      "400": {"description": "bad status; unknown_assignee: a dispatcher named an agent "
                                             "not in the agents' register"},
                      "503": {"description": "Redis unavailable"}}}},
    "/api/v1/agents/presence": {"get": {
        "summary": "Present agents", "responses": {"200": {"description": "list"}}}},
}
