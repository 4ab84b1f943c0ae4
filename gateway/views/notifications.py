"""Outbound notifications and their delivery state over HTTP."""

from __future__ import annotations

from aiohttp import web

from dispatch.cases.registration import mask_phone
from dispatch.core.messages import Json
from gateway.auth import require, sees_personal_data
from gateway.http import BadRequest, json_response, limit_param, page
from gateway.services import SERVICES

_SQL = """SELECT id, dedup_key, case_id, channel, to_addr, body, reason, status, attempts,
        next_attempt_at, provider_id, last_error, created_at, updated_at
    FROM notification_outbox
    WHERE ($1::text IS NULL OR case_id = $1) AND ($2::text IS NULL OR status = $2) AND id > $3
    ORDER BY id LIMIT $4"""


def _cursor(raw: str | None) -> int:
    if not raw:
        return 0
    if not raw.isdigit():
        raise BadRequest("bad_parameter", "cursor is not one this API gave")
    return int(raw)


async def list_notifications(request: web.Request) -> web.Response:
    """`GET /api/v1/notifications?case_id=&status=&cursor=&limit=`."""
    who = require(request, "agent", "dispatcher", "auditor", "unit")
    limit = limit_param(request)
    async with request.app[SERVICES].pool.acquire() as conn:
        rows = await conn.fetch(_SQL, request.query.get("case_id") or None,
                                request.query.get("status") or None,
                                _cursor(request.query.get("cursor")), limit)
    full = sees_personal_data(who)
    items: list[Json] = []
    for row in rows:
        item = dict(row)
        item["to"] = item.pop("to_addr") if full else mask_phone(item.pop("to_addr"))
        item["text"] = item.pop("body")
        items.append(item)
    return json_response(page(items, str(rows[-1]["id"]) if len(rows) == limit else None))


def setup(app: web.Application) -> None:
    """Add the notification routes."""
    app.router.add_get("/api/v1/notifications", list_notifications)


OPENAPI_PATHS: Json = {
    "/api/v1/notifications": {"get": {
        "summary": "Outbound SMS / WeChat messages and their delivery state",
        "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                       for n in ("case_id", "status", "cursor", "limit")],
        "responses": {"200": {"description": "{items, next}"}}}},
}
