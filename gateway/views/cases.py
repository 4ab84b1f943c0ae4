"""Operator API for cases: the board, one case, registration by hand, lifecycle actions,
overdue lists, the dispatch queue and per-unit assessment counters.

Views parse and validate, send one command through the bus and answer the case
state (docs/cases-sla.md). Personal data is masked for a `unit` caller except
on cases assigned to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from aiohttp import web

from dispatch.cases.actions import (
    SCORES,
    ClassifyCase,
    CloseCase,
    CompleteCase,
    ConfirmCase,
    DecideExtension,
    DispatchCase,
    GiveFeedback,
    RecordCallback,
    RejectCase,
    RequestExtension,
    SetReminder,
    SupplementCase,
)
from dispatch.cases.events import CallerInfo, Fault, Place
from dispatch.cases.read_model import OVERDUE, QUEUES, case_clocks, list_cases, overdue, unit_stats
from dispatch.cases.registration import CATEGORIES, RegisterCase
from dispatch.cases.sla import (
    LIGHTS,
    SlaConfig,
    Urgency,
    complexity_of,
    green_channel,
    importance_of,
    priority_score,
    queue_key,
)
from dispatch.cases.sla import light as light_of
from dispatch.cases.state import CaseState, load_case
from dispatch.cases.status import WAITING, CaseStatus
from dispatch.core.errors import NotFound, UnknownAssignee
from dispatch.core.messages import Json, JsonValue
from dispatch.gis.geo import to_wgs84
from dispatch.gis.reference import assignee_known, assignee_name
from dispatch.intake.sms import callable_number
from dispatch.org.moves import DispatchCaseDown, ReportCaseUp
from dispatch.personal.hold import SETTERS, SetLegalHold
from gateway.auth import Principal, require
from gateway.http import (
    BadRequest,
    choice_param,
    field,
    instant,
    is_count,
    json_response,
    limit_param,
    page,
    read_json,
)
from gateway.intake_form import check_registration
from gateway.privacy import hide_case, sees_personal_data
from gateway.services import SERVICES, Services
from gateway.views.org import acting_level, check_case, forbidden, reach_of, scope_of

READERS = ("agent", "dispatcher", "unit", "auditor")
UNIT_SIDE = ("unit", "dispatcher")
CENTER = ("agent", "dispatcher")
LIST_FILTERS = ("status", "category", "light", "district", "linked_to", "assigned_to", "incident_id")
CHOICES: dict[str, tuple[str, ...]] = {
    "status": tuple(CaseStatus), "category": CATEGORIES, "light": LIGHTS}
"""The board's filters with a closed set of values (400 for another: a typo is no empty board)."""


def _sla(services: Services) -> SlaConfig:
    return services.settings.sla


def _score(s: CaseState, now: datetime) -> float:
    start, due = s.deadline_from or s.accepted_at, s.deadline
    if start is None or due is None:
        return 0.0
    return priority_score(Urgency(
        s.priority, now - start, due - start, complexity_of(s.category, s.fault.scope if s.fault else None),
        importance_of(s.flags, s.customer_type)))


def case_view(s: CaseState, light: str, who: Principal | None, now: datetime) -> Json:
    """The public JSON of a case (CONTRACT.md "Case state"), masked for whoever may not see it."""
    c, loc = s.caller, s.location
    view = {
        "case_id": s.case_id, "status": s.status, "category": s.category, "priority": s.priority,
        "channel": s.channel,
        "caller": {"name": c.name, "phone": c.phone, "email": c.email, "openid": c.openid},
        "location": _location(s) if loc else None,
        "address": s.address, "description": s.description, "light": light,
        "deadline": s.deadline, "assigned_to": s.assigned_to, "assignee_kind": s.assignee_kind,
        "linked_case_ids": list(s.linked_case_ids), "incident_id": s.incident_id,
        "history_url": f"/api/v1/audit/cases/{s.case_id}/history", "version": s.version,
        "created_at": s.created_at, "accepted_at": s.accepted_at, "flags": list(s.flags),
        "elder_id": s.elder_id, "missing_fields": list(s.missing_fields),
        "priority_score": _score(s, now), "green_channel": green_channel(s.priority),
        "sla": {
            "dispatched_at": s.dispatched_at, "confirm_by": s.confirm_by,
            "confirmed_at": s.confirmed_at, "complete_by": s.complete_by,
            "completed_at": s.completed_at, "callback_by": s.callback_by,
            "archived_at": s.archived_at, "closed_at": s.closed_at,
            "pending_extension": s.pending_extension, "chases": s.chase_count,
            "chase_stage": s.chase_stage,
        },
        "rejected_by": list(s.rejected_by), "result": s.result, "owner": s.owner,
        "callback": {"outcome": s.callback_outcome, "at": s.callback_at, "handler": s.handler,
                     "case_score": s.callback_case_score, "unit_score": s.callback_unit_score},
        "reminder": {"at": s.reminder_at, "note": s.reminder_note, "by": s.reminder_by,
                     "reminded_at": s.reminded_at},
        "legal_hold": None if s.legal_hold is None else {
            "reason": s.legal_hold.reason, "by": s.legal_hold.by, "at": s.legal_hold.at},
        **_intake_fields(s),
    }
    return view if sees_personal_data(who, assigned_to=s.assigned_to) else hide_case(view)


def _intake_fields(s: CaseState) -> Json:
    """What the agent took at intake beyond the common fields, and the call it came with."""
    fault = None if s.fault is None else {"type": s.fault.type, "began_at": s.fault.began_at,
                                          "scope": s.fault.scope}
    return {"account_number": s.account_number, "customer_type": s.customer_type, "fault": fault,
            "service_time": s.service_time, "special_needs": s.special_needs, "call_id": s.call_id,
            "recording_id": s.recording_id}


def _location(s: CaseState) -> Json:
    loc, matched = s.location, s.matched_place
    assert loc is not None
    place = None if matched is None else {"id": matched.id, "name": matched.name, "type": matched.type,
                                          "score": matched.score, "text": matched.text}
    return {"lat": loc.lat, "lon": loc.lon, "district": loc.district, "district_name": loc.district_name,
            "source": s.location_source or "given", "place": place}


def fresh_view(services: Services, s: CaseState, who: Principal) -> Json:
    """The case's public JSON with its light at the clock's now, for whoever asks."""
    now = services.clock.now()
    return case_view(s, light_of(case_clocks(s), _sla(services), now), who, now)


async def get_case(request: web.Request) -> web.Response:
    """`GET /api/v1/cases/{case_id}`: the current state, folded from the case's events, with
    the registered name of the unit or provider it is assigned to (`assignee_name`)."""
    who = require(request, *READERS)
    services = request.app[SERVICES]
    state = await load_case(services.store, request.match_info["case_id"])
    check_case(state, await scope_of(request, who))
    body = fresh_view(services, state, who)
    body["assignee_name"] = await assignee_name(services.pool, state.assignee_kind, state.assigned_to)
    return json_response(body)


def search_filter(q: str, who: Principal) -> tuple[str, tuple[str | None, ...]]:
    """The `q` filter: a case id, a phone number in any format, or part of a name or an address.
    A unit's search matches personal fields only on its own cases (it sees no others' data)."""
    text = q.strip()[:200]
    if not text:
        raise BadRequest("bad_parameter", "q must not be blank")
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    phone = callable_number(text)
    if who.role == "unit":
        return "q_own", (text, phone, pattern, who.subject)
    return "q", (text, phone, pattern)


def queue_param(request: web.Request) -> str:
    """`queue=main|harassment|all`: `main` (cases of blacklisted numbers kept off) unless a search
    `q` is given, which finds a case in any queue."""
    queue = request.query.get("queue") or ("all" if request.query.get("q") is not None else "main")
    if queue not in QUEUES:
        raise BadRequest("bad_parameter", f"queue must be one of {', '.join(QUEUES)}")
    return queue


async def list_board(request: web.Request) -> web.Response:
    """`GET /api/v1/cases?status=&category=&light=&district=&linked_to=&q=&queue=`: the case board;
    `q` searches by case id, caller's phone (any format), name or address; `queue` (main,
    harassment, all) keeps the cases of blacklisted numbers apart."""
    who = require(request, *READERS)
    services = request.app[SERVICES]
    filters: dict[str, str | tuple[str | None, ...]] = {
        k: v for k in LIST_FILTERS if (v := request.query.get(k))}
    for name, choices in CHOICES.items():
        choice_param(request, name, choices)
    if (q := request.query.get("q")) is not None:
        name, values = search_filter(q, who)
        filters[name] = values
    if (queue := queue_param(request)) != "all":
        filters["queue"] = queue
    now = services.clock.now()
    items, nxt = await list_cases(services.pool, now, filters, limit=limit_param(request),
                                  cursor=request.query.get("cursor"), scope=await scope_of(request, who))
    return json_response(page([case_view(s, light, who, now) for s, light in items], nxt))


async def list_overdue(request: web.Request) -> web.Response:
    """`GET /api/v1/overdue?kind=confirmation|completion|callback&queue=`: most overdue first;
    `queue` as on the board (the cases of blacklisted numbers are kept off `main`, the default)."""
    who = require(request, *READERS)
    services = request.app[SERVICES]
    now = services.clock.now()
    mine = who.subject if who.role == "unit" else request.query.get("assigned_to")
    items, nxt = await overdue(services.pool, request.query.get("kind", ""), now,
                               limit=limit_param(request), cursor=request.query.get("cursor"),
                               assigned_to=mine, scope=await scope_of(request, who),
                               queue=queue_param(request))
    return json_response(page([case_view(s, light, who, now) for s, light in items], nxt))


QUEUE_READ = 1000
"""Waiting cases read from the board per query while the dispatch queue is put together."""


async def dispatch_queue(request: web.Request) -> web.Response:
    """`GET /api/v1/queue`: cases waiting for dispatch, green channel first, then by score; in pages
    (`cursor`: how many of the queue the pages before held). Every waiting case is ranked: the
    oldest, which the newest-first board reads last, are the most overdue."""
    who = require(request, "agent", "dispatcher", "auditor")
    services = request.app[SERVICES]
    limit, start = limit_param(request), _offset(request.query.get("cursor"))
    now = services.clock.now()
    found: list[tuple[CaseState, str]] = []
    scope = await scope_of(request, who)
    for status in sorted(WAITING):
        cursor: str | None = None
        while True:
            items, cursor = await list_cases(services.pool, now, {"status": status, "queue": "main"},
                                             limit=QUEUE_READ, cursor=cursor, scope=scope)
            found += items
            if cursor is None:
                break
    found.sort(key=lambda f: queue_key(f[0].priority, _score(f[0], now), f[0].accepted_at or now))
    shown = [case_view(s, light, who, now) for s, light in found[start:start + limit]]
    return json_response(page(shown, str(start + limit) if len(found) > start + limit else None))


def _offset(raw: str | None) -> int:
    if raw is None:
        return 0
    if not is_count(raw):
        raise BadRequest("bad_parameter", "cursor is not one this API gave")
    return int(raw)


async def assessment(request: web.Request) -> web.Response:
    """`GET /api/v1/assessment/units?unit_id=`: per-unit counters (rejections, call-backs...); a token
    scoped to an organisation node gets its subtree's units only."""
    who = require(request, "dispatcher", "auditor", "unit")
    unit = who.subject if who.role == "unit" else request.query.get("unit_id")
    mine = await (await reach_of(request, who)).units(request)  # a scoped token: its subtree's units
    rows = await unit_stats(request.app[SERVICES].pool, unit)
    return json_response(page([r for r in rows if mine is None or r["unit_id"] in mine], None))


def _str(body: Mapping[str, JsonValue], name: str, *, required: bool = True) -> str | None:
    value: str | None = field(body, name, str, required=required)
    return value


def _instant(body: Mapping[str, JsonValue], name: str) -> datetime:
    return instant(_str(body, name) or "", name)


def _place(body: Mapping[str, JsonValue], services: Services) -> Place | None:
    loc = field(body, "location", dict, required=False)
    if loc is None:
        return None
    lat, lon = to_wgs84(field(loc, "lat", (int, float)), field(loc, "lon", (int, float)),
                        field(loc, "crs", str, required=False))
    return in_district(Place(lat, lon), services)


def in_district(place: Place | None, services: Services) -> Place | None:
    """The place with the district its point lies in (the loaded polygons); as it is when it
    names one already, or when no district holds it."""
    districts = services.districts
    if place is None or place.district is not None or districts is None:
        return place
    found = districts.locate(place.lat, place.lon)
    return place if found is None else replace(place, district=found.adcode, district_name=found.name)


def registration(
    body: Mapping[str, JsonValue], services: Services, who: Principal, key: str | None
) -> RegisterCase:
    """The `RegisterCase` an agent's form stands for, every field checked (`gateway.intake_form`:
    `FieldErrors` names each one to correct; power-fault fields enforced)."""
    return check_registration(body, lambda: _registration(body, services, who, key))


def _registration(
    body: Mapping[str, JsonValue], services: Services, who: Principal, key: str | None
) -> RegisterCase:
    caller = field(body, "caller", dict)
    fault = field(body, "fault", dict, required=False)
    priority = field(body, "priority", int, required=False)
    return RegisterCase(
        category=field(body, "category", str), channel=_str(body, "channel", required=False) or "phone",
        description=field(body, "description", str),
        caller=CallerInfo(name=_str(caller, "name", required=False),
                          phone=_str(caller, "phone", required=False)),
        priority=priority, location=_place(body, services), address=_str(body, "address", required=False),
        account_number=_str(body, "account_number", required=False),
        customer_type=_str(body, "customer_type", required=False),
        fault=Fault(_str(fault, "type", required=False), _str(fault, "began_at", required=False),
                    _str(fault, "scope", required=False)) if fault else None,
        service_time=_str(body, "service_time", required=False),
        special_needs=_str(body, "special_needs", required=False),
        call_id=_str(body, "call_id", required=False) or None,
        idempotency_key=key, client_key=key is not None, strict=True, actor=who.actor, raw=dict(body),
    )


async def register(request: web.Request) -> web.Response:
    """`POST /api/v1/cases`: an agent registers a case by hand; 201 with the case state."""
    who = require(request, *CENTER)
    services = request.app[SERVICES]
    body = await read_json(request)
    key = request.headers.get("Idempotency-Key")
    done = await services.bus.handle(registration(body, services, who, key and f"api:{key}"))
    state = await load_case(services.store, done.case_id)
    return json_response(fresh_view(services, state, who), 200 if done.duplicate else 201)


Builder = Callable[[Mapping[str, JsonValue], Json], object]


def _callback_score(body: Mapping[str, JsonValue], name: str) -> int | None:
    """A call-back score: absent or null, or a whole number from 1 to 5 (400 `bad_score` otherwise)."""
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or value not in SCORES:
        raise BadRequest("bad_score", f"{name} must be a whole number from 1 to 5 (or null)")
    return value


def _b(body: Mapping[str, JsonValue], name: str, default: bool = False) -> bool:
    value = field(body, name, bool, required=False)
    return default if value is None else bool(value)


ACTIONS: dict[str, tuple[tuple[str, ...], Builder]] = {
    "classify": (CENTER, lambda b, k: ClassifyCase(
        category=_str(b, "category", required=False), priority=field(b, "priority", int, required=False),
        **k)),
    "dispatch": (CENTER, lambda b, k: DispatchCase(
        to=_str(b, "to") or "", kind=_str(b, "kind", required=False) or "unit",
        note=_str(b, "note", required=False), wrong_rejection=_b(b, "wrong_rejection"), **k)),
    "confirm": (UNIT_SIDE, lambda b, k: ConfirmCase(**k)),
    "reject": (UNIT_SIDE, lambda b, k: RejectCase(reason=_str(b, "reason") or "", **k)),
    "request-extension": (UNIT_SIDE, lambda b, k: RequestExtension(
        until=_instant(b, "until"), reason=_str(b, "reason") or "", **k)),
    "decide-extension": (("dispatcher",), lambda b, k: DecideExtension(
        approve=field(b, "approve", bool), note=_str(b, "note", required=False), **k)),
    "feedback": (UNIT_SIDE, lambda b, k: GiveFeedback(text=_str(b, "text") or "", **k)),
    "complete": (UNIT_SIDE, lambda b, k: CompleteCase(result=_str(b, "result", required=False) or "", **k)),
    "callback": (CENTER, lambda b, k: RecordCallback(
        outcome=_str(b, "outcome") or "", note=_str(b, "note", required=False),
        case_score=_callback_score(b, "case_score"), unit_score=_callback_score(b, "unit_score"), **k)),
    "supplement": (CENTER, lambda b, k: SupplementCase(text=_str(b, "text") or "", **k)),
    "close": (CENTER, lambda b, k: CloseCase(reason=_str(b, "reason") or "", **k)),
    "reminder": (("agent",), lambda b, k: SetReminder(
        remind_at=_reminder_time(b), note=_str(b, "note", required=False) or "", **k)),
    "link": (CENTER, lambda b, k: _link(b, k, True)),
    "unlink": (CENTER, lambda b, k: _link(b, k, False)),
    "report-up": (CENTER, lambda b, k: ReportCaseUp(reason=_str(b, "reason") or "", **k)),
    "dispatch-down": (CENTER, lambda b, k: DispatchCaseDown(
        to=_str(b, "to") or "", note=_str(b, "note", required=False), **k)),
    # set: dispatcher, auditor, admin; release: auditor, admin (dispatch/personal/hold.py decides)
    "legal-hold": (SETTERS, lambda b, k: SetLegalHold(
        hold=bool(field(b, "hold", bool)), reason=_str(b, "reason") or "", **k)),
}
UNVERSIONED = frozenset({"legal-hold"})
"""Actions whose `expected_version` is optional: they do not depend on the case's progress."""
LEVELLED = frozenset({"dispatch", "report-up", "dispatch-down"})
"""The actions taken for the caller's organisation node (`level`): the case's owner afterwards."""


def _reminder_time(body: Mapping[str, JsonValue]) -> datetime | None:
    """`remind_at`: an instant, or null to clear the reminder (the key itself is required)."""
    if "remind_at" not in body:
        raise BadRequest("missing_field", "remind_at is required (an ISO-8601 instant, or null to clear)")
    raw = _str(body, "remind_at", required=False)
    return None if raw is None else instant(raw, "remind_at")


def _link(body: Mapping[str, JsonValue], common: Json, linking: bool) -> object:
    from dispatch.linking.clustering import LinkCases, UnlinkCases

    other = _str(body, "other_case_id") or ""
    reason = _str(body, "reason", required=False)
    if linking:
        return LinkCases(other_case_id=other, reason=reason or "manual", **common)
    return UnlinkCases(other_case_id=other, reason=reason or "", **common)


async def _check_assignee(request: web.Request, who: Principal, kind: str, to: str) -> None:
    """403 for a scoped token's dispatch to a unit or provider that does not work for its subtree."""
    reach = await reach_of(request, who)
    units = await reach.units(request)
    if (kind == "unit" and units is not None and to not in units) or \
            (kind == "provider" and not await reach.provider(request, to)):
        raise forbidden(f"{kind} {to} does not work for {who.org}'s subtree")


async def act(request: web.Request) -> web.Response:
    """`POST /api/v1/cases/{case_id}/{action}` with `expected_version` (409 when stale)."""
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}; one of {', '.join(ACTIONS)}")
    roles, build = ACTIONS[action]
    who = require(request, *roles)
    services = request.app[SERVICES]
    body = await read_json(request)
    key = request.headers.get("Idempotency-Key")
    common = {
        "case_id": request.match_info["case_id"],
        "expected_version": field(body, "expected_version", int, required=action not in UNVERSIONED),
        "actor": who.actor, "idempotency_key": f"api:{key}" if key else None,
    }
    scope = await scope_of(request, who)
    if scope is not None:
        check_case(await load_case(services.store, common["case_id"]), scope,
                   holding=roles != UNIT_SIDE)
        if action in ("link", "unlink") and isinstance(other := body.get("other_case_id"), str):
            check_case(await load_case(services.store, other), scope)  # never to a case it cannot see
    if action in LEVELLED and who.role != "unit":
        common["level"] = await acting_level(request, who)
    command = build(body, common)
    if isinstance(command, DispatchCase) and command.to and \
            not await assignee_known(services.pool, command.kind, command.to):
        raise UnknownAssignee(f"no {command.kind} {command.to!r} is registered (GET /api/v1/units lists "
                              "the units, /api/v1/providers/nearest the providers)", field="to")
    if isinstance(command, DispatchCase) and command.to and scope is not None:
        await _check_assignee(request, who, command.kind, command.to)
    answer = await services.bus.handle(command)
    state = answer if isinstance(answer, CaseState) else await load_case(services.store, common["case_id"])
    return json_response(fresh_view(services, state, who))


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/api/v1/cases", list_board)
    app.router.add_post("/api/v1/cases", register)
    app.router.add_get("/api/v1/cases/{case_id}", get_case)
    app.router.add_post("/api/v1/cases/{case_id}/{action}", act)
    app.router.add_get("/api/v1/overdue", list_overdue)
    app.router.add_get("/api/v1/queue", dispatch_queue)
    app.router.add_get("/api/v1/assessment/units", assessment)


_ENUMS: dict[str, tuple[str, ...]] = {**CHOICES, "queue": QUEUES, "kind": tuple(OVERDUE)}


def _op(summary: str, *, params: tuple[str, ...] = (), body: bool = False,
        created: bool = False, required: tuple[str, ...] = ()) -> Json:
    op: Json = {
        "summary": summary,
        "parameters": [{"name": p, "in": "path" if p in {"case_id", "action"} else "query",
                        "required": p in {"case_id", "action"} or p in required,
                        "schema": {"type": "string", **({"enum": list(_ENUMS[p])} if p in _ENUMS else {})}}
                       for p in params],
        "responses": {"201" if created else "200": {"description": "case state or list envelope"},
                      "400": {"description": "invalid input"}, "401": {"description": "no token"},
                      "403": {"description": "role may not"}, "404": {"description": "no such case"},
                      "409": {"description": "stale expected_version or not allowed now"}},
    }
    if body:
        op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return op


OPENAPI_PATHS: Json = {
    "/api/v1/cases": {
        "get": _op("Case board (newest first). `q` searches: a case id, the caller's phone number in any "
                   "format (+86 139 1234 5678), or part of the caller's name or the address; a unit's "
                   "search matches personal fields only on its own cases. `queue`: main (the default "
                   "without `q`: cases registered from a number blacklisted at the time are kept off), "
                   "harassment (only those; the supervisor's queue), all (the default with `q`)",
                   params=(*LIST_FILTERS, "q", "queue", "cursor", "limit")),
        "post": _op("Register a case by hand (agent): {category, priority?, channel, caller: {name, phone}, "
                    "account_number?, customer_type?, description, location?, address?, fault?: {type, "
                    "began_at, scope}, service_time?, special_needs?, call_id?}; `call_id` names the call "
                    "being answered (its recording becomes the case's; optional). Power-fault fields "
                    "enforced; a 400 `invalid_fields` lists every field to correct in error.fields "
                    "[{field, code: missing_field|bad_field|bad_phone|bad_choice, message}]", body=True,
                    created=True),
    },
    "/api/v1/cases/{case_id}": {"get": _op("Current state of a case", params=("case_id",))},
    "/api/v1/cases/{case_id}/{action}": {"post": _op(
        "Lifecycle action: " + ", ".join(ACTIONS) + "; body carries expected_version. A token scoped "
        "to an organisation node: 404 for a case outside its subtree, 403 for a centre action on a case "
        "held by another level, or a dispatch to a unit or provider not working for its subtree",
        params=("case_id", "action"), body=True)},
    "/api/v1/overdue": {"get": _op("Overdue lists: kind=confirmation|completion|callback",
                                   params=("kind", "assigned_to", "queue", "cursor", "limit"),
                                   required=("kind",))},
    "/api/v1/queue": {"get": _op("Dispatch queue: every waiting case, green channel first, then priority "
                                 "score; `cursor` is the `next` of the page before",
                                 params=("cursor", "limit"))},
    "/api/v1/assessment/units": {"get": _op("Per-unit counters: dispatched, rejected, wrong "
                                            "rejections, chased, call-back answers (a token scoped to "
                                            "an organisation node: its subtree's units)",
                                            params=("unit_id",))},
}
