"""Reports: `GET /api/v1/reports/{name}?from=&to=&by=&group=&format=&lang=` and the map's heat map
`GET /api/v1/heatmap?from=&to=&category=` (dispatcher, admin, auditor).

`from` and `to` are local dates (Beijing time, both included; by default the current month
up to today); `by` is `day`, `week` (from Monday) or `month`; `group` one of the report's
groupings; `format` `json`, `csv` or `xlsx` (headers in the texts catalogue's language:
Simplified Chinese, or `INTAKE_LANGUAGE`, or `lang`).

A token scoped to an organisation node gets the rows of its subtree: grouped by `unit` its units,
by `district` the districts it serves, by `agent` its agents (agent reference data's `org`); the
case report grouped by `category`, `channel` or `all` sums the cases its subtree holds or is
dispatched (as its board shows them); the other groupings sum the whole hotline and answer 403
to it. Its heat map counts its cases.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

from aiohttp import web

from dispatch.cases.read_model import scope_sql
from dispatch.cases.registration import CATEGORIES
from dispatch.core.errors import NotFound
from dispatch.core.messages import Json
from dispatch.core.texts import LANGUAGES, LOCAL_TIME, Texts, texts_for
from dispatch.reports.definitions import PERIODS, REPORTS
from dispatch.reports.export import ReportTable, build, headers, to_csv, to_xlsx
from dispatch.reports.facts import ORG_GROUPS
from gateway.auth import Principal, require
from gateway.http import BadRequest, json_response
from gateway.services import SERVICES
from gateway.views.org import forbidden, reach_of, scope_of

READERS = ("dispatcher", "auditor")
FORMATS = ("json", "csv", "xlsx")
MAX_DAYS = 366
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PER_DEGREE = 100
"""Heat map cells are 1/100 degree on a side (about 1 km)."""


def _day(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        if len(raw) != 10 or not raw.isascii():
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequest(f"bad_{name}", f"{name} must be a date YYYY-MM-DD (Beijing time)") from exc
    if not 2000 <= day.year <= 2099:
        raise BadRequest(f"bad_{name}", f"{name} must lie in the years 2000-2099")
    return day


def date_range(request: web.Request, today: date) -> tuple[date, date]:
    """The `from` and `to` days asked for (400 `bad_from`, `bad_to` or `bad_range`)."""
    start = _day(request, "from", today.replace(day=1))
    end = _day(request, "to", today)
    if end < start:
        raise BadRequest("bad_range", "to must not be before from")
    if (end - start).days >= MAX_DAYS:
        raise BadRequest("bad_range", f"a report covers at most {MAX_DAYS} days")
    return start, end


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.query.get(name, default)
    if value not in allowed:
        raise BadRequest(f"bad_{name}", f"{name} must be one of {', '.join(allowed)}")
    return value


def _texts(request: web.Request) -> Texts:
    lang = request.query.get("lang")
    if lang is None:
        return request.app[SERVICES].texts
    if lang not in LANGUAGES:
        raise BadRequest("bad_parameter", f"lang must be one of {', '.join(LANGUAGES)}")
    return texts_for(lang)


def table_json(table: ReportTable, texts: Texts) -> Json:
    """The JSON answer of a report, with its column headers in the texts' language and the rate
    columns (`percent`: fractions of 1 that people read as percentages)."""
    return {"report": table.name, "group": table.group, "by": table.by, "from": table.start,
            "to": table.end, "columns": list(table.columns), "headers": headers(table, texts),
            "percent": list(REPORTS[table.name].percent), "items": table.items}


SCOPED_GROUPS = ("unit", "district", "agent")
"""The groupings whose rows belong to one part of the organisation (a scoped token's)."""


async def _rows_of(request: web.Request, who: Principal, name: str, group: str
                   ) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """What a caller may see of a report: the group keys (None: all) and the organisation nodes
    whose cases it sums (None: every case); 403 for a grouping of the whole hotline."""
    reach = await reach_of(request, who)
    if reach.everything:
        return None, None
    if group == "unit":
        return await reach.units(request), None
    if group == "district":
        return reach.districts, None
    if group == "agent":
        return await reach.agents(request), None
    if name == "cases" and group in ORG_GROUPS:
        return None, reach.nodes
    allowed = (*SCOPED_GROUPS, *ORG_GROUPS) if name == "cases" else SCOPED_GROUPS
    groups = ", ".join(g for g in allowed if g in REPORTS[name].groups)
    raise forbidden(f"grouped by {group}, this report sums the whole hotline; a token scoped to {who.org} "
                    + (f"may group it by {groups}" if groups else "may not read it (no grouping is its own)"))


async def get_report(request: web.Request) -> web.StreamResponse:
    """`GET /api/v1/reports/{name}`: one report as JSON, CSV or XLSX."""
    who = require(request, *READERS)
    name = request.match_info["name"]
    report = REPORTS.get(name)
    if report is None:
        raise NotFound(f"no report {name!r}; one of {', '.join(REPORTS)}")
    services = request.app[SERVICES]
    start, end = date_range(request, services.clock.now().astimezone(LOCAL_TIME).date())
    by = _choice(request, "by", PERIODS, "day")
    group = _choice(request, "group", report.groups, report.groups[0])
    fmt = _choice(request, "format", FORMATS, "json")
    texts = _texts(request)
    keys, nodes = await _rows_of(request, who, name, group)
    table = await build(services.pool, name, group, start, end, by, texts, nodes)
    if keys is not None:
        table = replace(table, items=[i for i in table.items if i["group"] in keys])
    if fmt == "json":
        return json_response(table_json(table, texts))
    filename = f"{name}-{group}-{by}-{start:%Y%m%d}-{end:%Y%m%d}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "csv":
        return web.Response(body=to_csv(table, texts), content_type="text/csv", charset="utf-8",
                            headers=headers)
    return web.Response(body=to_xlsx([table], texts), content_type=XLSX, headers=headers)


async def heatmap(request: web.Request) -> web.Response:
    """`GET /api/v1/heatmap?from=&to=&category=`: cases with a place accepted in the range, counted
    per cell of 1/`PER_DEGREE` degree (its centre) and category."""
    who = require(request, *READERS)
    services = request.app[SERVICES]
    start, end = date_range(request, services.clock.now().astimezone(LOCAL_TIME).date())
    category = request.query.get("category") or None
    if category is not None and category not in CATEGORIES:
        raise BadRequest("bad_category", f"category must be one of {', '.join(CATEGORIES)}")
    since = datetime.combine(start, time(), LOCAL_TIME)
    until = datetime.combine(end + timedelta(days=1), time(), LOCAL_TIME)
    args: list[object] = [since, until, category, PER_DEGREE]
    mine = scope_sql(await scope_of(request, who), args)
    rows = await services.pool.fetch(
        f"""SELECT category, floor(lat * $4) AS y, floor(lon * $4) AS x, count(*) AS n
           FROM cases WHERE accepted_at >= $1 AND accepted_at < $2 AND lat IS NOT NULL
             AND ($3::text IS NULL OR category = $3) AND {mine}
           GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3""", *args)
    cells = [{"category": r["category"], "lat": round((r["y"] + 0.5) / PER_DEGREE, 5),
              "lon": round((r["x"] + 0.5) / PER_DEGREE, 5), "count": r["n"]} for r in rows]
    return json_response({"from": start, "to": end, "category": category, "cell_degrees": 1 / PER_DEGREE,
                          "items": cells})


PAGE = Path(__file__).parent.parent / "static" / "console" / "reports.html"


async def reports_page(request: web.Request) -> web.FileResponse:
    """`GET /reports`: the console's reports page (signs in like `GET /`)."""
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/api/v1/reports/{name}", get_report)
    app.router.add_get("/api/v1/heatmap", heatmap)


def _param(name: str, values: tuple[str, ...] | None = None) -> Json:
    schema: Json = {"type": "string"}
    if values:
        schema["enum"] = list(values)
    return {"name": name, "in": "query", "schema": schema}


_NO_AUTH: list[dict[str, list[str]]] = []
OPENAPI_PATHS: Json = {
    "/reports": {"get": {"summary": "The console's reports page (HTML)", "security": _NO_AUTH,
                         "responses": {"200": {"description": "text/html"}}}},
    "/api/v1/reports/{name}": {"get": {
        "summary": "A report (" + ", ".join(REPORTS) + ") by day, week or month in Beijing time; "
                   "JSON, CSV or XLSX (dispatcher, admin, auditor)",
        "parameters": [{"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": list(REPORTS)}},
                       _param("from"), _param("to"), _param("by", PERIODS), _param("group"),
                       _param("format", FORMATS), _param("lang", LANGUAGES)],
        "responses": {"200": {"description": "`{report, group, by, from, to, columns, headers, items}` "
                                              "or the file"},
                      "400": {"description": "bad from, to, by, group, format or lang"},
                      "401": {"description": "no token"},
                      "403": {"description": "role may not, or a token scoped to an organisation node "
                                             "asked for a grouping other than unit, district, agent"},
                      "404": {"description": "no such report"}}}},
    "/api/v1/heatmap": {"get": {
        "summary": "Cases accepted in a period per map cell and category (the map's heat map; a token "
                   "scoped to an organisation node: its subtree's cases)",
        "parameters": [_param("from"), _param("to"), _param("category", tuple(CATEGORIES))],
        "responses": {"200": {"description": "`{from, to, category, cell_degrees, items}`"},
                      "400": {"description": "bad from, to or category"}}}},
}
