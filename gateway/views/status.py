"""`GET /api/v1/status` (admin): the runners' partitions, their owners, checkpoints and lag.

The same as `intake status --json` (`eventstore/status.py`).
"""

from __future__ import annotations

from aiohttp import web

from dispatch.core.messages import Json
from eventstore.status import status as read_status
from gateway.auth import require
from gateway.http import json_response
from gateway.services import SERVICES


async def status(request: web.Request) -> web.Response:
    """Every worker process and every runner's partitions, now."""
    require(request, "admin")
    async with request.app[SERVICES].store.connection() as conn:
        found = await read_status(conn)
    return json_response(found.as_json())


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/api/v1/status", status)


OPENAPI_PATHS: Json = {
    "/api/v1/status": {"get": {
        "summary": "Runners' partitions, owner processes, checkpoints and lag (admin)",
        "responses": {"200": {"description": "workers and runners"},
                      "401": {"description": "no or unknown token"},
                      "403": {"description": "not an admin"}}}},
}
