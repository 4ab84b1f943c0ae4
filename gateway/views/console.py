"""The dispatcher console: `GET /`, its static files, and the read endpoints only it needs.

- `GET /` - the console page (plain HTML + ES modules + CSS, no build step);
- `GET /console/...` - its static files, served from `gateway/static/console/`;
- `GET /api/v1/me` - the caller's role and subject;
- `GET /api/v1/districts` - district polygons from `ref_districts` as GeoJSON;
- `GET /api/v1/kpis?hours=` - the center's measures from the read models that exist.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from gateway.auth import require, sees_personal_data
from gateway.http import BadRequest, json_response
from gateway.services import SERVICES

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
    return json_response({"role": who.role, "subject": who.subject,
                          "sees_personal_data": sees_personal_data(who)})


async def districts(request: web.Request) -> web.Response:
    """`GET /api/v1/districts`: every district polygon as a GeoJSON FeatureCollection."""
    require(request, *VIEWERS)
    async with request.app[SERVICES].pool.acquire() as conn:
        rows = await conn.fetch("SELECT adcode, name, geometry, props FROM ref_districts ORDER BY adcode")
    features = [{
        "type": "Feature",
        "id": row["adcode"],
        "properties": {"adcode": row["adcode"], "name": row["name"],
                       "city": (row["props"] or {}).get("city"),
                       "province": (row["props"] or {}).get("province")},
        "geometry": row["geometry"],
    } for row in rows]
    return json_response({"type": "FeatureCollection", "features": features},
                         headers={"Cache-Control": "private, max-age=60"})


def _hours(request: web.Request) -> int:
    raw = request.query.get("hours", "24")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_HOURS:
        raise BadRequest("bad_parameter", f"hours must be an integer from 1 to {MAX_HOURS}")
    return int(raw)


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
        ["calls", "missed_calls", "cases"])
    return {row["name"] for row in rows}


_CALLS_SQL = """
SELECT count(*) AS offered,
       count(answered_at) AS answered,
       avg(extract(epoch FROM answered_at - offered_at)) FILTER (WHERE answered_at IS NOT NULL) AS wait
FROM calls WHERE offered_at >= $1
"""
_ABANDONED_SQL = """
SELECT h AS hour, count(c.call_id) AS n
FROM generate_series(date_trunc('hour', $1::timestamptz), date_trunc('hour', $2::timestamptz),
                     interval '1 hour') AS h
LEFT JOIN calls c ON c.abandoned_at >= h AND c.abandoned_at < h + interval '1 hour'
GROUP BY h ORDER BY h
"""


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


async def _call_kpis(conn: asyncpg.Connection, since: datetime, now: datetime) -> dict[str, Any]:
    row = await conn.fetchrow(_CALLS_SQL, since)
    hours = await conn.fetch(_ABANDONED_SQL, max(since, now - timedelta(hours=23)), now)
    wait = row["wait"]
    return {
        "answer_rate": {"value": _ratio(row["answered"], row["offered"]),
                        "target": TARGETS["answer_rate"], "offered": row["offered"]},
        "average_wait_s": {"value": None if wait is None else round(float(wait), 1),
                           "target": TARGETS["average_wait_s"]},
        "abandoned_per_hour": {"value": hours[-1]["n"] if hours else 0,
                               "total": sum(h["n"] for h in hours),
                               "series": [{"hour": h["hour"], "count": h["n"]} for h in hours]},
    }


_LIGHTS_SQL = """
SELECT light, count(*) AS n FROM cases
WHERE status NOT IN ('completed', 'called_back', 'archived', 'closed') GROUP BY light
"""
_FCR_SQL = """
SELECT count(*) AS cases,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM cases o WHERE o.case_id <> c.case_id AND o.created_at >= $1
             AND o.caller_phone = c.caller_phone)) AS single
FROM cases c WHERE c.created_at >= $1 AND c.caller_phone IS NOT NULL
"""


async def _case_kpis(conn: asyncpg.Connection, since: datetime) -> dict[str, Any]:
    lights = {"green": 0, "yellow": 0, "red": 0}
    for row in await conn.fetch(_LIGHTS_SQL):
        lights[str(row["light"] or "green")] = row["n"]
    fcr = await conn.fetchrow(_FCR_SQL, since)
    return {
        "cases_by_light": {"value": sum(lights.values()), "series": lights},
        "first_contact_resolution": {"value": _ratio(fcr["single"], fcr["cases"]),
                                     "target": TARGETS["first_contact_resolution"],
                                     "cases": fcr["cases"]},
    }


async def kpis(request: web.Request) -> web.Response:
    """`GET /api/v1/kpis`: answer rate, abandoned calls per hour, average wait, lights, FCR."""
    require(request, *KPI_READERS)
    hours = _hours(request)
    services = request.app[SERVICES]
    now = services.clock.now()
    since = now - timedelta(hours=hours)
    found: dict[str, Any] = {}
    async with services.pool.acquire() as conn:
        tables = await _tables(conn)
        if "calls" in tables:
            found.update(await _call_kpis(conn, since, now))
        if "cases" in tables:
            found.update(await _case_kpis(conn, since))
        if "missed_calls" in tables:
            open_tasks = await conn.fetchval("SELECT count(*) FROM missed_calls WHERE status = 'open'")
            found["open_missed_calls"] = {"value": open_tasks}
    return json_response({"at": now, "window_hours": hours, "sources": sorted(tables), "kpis": found})


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/", index)
    app.router.add_static("/console/", STATIC, append_version=False)
    app.router.add_get("/api/v1/me", me)
    app.router.add_get("/api/v1/districts", districts)
    app.router.add_get("/api/v1/kpis", kpis)


_NO_AUTH: list[dict[str, list[str]]] = []
OPENAPI_PATHS: dict[str, Any] = {
    "/": {"get": {"summary": "The dispatcher console (HTML); `?token=` signs the browser in",
                  "security": _NO_AUTH, "responses": {"200": {"description": "text/html"}}}},
    "/api/v1/me": {"get": {"summary": "The caller's role and subject",
                           "responses": {"200": {"description": "`{role, subject, sees_personal_data}`"}}}},
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
