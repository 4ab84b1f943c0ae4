"""Who is calling (来电弹屏): the caller card, the customer registry and the blacklist queue.

- `GET /api/v1/callers/{phone}`: the card (`phone` in any format).
- `POST /api/v1/callers/{phone}/add-to-case` `{call_id, case_id}`: the call becomes a contact on the case.
- `PUT /api/v1/customers/{phone}` `{tier, reason, expires_at?}`: set a number's tier (dispatcher, admin).
- `GET /api/v1/customers?tier=`: registry entries with their harassment counters, most first.
- `GET /api/v1/harassment`: the separate queue of contacts made by blacklisted numbers.
"""

from __future__ import annotations

import re

from aiohttp import web

from dispatch.core.messages import Json
from dispatch.core.phone import normalise_phone
from dispatch.customers.card import blacklist_queue, caller_card, customers, elder_of_phone
from dispatch.customers.contacts import AddCallToCase, CallAdded
from dispatch.customers.registry import SETTABLE, TIERS, SetCustomerTier
from gateway.auth import require
from gateway.http import BadRequest, field, instant, json_response, limit_param, page, read_json
from gateway.services import SERVICES

_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
CARD_READERS = ("agent", "dispatcher", "auditor")
REGISTRARS = ("dispatcher",)
SUPERVISORS = ("dispatcher", "auditor")


def _phone(request: web.Request) -> str:
    return normalise_phone(request.match_info["phone"])


async def get_card(request: web.Request) -> web.Response:
    """`GET /api/v1/callers/{phone}`: the number's history across every channel and its tier."""
    require(request, *CARD_READERS)
    services = request.app[SERVICES]
    phone = _phone(request)
    return json_response(await caller_card(services.pool, phone, services.clock.now(),
                                           limit=min(limit_param(request), 100)))


async def add_to_case(request: web.Request) -> web.Response:
    """`POST /api/v1/callers/{phone}/add-to-case {call_id, case_id}`: record the call on the case."""
    who = require(request, "agent", "dispatcher")
    _phone(request)
    body = await read_json(request)
    ids = {name: str(field(body, name, str)) for name in ("case_id", "call_id")}
    for name, value in ids.items():
        if not _ID.match(value):
            raise BadRequest("bad_field", f"field {name!r} may hold only letters, digits and _ . : -")
    done = await request.app[SERVICES].bus.handle(AddCallToCase(ids["case_id"], ids["call_id"], who.actor))
    assert isinstance(done, CallAdded)
    return json_response({"case_id": done.case_id, "call_id": done.call_id, "version": done.version},
                         200 if done.duplicate else 201)


async def put_customer(request: web.Request) -> web.Response:
    """`PUT /api/v1/customers/{phone} {tier, reason, expires_at?}`: set (or clear) a number's tier."""
    who = require(request, *REGISTRARS)
    services = request.app[SERVICES]
    phone = _phone(request)
    body = await read_json(request)
    tier = str(field(body, "tier", str))
    if tier not in SETTABLE:
        raise BadRequest("bad_field", f"tier must be one of {', '.join(SETTABLE)}")
    raw_expiry = field(body, "expires_at", str, required=False)
    expires = instant(str(raw_expiry), "expires_at") if raw_expiry else None
    reason = str(field(body, "reason", str, required=False) or "")
    await services.bus.handle(SetCustomerTier(phone, tier, reason, who.actor, expires))
    # from the command, not the read model (which may lag): the tier holds now, being in the future
    elderly = tier == "none" and await elder_of_phone(services.pool, phone) is not None
    effective = tier if tier != "none" else ("elderly" if elderly else "none")
    return json_response({"phone": phone, "tier": tier, "reason": reason.strip(), "expires_at": expires,
                          "set_by": who.actor, "effective_tier": effective})


async def list_customers(request: web.Request) -> web.Response:
    """`GET /api/v1/customers?tier=`: registry entries, most contacts while blacklisted first."""
    require(request, *SUPERVISORS)
    services = request.app[SERVICES]
    tier = request.query.get("tier") or None
    if tier is not None and tier not in SETTABLE:
        raise BadRequest("bad_parameter", f"tier must be one of {', '.join(SETTABLE)}")
    return json_response(page(await customers(services.pool, services.clock.now(), tier,
                                              limit_param(request)), None))


async def harassment(request: web.Request) -> web.Response:
    """`GET /api/v1/harassment`: contacts made by blacklisted numbers, newest first."""
    require(request, *SUPERVISORS)
    return json_response(page(await blacklist_queue(request.app[SERVICES].pool, limit_param(request)), None))


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/api/v1/callers/{phone}", get_card)
    app.router.add_post("/api/v1/callers/{phone}/add-to-case", add_to_case)
    app.router.add_put("/api/v1/customers/{phone}", put_customer)
    app.router.add_get("/api/v1/customers", list_customers)
    app.router.add_get("/api/v1/harassment", harassment)


_PHONE = {"name": "phone", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "a phone number in any common format (+86 139 1234 5678, 139-1234-5678...)"}
_ERRORS = {"400": {"description": "not a phone number, or a bad field"}, "401": {"description": "no token"},
           "403": {"description": "role"}}
OPENAPI_PATHS: Json = {
    "/api/v1/callers/{phone}": {"get": {
        "summary": "The caller card: {phone, tier, customer, elder, cases (open first, then newest), calls, "
                   "missed_calls, messages (SMS, WeChat via a known OpenID link)}, each newest first. "
                   f"tier is one of {', '.join(TIERS)} (elderly: the number is in the elders' registry).",
        "parameters": [_PHONE, {"name": "limit", "in": "query",
                                "schema": {"type": "integer", "maximum": 100}}],
        "responses": {"200": {"description": "the card"}, **_ERRORS},
    }},
    "/api/v1/callers/{phone}/add-to-case": {"post": {
        "summary": "Record a call as a contact on a case (event CallAddedToCase); idempotent on the pair.",
        "parameters": [_PHONE],
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "required": ["call_id", "case_id"],
            "properties": {"call_id": {"type": "string"}, "case_id": {"type": "string"}}}}}},
        "responses": {"201": {"description": "recorded"}, "200": {"description": "already recorded"},
                      "404": {"description": "no such case or call"}, **_ERRORS},
    }},
    "/api/v1/customers/{phone}": {"put": {
        "summary": "Set a number's tier in the customer registry (event CustomerTierSet): vip, important, "
                   "blacklisted (harassing: contacts still recorded, never called back automatically, "
                   "listed in /api/v1/harassment) or none; a reason is required except for none. "
                   "Dispatcher or admin.",
        "parameters": [_PHONE],
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "required": ["tier"],
            "properties": {"tier": {"enum": list(SETTABLE)}, "reason": {"type": "string"},
                           "expires_at": {"type": "string", "format": "date-time"}}}}}},
        "responses": {"200": {"description": "the entry as set"}, **_ERRORS},
    }},
    "/api/v1/customers": {"get": {
        "summary": "Registry entries, with `contacts` (the harassment counter: contacts made while "
                   "blacklisted) and `active`; ?tier= keeps the entries of that tier that hold now.",
        "parameters": [{"name": "tier", "in": "query", "schema": {"enum": list(SETTABLE)}}],
        "responses": {"200": {"description": "{items, next}"}, **_ERRORS},
    }},
    "/api/v1/harassment": {"get": {
        "summary": "The blacklist queue: contacts (calls, cases, messages) made by blacklisted numbers.",
        "responses": {"200": {"description": "{items, next}"}, **_ERRORS},
    }},
}
