"""`POST /api/v1/subjects/{subject}/erase` (admin): erase a data subject (PIPL Art. 47).

The subject is a phone number (any format), `openid:...`, `elder:...` or
`device:...`; the body says why: `{reason, legal_basis}` (`request`,
`retention`, `consent_withdrawn`, `purpose_fulfilled`, `order`). Answers what
was done: the erasure id (its `PersonalDataErased` event is in stream
`erasure-<id>`), how many identifiers and keys, and the cases whose personal
fields now read as erased. The same as `intake erase`.
"""

from __future__ import annotations

from aiohttp import web

from dispatch.core.messages import Json
from dispatch.personal.erasure import LEGAL_BASES, MAX_TEXT, EraseSubject
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
    done = await erase(request.app[SERVICES], cmd)
    return json_response({"erasure_id": done.erasure_id, "identifiers": done.subjects, "keys": done.keys,
                          "case_ids": list(done.case_ids)})


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_post("/api/v1/subjects/{subject}/erase", erase_subject)


OPENAPI_PATHS: Json = {
    "/api/v1/subjects/{subject}/erase": {"post": {
        "summary": "Erase a data subject: delete its keys, scrub the read models (admin)",
        "parameters": [{"name": "subject", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "a phone number, or openid:..., elder:..., device:..."}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["reason", "legal_basis"],
            "properties": {"reason": {"type": "string", "maxLength": MAX_TEXT},
                           "legal_basis": {"type": "string", "enum": list(LEGAL_BASES)}}}}}},
        "responses": {"200": {"description": "erased: erasure_id, identifiers, keys, case_ids"},
                      "400": {"description": "not a subject, or no reason / legal basis"},
                      "401": {"description": "no or unknown token"},
                      "403": {"description": "not an admin"}}}},
}
