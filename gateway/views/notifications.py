"""Outbound notifications and their delivery state over HTTP."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from dispatch.cases.read_model import assignees
from dispatch.core.messages import Json
from dispatch.notify.outbox import list_outbox
from gateway.auth import require
from gateway.http import BadRequest, is_count, json_response, limit_param, page
from gateway.privacy import mask_value, sees_personal_data
from gateway.services import SERVICES
from gateway.views.org import scope_of


def _cursor(raw: str | None) -> int:
    if not raw:
        return 0
    if not is_count(raw):
        raise BadRequest("bad_parameter", "cursor is not one this API gave")
    return int(raw)


async def list_notifications(request: web.Request) -> web.Response:
    """`GET /api/v1/notifications?case_id=&status=&cursor=&limit=`.

    A unit sees numbers and texts only of its own cases' notifications; elsewhere
    every field is masked (`gateway.privacy.mask_value`: the number in `to`,
    `dedup_key`, `provider_id` and `last_error` keeps its last four digits, the text is hidden).
    A token scoped to an organisation node lists the notifications of its subtree's cases only
    (none of a case outside it, none without a case).
    """
    who = require(request, "agent", "dispatcher", "auditor", "unit")
    limit = limit_param(request)
    async with request.app[SERVICES].pool.acquire() as conn:
        rows = await list_outbox(conn, request.query.get("case_id") or None,
                                 request.query.get("status") or None,
                                 _cursor(request.query.get("cursor")), limit, await scope_of(request, who))
        owners = await assignees(conn, {r.case_id for r in rows if r.case_id})
    items: list[Json] = []
    for row in rows:
        item: dict[str, Any] = asdict(row)
        item["to"] = item.pop("to_addr")
        item["text"] = item.pop("body")
        full = sees_personal_data(who, assigned_to=owners.get(row.case_id or ""))
        items.append(item if full else mask_value("notification", item))
    return json_response(page(items, str(rows[-1].id) if len(rows) == limit else None))


def setup(app: web.Application) -> None:
    """Add the notification routes."""
    app.router.add_get("/api/v1/notifications", list_notifications)


OPENAPI_PATHS: Json = {
    "/api/v1/notifications": {"get": {
        "summary": "Outbound SMS / WeChat messages and their delivery state (a token scoped to an "
                   "organisation node: those of its subtree's cases)",
        "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                       for n in ("case_id", "status", "cursor", "limit")],
        "responses": {"200": {"description": "{items, next}"}}}},
}
