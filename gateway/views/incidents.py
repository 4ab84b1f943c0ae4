"""Incidents (storm view): list, one incident, record its cause, resolve it.

A token scoped to an organisation node sees the incidents with a case in its subtree (another's
answers 404) and may record a cause or resolve only those whose cases its subtree holds (403).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from aiohttp import web

from dispatch.cases.registration import CATEGORIES
from dispatch.core.messages import Json
from dispatch.linking.incidents import ResolveIncident, SetIncidentCause, load_incident
from dispatch.linking.read_model import list_incidents as incidents_of
from gateway.auth import Principal, require
from gateway.http import BadRequest, choice_param, field, instant, json_response, limit_param, page, read_json
from gateway.privacy import mask_value, sees_personal_data
from gateway.services import SERVICES
from gateway.views.org import check_group, scope_of

READERS = ("agent", "dispatcher", "auditor", "unit")
STATUSES = ("open", "resolved", "merged")


def _visible(who: Principal, incident: Json) -> Json:
    """An incident as this caller may see it: a unit gets its point coarsened (and any number masked)."""
    return incident if sees_personal_data(who) else dict(mask_value("incident", incident))


def _cursor(raw: str | None) -> tuple[datetime, str] | None:
    if not raw:
        return None
    at, _, incident_id = raw.partition("|")
    try:
        return datetime.fromisoformat(at), incident_id
    except ValueError as exc:
        raise BadRequest("bad_parameter", "cursor is malformed") from exc


async def list_incidents(request: web.Request) -> web.Response:
    """`GET /api/v1/incidents?status=&district=&category=`: newest first, list envelope."""
    who = require(request, *READERS)
    limit = limit_param(request)
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest("bad_parameter", f"status must be one of {', '.join(STATUSES)}")
    category = choice_param(request, "category", CATEGORIES)
    async with request.app[SERVICES].pool.acquire() as conn:
        rows = await incidents_of(
            conn, status=status, district=request.query.get("district") or None,
            category=category,
            before=_cursor(request.query.get("cursor")), limit=limit + 1, scope=await scope_of(request, who))
    items = [_visible(who, asdict(r)) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    cursor = f"{last.opened_at.isoformat()}|{last.incident_id}" if last else None
    return json_response(page(items, cursor))


async def get_incident(request: web.Request) -> web.Response:
    """`GET /api/v1/incidents/{incident_id}`: the incident folded from its stream."""
    who = require(request, *READERS)
    state = await load_incident(request.app[SERVICES].store, request.match_info["incident_id"])
    await check_incident(request, who, state.incident_id, state.case_ids)
    return json_response(_visible(who, state.as_json()))


async def check_incident(request: web.Request, who: Principal, incident_id: str, case_ids: list[str],
                         *, holding: bool = False) -> None:
    """An incident is within a scoped caller's subtree when one of its cases is (else 404, as an
    unknown one); acting on it (`holding`) needs every one of its cases held there (else 403)."""
    scope = await scope_of(request, who)
    if scope is None:
        return
    rows = await request.app[SERVICES].pool.fetch(
        "SELECT owner, assigned_to FROM cases WHERE case_id = ANY($1::text[])", case_ids)
    check_group(f"incident {incident_id}", [(r["owner"], r["assigned_to"]) for r in rows], scope,
                holding=holding)


async def _may_act(request: web.Request, who: Principal) -> None:
    incident_id = request.match_info["incident_id"]
    if who.org is not None:
        state = await load_incident(request.app[SERVICES].store, incident_id)
        await check_incident(request, who, incident_id, state.case_ids, holding=True)


def _instant(body: Json, name: str) -> datetime:
    raw: str = field(body, name, str)
    return instant(raw, name)


async def set_cause(request: web.Request) -> web.Response:
    """`POST /api/v1/incidents/{id}/cause {cause, expected_restoration_at, expected_version?}`."""
    who = require(request, "dispatcher")
    await _may_act(request, who)
    body = await read_json(request)
    services = request.app[SERVICES]
    state = await services.bus.handle(SetIncidentCause(
        request.match_info["incident_id"], field(body, "cause", str),
        _instant(body, "expected_restoration_at"),
        field(body, "expected_version", int, required=False), who.actor,
    ))
    return json_response(state.as_json())


async def resolve(request: web.Request) -> web.Response:
    """`POST /api/v1/incidents/{id}/resolve {note?, expected_version?}`."""
    who = require(request, "dispatcher")
    await _may_act(request, who)
    body = await read_json(request)
    state = await request.app[SERVICES].bus.handle(ResolveIncident(
        request.match_info["incident_id"], field(body, "note", str, required=False) or "",
        field(body, "expected_version", int, required=False), who.actor,
    ))
    return json_response(state.as_json())


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get("/api/v1/incidents/{incident_id}", get_incident)
    app.router.add_post("/api/v1/incidents/{incident_id}/cause", set_cause)
    app.router.add_post("/api/v1/incidents/{incident_id}/resolve", resolve)


def _op(summary: str, *, path_id: bool = False, body: Json | None = None,
        query: tuple[str, ...] = ()) -> Json:
    params = [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query]
    if path_id:
        params.append({"name": "incident_id", "in": "path", "required": True, "schema": {"type": "string"}})
    op: Json = {"summary": summary, "parameters": params, "responses": {
        "200": {"description": "incident, or list envelope {items, next}"},
        "400": {"description": "invalid input"}, "401": {"description": "no token"},
        "403": {"description": "role may not, or (scoped token) a case of it is held by another level"},
        "404": {"description": "no such incident, or none of its cases in a scoped token's subtree"},
        "409": {"description": "stale expected_version, or incident resolved or merged"}}}
    if body is not None:
        op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object", **body}}}}
    return op


OPENAPI_PATHS: Json = {
    "/api/v1/incidents": {"get": _op("Incidents: clusters of linked cases (storm view)",
                                     query=("status", "district", "category", "limit", "cursor"))},
    "/api/v1/incidents/{incident_id}": {"get": _op("One incident with all its cases", path_id=True)},
    "/api/v1/incidents/{incident_id}/cause": {"post": _op(
        "Record cause and expected restoration; each caller is told once per revision", path_id=True,
        body={"required": ["cause", "expected_restoration_at"], "properties": {
            "cause": {"type": "string"}, "expected_restoration_at": {"type": "string", "format": "date-time"},
            "expected_version": {"type": "integer"}}})},
    "/api/v1/incidents/{incident_id}/resolve": {"post": _op(
        "Resolve an incident", path_id=True,
        body={"properties": {"note": {"type": "string"}, "expected_version": {"type": "integer"}}})},
}
