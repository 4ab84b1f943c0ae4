"""The dispatcher console: `GET /`, its static files, and the read endpoints only it needs.

- `GET /` - the console page (plain HTML + ES modules + CSS, no build step);
- `GET /console/...` - its static files, served from `gateway/static/console/`;
- `GET /api/v1/me` - the caller's role and subject;
- `GET /api/v1/districts` - district polygons from `ref_districts` as GeoJSON;
- `GET /api/v1/kpis?hours=` - the center's measures from the read models that exist; for a token
  scoped to an organisation node the case measures and open call-backs are its subtree's, the call
  measures the hotline's (calls reach the city's queues, not a level).
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
from aiohttp import web

from dispatch.cases.read_model import first_contact, open_lights
from dispatch.core.messages import Json
from dispatch.gis.reference import districts as all_districts
from dispatch.missed_calls.read_model import abandoned_per_hour, answering_since, open_task_count
from gateway.auth import require
from gateway.http import BadRequest, is_count, json_response
from gateway.privacy import sees_personal_data
from gateway.services import SERVICES
from gateway.views.org import scope_of

STATIC = Path(__file__).parent.parent / "static" / "console"
VIEWERS = ("agent", "dispatcher", "unit", "auditor")
KPI_READERS = ("agent", "dispatcher", "auditor")
TARGETS = {"answer_rate": 0.95, "average_wait_s": 60, "first_contact_resolution": 0.85}
"""The center's targets (DOMAIN.md, "Measures")."""
MAX_HOURS = 168


async def index(request: web.Request) -> web.Response:
    """`GET /`: the console page; it asks for a token itself (or takes `?token=`)."""
    tiles = request.app[SERVICES].settings.console.map_tiles
    page = (STATIC / "index.html").read_text("utf-8").replace("{{TILES}}", html.escape(tiles, quote=True))
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def me(request: web.Request) -> web.Response:
    """`GET /api/v1/me`: the caller's role and subject (the console adapts to them)."""
    who = require(request, "channel", *VIEWERS)
    found: Json = {"role": who.role, "subject": who.subject, "sees_personal_data": sees_personal_data(who)}
    if who.org is not None:
        found["org"] = who.org  # the organisation node a scoped token works for
        found["scoped"] = await scope_of(request, who) is not None  # below the city: sees a subtree
    return json_response(found)


async def districts(request: web.Request) -> web.Response:
    """`GET /api/v1/districts`: every district polygon as a GeoJSON FeatureCollection."""
    require(request, *VIEWERS)
    async with request.app[SERVICES].pool.acquire() as conn:
        rows = await all_districts(conn)
    features = [{
        "type": "Feature",
        "id": row.adcode,
        "properties": {"adcode": row.adcode, "name": row.name, "city": row.props.get("city"),
                       "province": row.props.get("province")},
        "geometry": row.geometry,
    } for row in rows]
    return json_response({"type": "FeatureCollection", "features": features},
                         headers={"Cache-Control": "private, max-age=60"})


def _hours(request: web.Request) -> int:
    raw = request.query.get("hours", "24")
    if not is_count(raw) or not 1 <= int(raw) <= MAX_HOURS:
        raise BadRequest("bad_parameter", f"hours must be an integer from 1 to {MAX_HOURS}")
    return int(raw)


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
        ["calls", "missed_calls", "cases"])
    return {row["name"] for row in rows}


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


async def _call_kpis(conn: asyncpg.Connection, since: datetime, now: datetime) -> Json:
    calls = await answering_since(conn, since)
    hours = await abandoned_per_hour(conn, max(since, now - timedelta(hours=23)), now)
    return {
        "answer_rate": {"value": _ratio(calls.answered, calls.offered),
                        "target": TARGETS["answer_rate"], "offered": calls.offered},
        "average_wait_s": {"value": None if calls.wait is None else round(calls.wait, 1),
                           "target": TARGETS["average_wait_s"]},
        "abandoned_per_hour": {"value": hours[-1][1] if hours else 0,
                               "total": sum(n for _, n in hours),
                               "series": [{"hour": hour, "count": n} for hour, n in hours]},
    }


async def _case_kpis(conn: asyncpg.Connection, since: datetime, scope: frozenset[str] | None) -> Json:
    lights = await open_lights(conn, scope)
    fcr = await first_contact(conn, since, scope)
    return {
        "cases_by_light": {"value": sum(lights.values()), "series": lights},
        "first_contact_resolution": {"value": _ratio(fcr.single, fcr.cases),
                                     "target": TARGETS["first_contact_resolution"],
                                     "cases": fcr.cases},
    }


async def kpis(request: web.Request) -> web.Response:
    """`GET /api/v1/kpis`: answer rate, abandoned calls per hour, average wait, lights, FCR."""
    who = require(request, *KPI_READERS)
    hours = _hours(request)
    scope = await scope_of(request, who)
    services = request.app[SERVICES]
    now = services.clock.now()
    since = now - timedelta(hours=hours)
    found: Json = {}
    async with services.pool.acquire() as conn:
        tables = await _tables(conn)
        if "calls" in tables:
            found.update(await _call_kpis(conn, since, now))
        if "cases" in tables:
            found.update(await _case_kpis(conn, since, scope))
        if "missed_calls" in tables:
            found["open_missed_calls"] = {"value": await open_task_count(conn, scope)}
    return json_response({"at": now, "window_hours": hours, "sources": sorted(tables), "kpis": found})


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/", index)
    app.router.add_static("/console/", STATIC, append_version=False)
    app.router.add_get("/api/v1/me", me)
    app.router.add_get("/api/v1/districts", districts)
    app.router.add_get("/api/v1/kpis", kpis)


_NO_AUTH: list[dict[str, list[str]]] = []
OPENAPI_PATHS: Json = {
    "/": {"get": {"summary": "The dispatcher console (HTML); `?token=` signs the browser in",
                  "security": _NO_AUTH, "responses": {"200": {"description": "text/html"}}}},
    "/api/v1/me": {"get": {"summary": "The caller's role and subject", "responses": {"200": {
        "description": "`{role, subject, sees_personal_data}` and, for a token scoped to an "
                       "organisation node, `org` and `scoped` (true below the city: it sees a subtree)"}}}},
    "/api/v1/districts": {"get": {
        "summary": "District polygons (WGS84) as a GeoJSON FeatureCollection",
        "responses": {"200": {"description": "FeatureCollection; properties adcode, name, city"}}}},
    "/api/v1/kpis": {"get": {
        "summary": "Answer rate, abandoned calls per hour, average wait, open cases by light, "
                   "first-contact resolution, open missed calls; a measure whose read model is "
                   "not there is left out (see `sources`)",
        "parameters": [{"name": "hours", "in": "query", "schema": {"type": "integer", "default": 24}}],
        "responses": {"200": {"description": "`{at, window_hours, sources, kpis}`"}}}},
}
