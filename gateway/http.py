"""Shared HTTP shapes: JSON bodies, the error envelope, lists with cursors."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import orjson
from aiohttp import web

from channels.times import plausible
from dispatch.core.messages import Json, JsonValue

MAX_BODY = 1024 * 1024
"""Request bodies over 1 MiB get 413."""
WRITE_DEADLINE = 1.8
"""Seconds a write (an HTTP request of any method but GET, HEAD, OPTIONS, once its body is
in; a DC-09 frame) may take: past it, 503 + Retry-After, or no ACK (CONTRACT: within 2 s,
never held open while the database is away)."""
MAX_DEPTH = 32
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class BadRequest(web.HTTPBadRequest):
    """A 400 carrying an error code and message for the JSON envelope (and, when the request
    was a form, the error of each field: `fields`)."""

    fields: list[Json] | None = None

    def __init__(self, code: str, message: str) -> None:
        super().__init__(reason="Bad Request")
        self.error_code = code
        self.error_message = message


def json_bytes(value: object) -> bytes:
    """JSON in UTF-8 that keeps Chinese readable and serialises datetimes (ISO 8601).

    orjson writes it (the board's pages took the gateway 5 % of its CPU in a storm with the
    standard library's encoder); what orjson refuses and the standard library writes (an
    integer past 64 bits, an aware `time`) comes out as it did before."""
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, default=_default, separators=(",", ":")).encode()


def dumps(value: object) -> str:
    """`json_bytes` as text."""
    return json_bytes(value).decode()


def _default(value: object) -> JsonValue:
    iso = getattr(value, "isoformat", None)
    if iso is not None:
        return iso()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_response(data: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response."""
    return web.Response(
        body=json_bytes(data), status=status, content_type="application/json", charset="utf-8",
        headers=headers,
    )


BODY_HEADERS = frozenset({"content-type", "content-length"})
"""Headers that describe a body: an error answered in another form keeps the others, not these."""

ERROR = web.ResponseKey("error", dict)
"""The error an `error_response` carries (its envelope's `error`), for a middleware that answers
errors in another form (GeoReport v2's paths: `gateway.views.open311.errors_in_open311_form`)."""


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None,
    fields: list[Json] | None = None,
) -> web.Response:
    """The error envelope `{"error": {"code", "message"}}`, with `fields` (each `{field, code,
    message}`) when a form's fields are at fault."""
    error: Json = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    response = json_response({"error": error}, status, headers)
    response[ERROR] = error
    return response


MAX_INT = 2**63
"""Integers beyond PostgreSQL's bigint are refused: no field of any channel needs one."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise BadRequest("bad_text", "text holds a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadRequest("bad_text", "text holds a lone surrogate (\\ud800-\\udfff)") from exc


def _check(value: object, level: int = 0) -> None:
    """Refuse what the log cannot hold: deep nesting, NUL, lone surrogates, huge integers."""
    if level > MAX_DEPTH:
        raise BadRequest("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check(item, level + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, level + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT <= value < MAX_INT:
        raise BadRequest("bad_number", "integer out of range (64 bits)")


def instant(raw: str, name: str, code: str = "bad_field") -> datetime:
    """An ISO-8601 instant with an offset, in the years 2000-2099 (`channels.times.plausible`),
    or `BadRequest` with `code` naming it: year 1 or 9999 would overflow once moved to UTC."""
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))  # RFC 3339 5.6: `z`
    except ValueError as exc:
        raise BadRequest(code, f"{name} must be an ISO-8601 instant") from exc
    if value.tzinfo is None:
        raise BadRequest(code, f"{name} needs a time zone offset")
    if not plausible(value):
        raise BadRequest(code, f"{name} must lie in the years 2000-2099")
    return value


def is_count(raw: str) -> bool:
    """Whether a parameter is a non-negative integer PostgreSQL's bigint holds: ASCII digits, at most 18
    (`"²".isdigit()` is true but `int("²")` fails; 40 digits overflow the query)."""
    return raw.isascii() and raw.isdigit() and len(raw) <= 18


def check_url(request: web.Request) -> None:
    """Refuse a NUL in the decoded path or query (`%00`): PostgreSQL text cannot hold one."""
    if "\x00" in request.path or "\x00" in request.query_string:
        raise BadRequest("bad_text", "the URL holds a NUL character (%00)")


def parse_json(body: bytes) -> Json:
    """A JSON object from a request body, or `BadRequest` saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("bad_encoding", "body is not valid UTF-8") from exc
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, NaN, over 4,300 digits
        raise BadRequest("bad_json", f"body is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(value, dict):
        raise BadRequest("bad_json", "body must be a JSON object")
    _check(value)
    return value


async def read_json(request: web.Request) -> Json:
    """The request's JSON object body (see `parse_json`)."""
    return parse_json(await request.read())


def field(
    body: Mapping[str, JsonValue], name: str, kind: type | tuple[type, ...], *, required: bool = True
) -> JsonValue:
    """One typed field of a JSON body, or `BadRequest` naming it."""
    if name not in body or body[name] is None:
        if required:
            raise BadRequest("missing_field", f"field {name!r} is required")
        return None
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
        raise BadRequest("bad_field", f"field {name!r} has the wrong type")
    return value


def limit_param(request: web.Request) -> int:
    """The `limit` query parameter: default 100, at most 1,000."""
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError as exc:
        raise BadRequest("bad_parameter", "limit must be an integer") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest("bad_parameter", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def choice_param(request: web.Request, name: str, choices: Sequence[str]) -> str | None:
    """An optional query parameter that must be one of `choices` (absent or empty: None): a value
    no row can hold is 400 `bad_parameter`, not an empty list that reads as "nothing there"."""
    raw = request.query.get(name)
    if not raw:
        return None
    if raw not in choices:
        raise BadRequest("bad_parameter", f"{name} must be one of {', '.join(choices)}")
    return raw


def page(items: Sequence[object], next_cursor: str | int | None) -> Json:
    """The list envelope `{"items": [...], "next": CURSOR or null}`."""
    return {"items": list(items), "next": next_cursor}
