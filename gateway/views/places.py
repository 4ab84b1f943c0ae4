"""`POST /api/v1/cases/{case_id}/location`: an agent sets or corrects a case's place.

The body names a gazetteer place (`place_id`) or a point (`lat`, `lon`, `crs`
as everywhere), with the case's `expected_version`; the case records
`CaseLocated` with `source: agent` and answers its state (docs/gis-dispatch.md).
"""

from __future__ import annotations

from aiohttp import web

from dispatch.cases.events import MatchedPlace, Place
from dispatch.cases.state import load_case
from dispatch.core.errors import NotFound
from dispatch.core.messages import Json
from dispatch.gis.geo import to_wgs84
from dispatch.gis.reference import place
from dispatch.places.locate import LocateCase
from gateway.auth import require
from gateway.http import BadRequest, field, json_response, read_json
from gateway.services import SERVICES, Services
from gateway.views.cases import CENTER, fresh_view
from gateway.views.org import check_case, scope_of


async def _chosen(body: Json, services: Services) -> tuple[Place, MatchedPlace | None]:
    place_id = field(body, "place_id", str, required=False)
    if place_id is not None:
        row = await place(services.pool, place_id)
        if row is None:
            raise NotFound(f"no place {place_id!r} in the gazetteer")
        index = services.districts
        found = index.locate(row.lat, row.lon) if index is not None else None
        return (Place(row.lat, row.lon, row.district or (found.adcode if found else None),
                      found.name if found else None), MatchedPlace(row.id, row.name, row.type))
    if body.get("lat") is None or body.get("lon") is None:
        raise BadRequest("missing_field", "give place_id, or lat and lon")
    lat, lon = to_wgs84(field(body, "lat", (int, float)), field(body, "lon", (int, float)),
                        field(body, "crs", str, required=False))
    districts = services.districts
    found = districts.locate(lat, lon) if districts is not None else None
    return Place(lat, lon, found.adcode if found else None, found.name if found else None), None


async def correct_location(request: web.Request) -> web.Response:
    """Set the case's place from a gazetteer place or a point (agent, dispatcher)."""
    who = require(request, *CENTER)
    services = request.app[SERVICES]
    body = await read_json(request)
    scope = await scope_of(request, who)
    if scope is not None:
        check_case(await load_case(services.store, request.match_info["case_id"]), scope, holding=True)
    location, matched = await _chosen(body, services)
    state = await services.bus.handle(LocateCase(
        request.match_info["case_id"], location, "agent", matched,
        expected_version=field(body, "expected_version", int), actor=who.actor))
    return json_response(fresh_view(services, state, who))


def setup(app: web.Application) -> None:
    """Add the route (before the generic `/api/v1/cases/{case_id}/{action}`)."""
    app.router.add_post("/api/v1/cases/{case_id}/location", correct_location)


OPENAPI_PATHS: Json = {
    "/api/v1/cases/{case_id}/location": {"post": {
        "summary": "Set or correct a case's place (agent): {expected_version, place_id} or "
                   "{expected_version, lat, lon, crs?}; recorded as CaseLocated, source agent",
        "parameters": [{"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": {"description": "case state"}, "400": {"description": "invalid input"},
                      "404": {"description": "no such case or place"},
                      "409": {"description": "stale expected_version"}},
    }},
}
