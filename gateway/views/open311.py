"""Open311 GeoReport v2 at `/open311/v2/` and the plain citizen form at `/citizen/`.

Errors answer in Open311's own shape (`[{code, description}]` or
`<errors><error>...`) with 400 / 403 / 404 and are recorded as rejected input.
`POST requests` needs `api_key` = a `channel` token whose scope names `web`; an
`Idempotency-Key` header makes a repeated POST answer the first request, and
without one the same request from the same key holder within 10 minutes does.
A request id this system answered is never 404: a case the read model has not
caught up with yet is folded from its stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import timedelta
from email.parser import BytesParser
from email.policy import HTTP
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from channels.open311 import (
    WEB_SERVICES,
    Open311Error,
    check_query_date,
    definition,
    errors_body,
    parse_form,
    request_item,
    service,
    to_command,
    to_xml,
)
from dispatch.cases.read_model import Db, WebRequest, web_request, web_requests, web_requests_by_id
from dispatch.cases.registration import Registered
from dispatch.core.errors import InvalidCommand, KeyReused
from dispatch.core.messages import Json
from dispatch.core.texts import Texts, texts_for
from gateway.auth import TOKENS, Principal
from gateway.http import BODY_HEADERS, ERROR, json_response
from gateway.rejections import reject_request
from gateway.services import SERVICES
from gateway.views.cases import in_district

BASE = "/open311/v2"
FMT = "{fmt:(json|xml)}"
MAX_SPAN = timedelta(days=90)
STATIC = Path(__file__).parent.parent / "static" / "citizen"


def _answer(request: web.Request, body: Any, root: str, tag: str | None, status: int = 200) -> web.Response:
    if request.match_info.get("fmt") == "xml":
        return web.Response(body=to_xml(root, tag, body), status=status, content_type="text/xml",
                            charset="utf-8")
    return json_response(body, status)


async def _error(request: web.Request, exc: Open311Error, raw: bytes | None, *,
                 authenticated: bool = False) -> web.Response:
    await reject_request(request, channel="web", code=exc.code, reason=exc.message, raw=raw,
                         authenticated=authenticated)
    return _answer(request, errors_body(exc.status, exc.message), "errors", "error", exc.status)


@web.middleware
async def errors_in_open311_form(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error of an Open311 endpoint in GeoReport v2's form: the error array, in JSON or XML as
    the path asks. The views answer their own errors so; this turns the gateway's own into it: a
    503 while the database is down, a body over the limit, a URL or a body refused before any
    view. An Open311 client reads one form of error from every answer of its endpoints (headers
    such as `Retry-After` kept). A path under `BASE` that names no endpoint is no Open311 answer:
    it keeps the gateway's 404 / 405, as everywhere."""
    response = await handler(request)
    error = response.get(ERROR) if isinstance(response, web.Response) else None
    if (error is None or not request.path.startswith(BASE + "/")
            or request.match_info.http_exception is not None):
        return response
    answer = _answer(request, errors_body(response.status, str(error["message"])), "errors", "error",
                     response.status)
    answer.headers.extend((k, v) for k, v in response.headers.items() if k.lower() not in BODY_HEADERS)
    return answer


def _texts(request: web.Request) -> Texts:
    """The language of the names people read: `locale` (as some GeoReport v2 servers take it),
    else the first of `Accept-Language` we write, else the process's (`INTAKE_LANGUAGE`)."""
    asked = request.query.get("locale") or request.headers.get("Accept-Language") or ""
    for tag in asked.split(","):
        primary = tag.split(";")[0].strip().lower().split("-")[0].split("_")[0]
        if primary in ("zh", "en"):
            return texts_for("zh-CN" if primary == "zh" else "en")
    return request.app[SERVICES].texts


async def services_list(request: web.Request) -> web.Response:
    """`GET services.{fmt}`."""
    texts = _texts(request)
    return _answer(request, [service(c, texts) for c in WEB_SERVICES], "services", "service")


async def service_definition(request: web.Request) -> web.Response:
    """`GET services/{code}.{fmt}`."""
    try:
        body = definition(request.match_info["code"], _texts(request))
    except Open311Error as exc:
        return await _error(request, exc, None)
    return _answer(request, body, "service_definition", None)


def _bad_encoding() -> Open311Error:
    return Open311Error(400, "the form is not text in its charset (UTF-8 unless it names one)",
                        "bad_encoding")


def _text(data: bytes, charset: str) -> str:
    """`data` in `charset`, strictly: GBK bytes in a UTF-8 form are refused, not kept as U+FFFD
    (the address and text would be lost behind a 201); an unknown charset is refused too."""
    try:
        return data.decode(charset)
    except (LookupError, UnicodeDecodeError) as exc:
        raise _bad_encoding() from exc


def _urlencoded(raw: bytes, charset: str) -> dict[str, str]:
    """A URL-encoded form whose %-escapes are bytes of `charset` (a repeated field: the last)."""
    text = _text(raw, charset).rstrip()  # as aiohttp's `post()`: a trailing newline is no value
    try:
        return dict(parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict"))
    except UnicodeDecodeError as exc:
        raise _bad_encoding() from exc


async def _form(request: web.Request, raw: bytes) -> dict[str, str]:
    """The fields of a POST body already read: URL-encoded (in the charset its Content-Type
    names, else UTF-8; also without a Content-Type, which aiohttp names application/octet-stream),
    or multipart/form-data (as portals post with a photo) parsed from the same bytes; a file part
    is not a field. `ValueError` when it cannot be read; `Open311Error` for a body of another type
    (a JSON body...), which GeoReport v2 does not post."""
    if "Content-Type" not in request.headers or request.content_type == "application/x-www-form-urlencoded":
        return _urlencoded(raw, request.charset or "utf-8")
    if request.content_type != "multipart/form-data":
        raise Open311Error(400, f"the body is {request.content_type}: POST requests takes a form, "
                                "application/x-www-form-urlencoded or multipart/form-data", "not_a_form")
    head = f"Content-Type: {request.headers.get('Content-Type', '')}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise ValueError("not a multipart body")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and part.get_filename() is None:
            payload = part.get_payload(decode=True)
            charset = part.get_content_charset() or "utf-8"
            fields[name] = _text(payload, charset) if isinstance(payload, bytes) else ""
    return fields


async def create_request(request: web.Request) -> web.Response:
    """`POST requests.{fmt}`: register a case; answer its `service_request_id`."""
    raw = await request.read()
    who: Principal | None = None
    try:
        form = await _form(request, raw)
        if any("\x00" in k or "\x00" in v for k, v in form.items()):  # PostgreSQL text cannot hold one
            raise Open311Error(400, "the form holds a NUL character", "bad_text")
        who = request.app[TOKENS].resolve(form.get("api_key") or None)
        if who is None or not who.may_post("web"):
            who = None
            raise Open311Error(403, "api_key is missing or not a channel key for the web", "forbidden")
        cmd = to_command(parse_form(form), actor=who.actor, holder=who.subject,
                         idempotency_key=request.headers.get("Idempotency-Key"),
                         received_at=request.app[SERVICES].clock.now())
        located = in_district(cmd.contact.location, request.app[SERVICES])  # the board names it
        cmd = replace(cmd, contact=replace(cmd.contact, location=located))
        registered: Registered = await request.app[SERVICES].bus.handle(cmd)
    except InvalidCommand as exc:
        err = Open311Error(400, str(exc), "invalid")
        return await _error(request, err, raw, authenticated=who is not None)
    except KeyReused as exc:
        err = Open311Error(409, str(exc), exc.code)
        return await _error(request, err, raw, authenticated=True)
    except (Open311Error, ValueError) as exc:
        err = exc if isinstance(exc, Open311Error) else Open311Error(400, "form is not readable")
        return await _error(request, err, raw, authenticated=who is not None)
    notice = "duplicate request" if registered.duplicate else "request accepted"
    body = [{"service_request_id": registered.case_id, "service_notice": notice, "account_id": None}]
    return _answer(request, body, "service_requests", "request", 200 if registered.duplicate else 201)


def _listed(request: web.Request, name: str) -> list[str]:
    """A list parameter: comma delimited, and declared as many times as a client likes
    (GeoReport v2: `service_code=a&service_code=b` is `service_code=a,b`)."""
    return [i.strip() for value in request.query.getall(name, []) for i in value.split(",") if i.strip()]


def _query(request: web.Request) -> Callable[[Db], Awaitable[list[WebRequest]]]:
    """The read-model query `GET requests` asks for (Open311Error on a bad one)."""
    q = request.query
    ids = _listed(request, "service_request_id")
    if ids:
        return partial(web_requests_by_id, case_ids=ids, store=request.app[SERVICES].store)
    start = check_query_date(q.get("start_date"), "start_date")
    end = check_query_date(q.get("end_date"), "end_date", end=True)
    if start and end and (end - start > MAX_SPAN or end < start):
        raise Open311Error(400, "start_date..end_date must be an ordered span of at most 90 days")
    if start is None:
        start = (end or request.app[SERVICES].clock.now()) - MAX_SPAN
    codes = _listed(request, "service_code")
    statuses = set(_listed(request, "status"))
    if statuses - {"open", "closed"}:
        raise Open311Error(400, "status must be open and/or closed")
    finished = None if len(statuses) != 1 else statuses == {"closed"}
    return partial(web_requests, start=start, end=end, categories=codes, finished=finished)


async def list_requests(request: web.Request) -> web.Response:
    """`GET requests.{fmt}`: web requests, newest first (at most 1,000)."""
    try:
        query = _query(request)
    except Open311Error as exc:
        return await _error(request, exc, None)
    async with request.app[SERVICES].store.connection() as conn:
        rows = await query(conn)
    texts = _texts(request)
    return _answer(request, [request_item(asdict(r), texts) for r in rows], "service_requests", "request")


async def get_request(request: web.Request) -> web.Response:
    """`GET requests/{id}.{fmt}`: a one-element list, as the standard says."""
    store = request.app[SERVICES].store
    async with store.connection() as conn:
        row = await web_request(conn, request.match_info["id"], store)
    if row is None:
        return await _error(request, Open311Error(404, "service_request_id not found", "not_found"), None)
    return _answer(request, [request_item(asdict(row), _texts(request))], "service_requests", "request")


async def citizen_slash(request: web.Request) -> web.Response:
    """`GET /citizen`: the form is at `/citizen/` (its scripts are relative to it); the query stays."""
    raise web.HTTPMovedPermanently(request.rel_url.with_path("/citizen/", keep_query=True))


async def citizen_page(request: web.Request) -> web.FileResponse:
    """`GET /citizen/`: the plain web form that posts to `requests.json`."""
    return web.FileResponse(STATIC / "index.html")


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get(f"{BASE}/services.{FMT}", services_list)
    app.router.add_get(f"{BASE}/services/{{code}}.{FMT}", service_definition)
    app.router.add_post(f"{BASE}/requests.{FMT}", create_request)
    app.router.add_get(f"{BASE}/requests.{FMT}", list_requests)
    app.router.add_get(f"{BASE}/requests/{{id}}.{FMT}", get_request)
    app.router.add_get("/citizen/", citizen_page)
    app.router.add_get("/citizen", citizen_slash)
    app.router.add_static("/citizen/static/", STATIC)


_PUBLIC: list[dict[str, list[str]]] = []
_FMT = {"name": "fmt", "in": "path", "required": True,
        "schema": {"type": "string", "enum": ["json", "xml"]}}
OPENAPI_PATHS: Json = {
    f"{BASE}/services.{{fmt}}": {"get": {"summary": "Open311: service list (case categories)",
                                         "security": _PUBLIC, "parameters": [_FMT],
                                         "responses": {"200": {"description": "services"}}}},
    f"{BASE}/services/{{code}}.{{fmt}}": {"get": {
        "summary": "Open311: service definition (mandatory intake attributes)", "security": _PUBLIC,
        "parameters": [_FMT, {"name": "code", "in": "path", "required": True,
                              "schema": {"type": "string"}}],
        "responses": {"200": {"description": "service_definition"}, "404": {"description": "errors"}}}},
    f"{BASE}/requests.{{fmt}}": {
        "post": {"summary": "Open311: create a service request (form; api_key = a channel token for web; "
                            "optional Idempotency-Key header, without it the same request within "
                            "10 minutes answers the first)", "security": _PUBLIC, "parameters": [_FMT],
                 "responses": {"201": {"description": "[{service_request_id}]"},
                               "400": {"description": "errors"}, "403": {"description": "errors"},
                               "404": {"description": "errors"},
                               "409": {"description": "errors: Idempotency-Key used for another request"}}},
        "get": {"summary": "Open311: query web requests (service_request_id, service_code, start_date, "
                           "end_date, status)", "security": _PUBLIC, "parameters": [_FMT],
                "responses": {"200": {"description": "service_requests"}}}},
    f"{BASE}/requests/{{id}}.{{fmt}}": {"get": {
        "summary": "Open311: one service request", "security": _PUBLIC,
        "parameters": [_FMT, {"name": "id", "in": "path", "required": True,
                              "schema": {"type": "string"}}],
        "responses": {"200": {"description": "[request] (also before the read model catches up)"},
                      "404": {"description": "errors: no such request"}}}},
    "/citizen/": {"get": {"summary": "Plain citizen web form (posts to Open311)", "security": _PUBLIC,
                          "responses": {"200": {"description": "HTML"}}}},
    "/citizen": {"get": {"summary": "The citizen form's address without its slash", "security": _PUBLIC,
                         "responses": {"301": {"description": "to /citizen/, the query kept"}}}},
}
