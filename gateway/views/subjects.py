"""`POST /api/v1/subjects/{subject}/erase` (admin): erase a data subject (PIPL Art. 47);
`GET /api/v1/subjects/{subject}/export` (admin, auditor): subject access (PIPL Art. 45).

The subject is a phone number (any format), `openid:...`, `elder:...`,
`device:...` or `email:...`; the body says why: `{reason, legal_basis}` (`request`,
`retention`, `consent_withdrawn`, `purpose_fulfilled`, `order`). Answers what
was done: the erasure id (its `PersonalDataErased` event is in stream
`erasure-<id>`), how many identifiers and keys, and the cases whose personal
fields now read as erased. The same as `intake erase`. While a case of the person is on legal
hold, only `legal_basis` `order` erases: any other answers 409 `legal_hold` with the held
`case_ids`. The export is the same as `intake export-subject` (`dispatch/personal/access.py`);
each export is kept in the access record (`access_log`, via `api:subject-export`).
"""

from __future__ import annotations

from aiohttp import web

from dispatch.core.messages import Json
from dispatch.personal.access import export_subject
from dispatch.personal.erasure import LEGAL_BASES, MAX_TEXT, EraseSubject
from dispatch.personal.hold import LegalHoldActive
from gateway.auth import require
from gateway.erasure import erase
from gateway.http import json_response, read_json
from gateway.services import SERVICES


async def erase_subject(request: web.Request) -> web.Response:
    """Erase everything held about one person; 200 with what was done."""
    who = require(request, "admin")
    body = await read_json(request)
    cmd = EraseSubject(subject=request.match_info["subject"], reason=str(body.get("reason") or ""),
                       legal_basis=str(body.get("legal_basis") or ""), actor=who.actor)
    try:
        done = await erase(request.app[SERVICES], cmd)
    except LegalHoldActive as exc:
        error = {"code": exc.code, "message": str(exc), "case_ids": list(exc.case_ids)}
        return json_response({"error": error}, 409)
    return json_response({"erasure_id": done.erasure_id, "identifiers": done.subjects, "keys": done.keys,
                          "case_ids": list(done.case_ids)})


async def export(request: web.Request) -> web.Response:
    """Everything held about one person, as JSON."""
    who = require(request, "admin", "auditor")
    services = request.app[SERVICES]
    async with services.pool.acquire() as conn:
        found = await export_subject(conn, request.match_info["subject"], services.clock.now())
    # a whole person's data read at once: kept in the access record (who, when; never whom)
    await services.access.record(who.actor, "api:subject-export", services.clock.now())
    return json_response(found)


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_post("/api/v1/subjects/{subject}/erase", erase_subject)
    app.router.add_get("/api/v1/subjects/{subject}/export", export)


OPENAPI_PATHS: Json = {
    "/api/v1/subjects/{subject}/erase": {"post": {
        "summary": "Erase a data subject: delete its keys, scrub the read models (admin)",
        "parameters": [{"name": "subject", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "a phone number, or openid:..., elder:..., device:..., email:..."}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["reason", "legal_basis"],
            "properties": {"reason": {"type": "string", "maxLength": MAX_TEXT},
                           "legal_basis": {"type": "string", "enum": list(LEGAL_BASES)}}}}}},
        "responses": {"200": {"description": "erased: erasure_id, identifiers, keys, case_ids"},
                      "400": {"description": "not a subject, or no reason / legal basis"},
                      "401": {"description": "no or unknown token"},
                      "403": {"description": "not an admin"},
                      "409": {"description": "legal_hold: cases of the person are on legal hold "
                                             "(case_ids); only legal_basis order erases them"}}}},
    "/api/v1/subjects/{subject}/export": {"get": {
        "summary": "Subject access: everything held about one person, as read (admin, auditor)",
        "parameters": [{"name": "subject", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "a phone number, or openid:..., elder:..., device:..., email:..."}],
        "responses": {"200": {"description": "subject, identifiers, keys, erasures, cases (view, events), "
                                             "streams, caller_cards, registry"},
                      "400": {"description": "not a subject"},
                      "401": {"description": "no or unknown token"},
                      "403": {"description": "not an admin or auditor"}}}},
}
