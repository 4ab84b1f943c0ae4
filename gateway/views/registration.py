"""What the agent's registration form asks the API while a call is taken, and the calls of a case:

- `GET /api/v1/cases/form`: the form's rules (`gateway.intake_form`);
- `GET /api/v1/cases/candidates?category=&phone=&lat=&lon=&crs=`: the open cases the new one
  would be linked with (same caller, same place), by the linking policy's own rules;
- `GET /api/v1/places/match?text=`: where the gazetteer places an address text;
- `GET /api/v1/cases/{case_id}/calls`: the case's calls with a link to each recording built from
  `INTAKE_RECORDING_URL`.

A token scoped to an organisation node gets only its subtree's cases as candidates, and the calls
of a case it sees (404 outside, as `GET /api/v1/cases/{case_id}`).

Its routes are added before `cases`' (`/api/v1/cases/{case_id}` would take `form` and
`candidates` for case numbers).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from dispatch.cases.read_model import cases_by_id, in_scope
from dispatch.cases.registration import CATEGORIES
from dispatch.cases.state import load_case
from dispatch.core.errors import DispatchError
from dispatch.core.messages import Json
from dispatch.core.phone import normalise_phone
from dispatch.gis.geo import geodesic_m, to_wgs84
from dispatch.intake.calls import recording_url
from dispatch.linking.clustering import CaseSketch
from dispatch.linking.policy import PgCandidates, likely_duplicates
from dispatch.missed_calls.read_model import calls_of_case
from dispatch.places.gazetteer import PlaceMatch
from dispatch.places.locate import GazetteerCache, location_of
from gateway.auth import require
from gateway.http import BadRequest, json_response, page
from gateway.intake_form import form_rules
from gateway.privacy import sees_personal_data
from gateway.services import SERVICES
from gateway.views.cases import CENTER, case_view
from gateway.views.org import check_case, scope_of


class _Gazetteer:
    """The gazetteer matcher of this process, made on first use (the pool comes with the services)."""

    cache: GazetteerCache | None = None


GAZETTEER = web.AppKey("registration_gazetteer", _Gazetteer)
MAX_CANDIDATES = 10
MAX_TEXT = 200


async def rules(request: web.Request) -> web.Response:
    """`GET /api/v1/cases/form`: categories, the fields each asks for, required ones, choices."""
    require(request, *CENTER)
    return json_response(form_rules())


def _number(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise BadRequest("bad_parameter", f"{name} must be a number") from exc


def _sketch(request: web.Request, now: object) -> CaseSketch:
    category = request.query.get("category", "").strip()
    if not category:
        raise BadRequest("missing_parameter", "category is required (links never cross categories)")
    if category not in CATEGORIES:
        raise BadRequest("bad_parameter", f"category must be one of {', '.join(CATEGORIES)}")
    phone = request.query.get("phone", "").strip() or None
    lat, lon = _number(request, "lat"), _number(request, "lon")
    if (lat is None) != (lon is None):
        raise BadRequest("bad_parameter", "give both lat and lon, or neither")
    try:
        phone = normalise_phone(phone) if phone else None
        if lat is not None and lon is not None:
            lat, lon = to_wgs84(lat, lon, request.query.get("crs") or None)
    except DispatchError as exc:
        raise BadRequest("bad_parameter", str(exc)) from exc
    return CaseSketch("", category, now, lat, lon, None, phone)  # type: ignore[arg-type]


async def candidates(request: web.Request) -> web.Response:
    """`GET /api/v1/cases/candidates`: open cases of the category from the same caller or near the
    place (within the linking windows), best first, each with why and how far."""
    who = require(request, *CENTER)
    services = request.app[SERVICES]
    now = services.clock.now()
    sketch = _sketch(request, now)
    params = services.settings.linking
    matches = (await likely_duplicates(PgCandidates(services.pool, params), sketch, params))[:MAX_CANDIDATES]
    found = await cases_by_id(services.pool, now, [m.case_id for m in matches])
    scope = await scope_of(request, who)
    items = []
    for m in matches:
        if m.case_id not in found or not in_scope(scope, found[m.case_id][0].owner,
                                                  found[m.case_id][0].assigned_to):
            continue  # a scoped token is shown its subtree's cases only
        state, light = found[m.case_id]
        view = case_view(state, light, who, now)
        where = state.location
        distance = (round(geodesic_m(sketch.lat, sketch.lon, where.lat, where.lon), 1)
                    if where is not None and sketch.lat is not None and sketch.lon is not None else None)
        items.append({"reason": m.reason, "score": m.score, "distance_m": distance, "case": view})
    return json_response(page(items, None))


def _place(match: PlaceMatch, names: dict[str, str]) -> Json:
    where, place = location_of(match, names)
    return {"place_id": place.id, "name": place.name, "type": place.type, "score": place.score,
            "matched": place.text, "lat": where.lat, "lon": where.lon, "district": where.district,
            "district_name": where.district_name}


async def match_place(request: web.Request) -> web.Response:
    """`GET /api/v1/places/match?text=`: the place the gazetteer locates the text at (null when it
    finds none, or several equally good), and the best-scoring places for the agent to choose."""
    require(request, *CENTER)
    text = request.query.get("text", "").strip()
    if not text:
        raise BadRequest("missing_parameter", "text is required")
    if len(text) > MAX_TEXT:
        raise BadRequest("bad_parameter", f"text must be at most {MAX_TEXT} characters")
    holder = request.app[GAZETTEER]
    if holder.cache is None:
        holder.cache = GazetteerCache(request.app[SERVICES].pool)
    cache = holder.cache
    gazetteer = await cache.current()
    if gazetteer is None:
        return json_response({"match": None, "alternatives": []})
    match = await asyncio.to_thread(gazetteer.locate, text)
    scored = await asyncio.to_thread(gazetteer.scores, text)
    seen = {match.entry.id} if match else set()
    alternatives: list[Json] = []
    for other in scored:
        if other.entry.id not in seen and len(alternatives) < 3:
            seen.add(other.entry.id)
            alternatives.append(_place(other, cache.district_names))
    return json_response({"match": _place(match, cache.district_names) if match else None,
                          "alternatives": alternatives})


async def case_calls(request: web.Request) -> web.Response:
    """`GET /api/v1/cases/{case_id}/calls`: the calls of a case, oldest first, each with its recording's
    link (`INTAKE_RECORDING_URL`; null without one)."""
    who = require(request, *CENTER, "unit")
    services = request.app[SERVICES]
    state = await load_case(services.store, request.match_info["case_id"])
    check_case(state, await scope_of(request, who))
    if not sees_personal_data(who, assigned_to=state.assigned_to):
        raise web.HTTPForbidden(reason="Forbidden")
    template = services.settings.console.recording_url
    calls = await calls_of_case(services.pool, state.case_id, [state.call_id] if state.call_id else [])
    return json_response(page([{
        "call_id": c.call_id, "caller": c.caller, "queue": c.queue, "agent": c.agent, "status": c.status,
        "offered_at": c.offered_at, "answered_at": c.answered_at, "ended_at": c.ended_at,
        "recording": c.recording, "recording_url": recording_url(template, c.call_id, c.recording),
    } for c in calls], None))


def setup(app: web.Application) -> None:
    """Add the routes (before `cases`' `/api/v1/cases/{case_id}`)."""
    app[GAZETTEER] = _Gazetteer()
    app.router.add_get("/api/v1/cases/form", rules)
    app.router.add_get("/api/v1/cases/candidates", candidates)
    app.router.add_get("/api/v1/places/match", match_place)
    app.router.add_get("/api/v1/cases/{case_id}/calls", case_calls)


def _op(summary: str, params: tuple[str, ...] = (), path: tuple[str, ...] = (),
        required: tuple[str, ...] = ()) -> Json:
    return {"summary": summary,
            "parameters": [{"name": p, "in": "path" if p in path else "query",
                            "required": p in path or p in required,
                            "schema": {"type": "string",
                                       **({"enum": list(CATEGORIES)} if p == "category" else {})}}
                           for p in (*path, *params)],
            "responses": {"200": {"description": "JSON"}, "400": {"description": "invalid parameter"},
                          "401": {"description": "no token"}, "403": {"description": "role may not"}}}


OPENAPI_PATHS: Json = {
    "/api/v1/cases/form": {"get": _op(
        "The registration form's rules (agent, dispatcher): categories, default priority, the fields "
        "each category asks for (`fields`), those it must carry (`required`, as POST /api/v1/cases "
        "enforces them) and the choices offered (`choices`)")},
    "/api/v1/cases/candidates": {"get": _op(
        "Duplicate candidates before registering (agent, dispatcher): open cases of `category` from the "
        "same caller (`phone`, any format) or near `lat`/`lon` (`crs` wgs84|gcj02|bd09) within the "
        "linking windows; items `{reason: same_caller|same_place, score, distance_m, case}`, best first",
        ("category", "phone", "lat", "lon", "crs"), required=("category",))},
    "/api/v1/places/match": {"get": _op(
        "Locate an address text with the gazetteer (agent, dispatcher): `{match, alternatives}`, each "
        "`{place_id, name, type, score, matched, lat, lon, district, district_name}`; match null when "
        "no place, or no single place, fits", ("text",), required=("text",))},
    "/api/v1/cases/{case_id}/calls": {"get": _op(
        "The calls of a case (the one it was registered from, `call_id`, and calls linked to it), oldest "
        "first, with `recording_url` from INTAKE_RECORDING_URL (null when unset); agents, dispatchers, "
        "the assigned unit", path=("case_id",))},
}
