"""Call-back tasks (missed calls) and the abandoned-call report (呼损) over HTTP.

A token scoped to an organisation node lists and acts on the tasks of its subtree's agents
(`dispatch.missed_calls.read_model.IN_SCOPE`; another's answers 404) and reassigns only to them
(403); the abandoned-call report counts the hotline's queues, not a level's: 403 to it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from dispatch.core.errors import AgentNotPresent, NotFound, UnknownAssignee
from dispatch.core.messages import Json
from dispatch.core.texts import LOCAL_TIME
from dispatch.gis.reference import agent_known
from dispatch.missed_calls.policy import AssignCallbackTask, RecordCallbackOutcome
from dispatch.missed_calls.read_model import QueueHour, calls_by_queue_hour, missed_call_tasks, task_in_scope
from gateway.auth import Principal, require
from gateway.http import BadRequest, instant, json_response, limit_param, page, read_json
from gateway.services import SERVICES
from gateway.views.org import forbidden, reach_of, scope_of, unscoped

STATUSES = ("open", "closed")


def _cursor(raw: str | None) -> tuple[datetime | None, str]:
    if not raw:
        return None, ""
    at, _, task_id = raw.partition("|")
    try:  # cursors name a task's first miss: an aware instant in 2000-2099, as every channel takes
        return instant(at, "cursor", "bad_parameter"), task_id
    except BadRequest as exc:
        raise BadRequest("bad_parameter", "cursor is not one this API gave") from exc


async def list_missed_calls(request: web.Request) -> web.Response:
    """`GET /api/v1/missed-calls?status=open&agent_id=&cursor=&limit=`."""
    who = require(request, "agent", "dispatcher", "auditor")
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest("bad_parameter", f"status must be one of {', '.join(STATUSES)}")
    limit = limit_param(request)
    after, after_id = _cursor(request.query.get("cursor"))
    async with request.app[SERVICES].pool.acquire() as conn:
        rows = await missed_call_tasks(conn, status, request.query.get("agent_id") or None, after,
                                       after_id, limit, await scope_of(request, who))
    items = [asdict(r) for r in rows]
    last = rows[-1] if len(rows) == limit else None
    cursor = f"{last.first_missed_at.isoformat()}|{last.task_id}" if last else None
    return json_response(page(items, cursor))


async def _check_task(request: web.Request, who: Principal, task_id: str) -> None:
    """404 for a task outside a scoped caller's subtree, as an unknown one."""
    scope = await scope_of(request, who)
    if scope is not None and not await task_in_scope(request.app[SERVICES].pool, task_id, scope):
        raise NotFound(f"call-back task {task_id} not found")


async def reassign(request: web.Request) -> web.Response:
    """`POST /api/v1/missed-calls/{task_id}/reassign {"agent_id"}`: by hand (pins the task)."""
    who = require(request, "dispatcher")
    body = await read_json(request)
    agent_id = body.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        raise BadRequest("missing_field", "field 'agent_id' is required")
    task_id = request.match_info["task_id"]
    await _check_task(request, who, task_id)
    agents = await (await reach_of(request, who)).agents(request)
    if agents is not None and agent_id not in agents:
        raise forbidden(f"agent {agent_id} does not work for {who.org}'s subtree")
    await check_agent(request, agent_id)
    await _check_present(request, agent_id)
    written = await request.app[SERVICES].bus.handle(
        AssignCallbackTask(task_id, agent_id, "manual", actor=who.actor))
    return json_response({"task_id": task_id, "assigned_to": agent_id,
                          "events": [type(e).__name__ for e in written]})


async def check_agent(request: web.Request, agent_id: str) -> None:
    """400 `unknown_assignee` for an agent not in the agents' register: a task pinned to no one
    real (a mistyped id) would never be called back."""
    if not await agent_known(request.app[SERVICES].pool, agent_id):
        raise UnknownAssignee(f"no agent {agent_id!r} is registered", field="agent_id")


async def _check_present(request: web.Request, agent_id: str) -> None:
    """409 `agent_not_present` for an agent who is not online or busy: the task would wait there
    uncalled, and the assigner deals out an absent agent's tasks at once (the 200 said otherwise).
    With presence unknown (Redis down) the assigner moves nothing, so the task may go."""
    present = await request.app[SERVICES].presence_board().present()
    if present is not None and agent_id not in present:
        raise AgentNotPresent(f"agent {agent_id} is not online: a call-back task goes to a present agent")


async def outcome(request: web.Request) -> web.Response:
    """`POST /api/v1/missed-calls/{task_id}/outcome {"outcome": reached|no_answer|wrong_number}`."""
    who = require(request, "agent", "dispatcher")
    body = await read_json(request)
    result = body.get("outcome")
    note = body.get("note")
    if not isinstance(result, str):
        raise BadRequest("missing_field", "field 'outcome' is required")
    if note is not None and not isinstance(note, str):
        raise BadRequest("bad_field", "field 'note' must be a string")
    task_id = request.match_info["task_id"]
    await _check_task(request, who, task_id)
    written = await request.app[SERVICES].bus.handle(RecordCallbackOutcome(
        task_id, result, who.subject if who.role == "agent" else None, note, who.actor))
    data = [{"type": type(e).__name__, **{k: getattr(e, k) for k in ("attempt", "due_at", "reason")
                                          if hasattr(e, k)}} for e in written]
    return json_response({"task_id": task_id, "events": data})


def _time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    return None if raw is None else instant(raw, name, "bad_parameter")


async def abandoned_report(request: web.Request) -> web.Response:
    """`GET /api/v1/reports/abandoned-calls?from=&to=&queue=&tz=`: per queue and hour, the hours
    Beijing time's unless `tz` names another zone (as every report counts local days)."""
    await unscoped(request, require(request, "agent", "dispatcher", "auditor"))
    tz = request.query.get("tz") or LOCAL_TIME.key
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest("bad_parameter", "tz is not an IANA time zone") from exc
    start = _time(request, "from") or datetime.fromisoformat("1970-01-01T00:00:00+00:00")
    end = _time(request, "to") or datetime.fromisoformat("9999-01-01T00:00:00+00:00")
    limit = limit_param(request)
    after = _hour_cursor(request.query.get("cursor"))
    async with request.app[SERVICES].pool.acquire() as conn:
        rows = await calls_by_queue_hour(conn, start, end, tz, request.query.get("queue") or None)
    keyed = sorted((_hour_key(r), r) for r in rows)
    chosen = [(key, r) for key, r in keyed if after is None or key > after][:limit]
    items = [{"queue": r.queue, "hour": r.hour.isoformat(), "tz": tz, "calls": r.calls,
              "abandoned": r.abandoned, "answered": r.answered,
              "abandon_rate": round(r.abandoned / r.calls, 4) if r.calls else 0.0}
             for _, r in chosen]
    more = len(chosen) == limit and chosen[-1][0] != keyed[-1][0]
    return json_response(page(items, "|".join(chosen[-1][0]) if more else None))


def _hour_key(row: QueueHour) -> tuple[str, str]:
    """A report row's place in the list: its local hour, then its queue (none first)."""
    return row.hour.isoformat(), row.queue or ""


def _hour_cursor(raw: str | None) -> tuple[str, str] | None:
    """The place of the last row of the page before (`hour|queue`, as `next` gave it)."""
    if not raw:
        return None
    hour, sep, queue = raw.partition("|")
    try:
        datetime.fromisoformat(hour)
    except ValueError as exc:
        raise BadRequest("bad_parameter", "cursor is not one this API gave") from exc
    if not sep:
        raise BadRequest("bad_parameter", "cursor is not one this API gave")
    return hour, queue


def setup(app: web.Application) -> None:
    """Add the missed-call routes."""
    app.router.add_get("/api/v1/missed-calls", list_missed_calls)
    app.router.add_post("/api/v1/missed-calls/{task_id}/reassign", reassign)
    app.router.add_post("/api/v1/missed-calls/{task_id}/outcome", outcome)
    app.router.add_get("/api/v1/reports/abandoned-calls", abandoned_report)


def _path(name: str) -> Json:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(*names: str) -> list[Json]:
    return [{"name": n, "in": "query", "schema": {"type": "string"}} for n in names]


OPENAPI_PATHS: Json = {
    "/api/v1/missed-calls": {"get": {
        "summary": "Call-back tasks: caller, attempts, first/last missed, assigned_to, status (a token "
                   "scoped to an organisation node: the tasks of its subtree's agents)",
        "parameters": _query("status", "agent_id", "cursor", "limit"),
        "responses": {"200": {"description": "{items, next}"}}}},
    "/api/v1/missed-calls/{task_id}/reassign": {"post": {
        "summary": "Reassign a task by hand (dispatcher)", "parameters": [_path("task_id")],
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "properties": {"agent_id": {"type": "string"}}}}}},
        "responses": {"200": {"description": "assigned"},
                      "409": {"description": "not_allowed: task closed; agent_not_present: the agent "
                                             "is not online or busy"},
                      "400": {"description": "unknown_assignee: no such agent in the agents' register"},
                      "403": {"description": "role, or (scoped token) an agent outside its subtree"},
                      "404": {"description": "(scoped token) a task outside its subtree"}}}},
    "/api/v1/missed-calls/{task_id}/outcome": {"post": {
        "summary": "Record a call-back try: reached / no_answer / wrong_number (3 tries at most)",
        "parameters": [_path("task_id")],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
            "outcome": {"type": "string", "enum": ["reached", "no_answer", "wrong_number"]},
            "note": {"type": "string"}}}}}},
        "responses": {"200": {"description": "recorded"}, "409": {"description": "task closed"},
                      "404": {"description": "(scoped token) a task outside its subtree"}}}},
    "/api/v1/reports/abandoned-calls": {"get": {
        "summary": "Abandoned calls (呼损) per queue and hour, local to `tz` (an IANA zone, default "
                   "Asia/Shanghai) (the whole hotline: 403 to a scoped token)",
        "parameters": _query("from", "to", "queue", "tz"),
        "responses": {"200": {"description": "{items: [{queue, hour, calls, abandoned, abandon_rate}]}"}}}},
}
