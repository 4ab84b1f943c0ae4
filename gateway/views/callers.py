"""Who is calling (来电弹屏): the caller card, the customer registry and the blacklist queue.

- `GET /api/v1/callers/{phone}`: the card (`phone` in any format).
- `POST /api/v1/callers/{phone}/add-to-case` `{call_id, case_id}`: the call becomes a contact on the case.
- `PUT /api/v1/customers/{phone}` `{tier, reason, expires_at?}`: set a number's tier (dispatcher, admin).
- `GET /api/v1/customers?tier=`: registry entries with their harassment counters, most first.
- `GET /api/v1/harassment`: the separate queue of contacts made by blacklisted numbers.

A token scoped to an organisation node sees, on the card and in the harassment queue, only the
cases of its subtree and what belongs to them (calls and messages of another's cases, another
level's call-back tasks are left out); adding a call to a case follows the case rule (404 outside
the subtree, 403 held by another level). The registry itself is the whole hotline's: a number's
tier holds everywhere, so a scoped token reads it but setting it answers 403.
"""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from channels.times import plausible
from dispatch.cases.state import load_case
from dispatch.core.messages import Json, JsonValue
from dispatch.core.phone import normalise_phone
from dispatch.customers.card import (
    ContactKey,
    CustomerKey,
    blacklist_queue,
    caller_card,
    customers,
    elder_of_phone,
)
from dispatch.customers.contacts import AddCallToCase, CallAdded
from dispatch.customers.registry import SETTABLE, TIERS, SetCustomerTier
from gateway.auth import Principal, require
from gateway.http import BadRequest, field, instant, json_response, limit_param, page, read_json
from gateway.services import SERVICES
from gateway.views.org import check_case, reach_of, scope_of, unscoped

_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
CARD_READERS = ("agent", "dispatcher", "auditor")
REGISTRARS = ("dispatcher",)
SUPERVISORS = ("dispatcher", "auditor")


def _phone(request: web.Request) -> str:
    return normalise_phone(request.match_info["phone"])


async def get_card(request: web.Request) -> web.Response:
    """`GET /api/v1/callers/{phone}`: the number's history across every channel and its tier."""
    who = require(request, *CARD_READERS)
    services = request.app[SERVICES]
    phone = _phone(request)
    card = await caller_card(services.pool, phone, services.clock.now(), limit=min(limit_param(request), 100))
    return json_response(await _within(request, who, card))


def _rows(value: JsonValue) -> list[Json]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


async def _within(request: web.Request, who: Principal, card: Json) -> Json:
    """The card as a scoped caller may see it: its subtree's cases, the calls and messages of no
    case or of those, the call-back tasks of its agents."""
    reach = await reach_of(request, who)
    if reach.everything:
        return card
    lists = {k: _rows(card.get(k)) for k in ("cases", "calls", "messages", "missed_calls")}
    seen = await reach.cases(request, {str(r["case_id"]) for k in ("cases", "calls", "messages")
                                       for r in lists[k] if r.get("case_id")})
    agents = await reach.agents(request) or frozenset()
    return {**card, "cases": [r for r in lists["cases"] if r["case_id"] in seen],
            **{k: [r for r in lists[k] if not r.get("case_id") or r["case_id"] in seen]
               for k in ("calls", "messages")},
            "missed_calls": [r for r in lists["missed_calls"] if r.get("assigned_to") in agents]}


async def add_to_case(request: web.Request) -> web.Response:
    """`POST /api/v1/callers/{phone}/add-to-case {call_id, case_id}`: record the call on the case."""
    who = require(request, "agent", "dispatcher")
    _phone(request)
    body = await read_json(request)
    ids = {name: str(field(body, name, str)) for name in ("case_id", "call_id")}
    for name, value in ids.items():
        if not _ID.match(value):
            raise BadRequest("bad_field", f"field {name!r} may hold only letters, digits and _ . : -")
    scope = await scope_of(request, who)
    if scope is not None:
        check_case(await load_case(request.app[SERVICES].store, ids["case_id"]), scope, holding=True)
    done = await request.app[SERVICES].bus.handle(AddCallToCase(ids["case_id"], ids["call_id"], who.actor))
    assert isinstance(done, CallAdded)
    return json_response({"case_id": done.case_id, "call_id": done.call_id, "version": done.version},
                         200 if done.duplicate else 201)


async def put_customer(request: web.Request) -> web.Response:
    """`PUT /api/v1/customers/{phone} {tier, reason, expires_at?}`: set (or clear) a number's tier."""
    who = await unscoped(request, require(request, *REGISTRARS))
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
    items, last = await customers(services.pool, services.clock.now(), tier, limit_param(request),
                                  _customer_cursor(request.query.get("cursor")))
    return json_response(page(items, None if last is None else
                              f"{last[0]}|{'' if last[1] is None else last[1].isoformat()}|{last[2]}"))


def _customer_cursor(raw: str | None) -> CustomerKey | None:
    """The registry's `cursor` as `list_customers` gave it (`contacts|set_at|phone`), else 400."""
    if not raw:
        return None
    contacts, _, rest = raw.partition("|")
    set_at, _, phone = rest.partition("|")
    try:
        return int(contacts), _cursor_time(set_at) if set_at else None, _cursor_text(phone)
    except ValueError as exc:
        raise BadRequest("bad_parameter", "cursor is not one this API gave") from exc


def _contact_cursor(raw: str | None) -> ContactKey | None:
    """The blacklist queue's `cursor` as `harassment` gave it (`at|id`), else 400."""
    if not raw:
        return None
    at, _, id_ = raw.partition("|")
    try:
        return _cursor_time(at), _cursor_text(id_)
    except ValueError as exc:
        raise BadRequest("bad_parameter", "cursor is not one this API gave") from exc


def _cursor_time(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None or not plausible(value):
        raise ValueError(raw)
    return value


def _cursor_text(raw: str) -> str:
    if not raw or len(raw) > 256:
        raise ValueError(raw)
    return raw


async def harassment(request: web.Request) -> web.Response:
    """`GET /api/v1/harassment`: contacts made by blacklisted numbers, newest first."""
    who = require(request, *SUPERVISORS)
    found, last = await blacklist_queue(request.app[SERVICES].pool, limit_param(request),
                                        _contact_cursor(request.query.get("cursor")))
    reach = await reach_of(request, who)
    seen = await reach.cases(request, {str(r["case_id"]) for r in found if r.get("case_id")})
    return json_response(page([r for r in found if reach.everything or r.get("case_id") in seen],
                              None if last is None else f"{last[0].isoformat()}|{last[1]}"))


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/api/v1/callers/{phone}", get_card)
    app.router.add_post("/api/v1/callers/{phone}/add-to-case", add_to_case)
    app.router.add_put("/api/v1/customers/{phone}", put_customer)
    app.router.add_get("/api/v1/customers", list_customers)
    app.router.add_get("/api/v1/harassment", harassment)


_PHONE = {"name": "phone", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "a phone number in any common format (+86 139 1234 5678, 139-1234-5678...)"}
_PAGES = [{"name": "cursor", "in": "query", "schema": {"type": "string"},
           "description": "the `next` of the page before"},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}]
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
        "parameters": [{"name": "tier", "in": "query", "schema": {"enum": list(SETTABLE)}}, *_PAGES],
        "responses": {"200": {"description": "{items, next}"}, **_ERRORS},
    }},
    "/api/v1/harassment": {"get": {
        "summary": "The blacklist queue: contacts (calls, cases, messages) made by blacklisted numbers.",
        "parameters": _PAGES,
        "responses": {"200": {"description": "{items, next}"}, **_ERRORS},
    }},
}
