"""Nearest providers: `GET /api/v1/providers/nearest?lat=&lon=&crs=&skill=&k=&available=&district=`.

With `category=` the suggestions for a case of that category: only providers with a
skill it needs (`dispatch.gis.skills`), best dispatch score first; none for a
category that is a unit's job.

Reads the live `ProviderIndexHolder` from `services.provider_index`; the
point's district comes from `services.districts` (a `DistrictIndex`) unless
`district=` is given; weights from `services.dispatch_weights` (defaults
otherwise).

A token scoped to an organisation node finds providers only for a point in a district its
subtree serves; where only its own crews work (the grid's branch), those crews; elsewhere none
(`Reach.providers_at`). It lists only its subtree's units (`Reach.units`).
"""

from __future__ import annotations

from aiohttp import web

from dispatch.cases.read_model import busy_loads
from dispatch.cases.registration import CATEGORIES
from dispatch.core.messages import Json
from dispatch.gis.geo import DistrictIndex, to_wgs84
from dispatch.gis.nearest import DispatchWeights, NearestQuery
from dispatch.gis.reference import district_names, units
from dispatch.gis.skills import in_any_district, need_of, suggestions
from gateway.auth import require
from gateway.http import BadRequest, error_response, json_response, page
from gateway.services import SERVICES
from gateway.views.org import reach_of

READERS = ("dispatcher", "agent")
MAX_K = 100


def _number(request: web.Request, name: str) -> float:
    raw = request.query.get(name)
    if raw is None:
        raise BadRequest("bad_parameter", f"{name} is required")
    try:
        return float(raw)
    except ValueError as exc:
        raise BadRequest("bad_parameter", f"{name} must be a number") from exc


def _k(request: web.Request) -> int:
    try:
        k = int(request.query.get("k", "10"))
    except ValueError as exc:
        raise BadRequest("bad_parameter", "k must be an integer") from exc
    if not 1 <= k <= MAX_K:
        raise BadRequest("bad_parameter", f"k must be between 1 and {MAX_K}")
    return k


def _available(request: web.Request) -> bool:
    raw = request.query.get("available", "true").lower()
    if raw not in {"true", "false", "1", "0"}:
        raise BadRequest("bad_parameter", "available must be true or false")
    return raw in {"true", "1"}


def parse_lookup(
    request: web.Request, districts: DistrictIndex | None
) -> tuple[NearestQuery, list[str | None]]:
    """The lookup the request asks for, in WGS84 (GCJ-02 / BD-09 converted first), and every
    district containing the point (two or more on a shared border; the one asked for with
    `district=`)."""
    lat, lon = to_wgs84(_number(request, "lat"), _number(request, "lon"), request.query.get("crs"))
    district = request.query.get("district") or None  # an empty field is no district
    around: list[str | None] = [] if district is None else [district]
    if district is None and districts is not None:
        around = [d.adcode for d in districts.locate_all(lat, lon)]
        district = around[0] if around else None
    available = _available(request)
    return NearestQuery(
        lat,
        lon,
        k=_k(request),
        skill=request.query.get("skill") or None,
        district=district,
        available_only=available,
        need_capacity=available,
    ), around


async def nearest(request: web.Request) -> web.Response:
    """The k nearest eligible providers, sorted by geodesic distance, with dispatch scores."""
    who = require(request, *READERS)
    services = request.app[SERVICES]
    query, around = parse_lookup(request, services.districts)
    reach = await reach_of(request, who)
    holder = services.provider_index
    if holder is None:
        return error_response(503, "index_unavailable", "the provider index is not loaded yet")
    weights = services.dispatch_weights or DispatchWeights()
    category = request.query.get("category")
    if category is not None and category not in CATEGORIES:
        raise BadRequest("bad_parameter", f"category must be one of {', '.join(CATEGORIES)}")
    mine = reach.providers_at(query.district)  # a scoped token: its districts' providers, or its crews
    none = mine == frozenset()
    need = need_of(category) if category is not None else None  # None with a category: a unit's job
    snapshot = holder.snapshot
    if category is None:
        found = [] if none else in_any_district(lambda q: snapshot.nearest(q, weights), query, around)
    elif none or need is None:
        found = []
    else:
        wanted = need
        found = in_any_district(lambda q: suggestions(snapshot, q, wanted, weights), query, around,
                                by_score=True)
    items = [c.as_dict() for c in found if mine is None or c.provider_id in mine]
    if category is None:
        return json_response(page(items, None))
    return json_response({**page(items, None), "needs": list(need.skills) if need is not None else []})

async def list_units(request: web.Request) -> web.Response:
    """`GET /api/v1/units`: every unit a case can be dispatched to, with its district's name and load."""
    who = require(request, *READERS)
    pool = request.app[SERVICES].pool
    mine = await (await reach_of(request, who)).units(request)
    names = await district_names(pool)
    loads = await busy_loads(pool)
    items = [{**u, "district_name": names.get(str(u["district"])) if u["district"] else None,
              "load": loads.get(str(u["id"]), 0)}
             for u in await units(pool) if mine is None or u["id"] in mine]
    return json_response(page(items, None))


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/api/v1/providers/nearest", nearest)
    app.router.add_get("/api/v1/units", list_units)


_ITEM: Json = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "distance_m": {"type": "number", "description": "geodesic distance on WGS84, metres"},
        "score": {"type": "number", "description": "a*km + b*skill gap + c*load/capacity; lower is better"},
        "skills": {"type": "array", "items": {"type": "string"}},
        "load": {"type": "integer"},
        "capacity": {"type": "integer"},
        "available": {"type": "boolean"},
        "lat": {"type": "number"},
        "lon": {"type": "number"},
        "district": {"type": "string", "nullable": True},
    },
}
OPENAPI_PATHS: Json = {
    "/api/v1/providers/nearest": {
        "get": {
            "summary": "The k nearest providers with the skill that are available, have capacity left "
            "and serve the point's district, sorted by geodesic distance. Roles: dispatcher, agent; "
            "a token scoped to an organisation node gets none for a point outside its districts.",
            "parameters": [
                {"name": "lat", "in": "query", "required": True, "schema": {"type": "number"}},
                {"name": "lon", "in": "query", "required": True, "schema": {"type": "number"}},
                {
                    "name": "crs",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["wgs84", "gcj02", "bd09"]},
                },
                {"name": "skill", "in": "query", "schema": {"type": "string"}},
                {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K}},
                {"name": "available", "in": "query", "schema": {"type": "boolean", "default": True}},
                {"name": "district", "in": "query", "schema": {"type": "string"}},
                {"name": "category", "in": "query", "schema": {"type": "string"},
                 "description": "suggestions for a case of this category: only providers with a skill "
                 "it needs (dispatch/gis/skills.py), best score first; none for a unit's category"},
            ],
            "responses": {
                "200": {
                    "description": "nearest providers",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "items": {"type": "array", "items": _ITEM},
                                    "next": {"type": "string", "nullable": True},
                                    "needs": {"type": "array", "items": {"type": "string"},
                                              "description": "with category: the skills it needs "
                                              "(any one); empty when it is a unit's job"},
                                },
                            }
                        }
                    },
                },
                "400": {"description": "bad coordinates, crs, k, available or category"},
                "401": {"description": "no token"},
                "403": {"description": "role may not read"},
                "503": {"description": "provider index not loaded"},
            },
        }
    },
}
OPENAPI_PATHS["/api/v1/units"] = {
    "get": {
        "summary": "Every unit (department) a case can be dispatched to, with its district and its "
        "open cases (load). Roles: dispatcher, agent; a token scoped to an organisation node: the "
        "units of its subtree and of the districts it serves.",
        "responses": {
            "200": {"description": "units", "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "items": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "name": {"type": "string"},
                        "department": {"type": "string", "nullable": True},
                        "district": {"type": "string", "nullable": True},
                        "district_name": {"type": "string", "nullable": True},
                        "load": {"type": "integer"}}}},
                    "next": {"type": "string", "nullable": True}}}}}},
            "401": {"description": "no token"},
            "403": {"description": "role may not read"},
        },
    }
}
