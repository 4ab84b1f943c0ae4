"""Shared HTTP shapes: JSON bodies, the error envelope, lists with cursors."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aiohttp import web

from dispatch.core.messages import Json, JsonValue

MAX_BODY = 1024 * 1024
"""Request bodies over 1 MiB get 413."""
MAX_DEPTH = 32
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class BadRequest(web.HTTPBadRequest):
    """A 400 carrying an error code and message for the JSON envelope."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(reason="Bad Request")
        self.error_code = code
        self.error_message = message


def dumps(value: object) -> str:
    """JSON text that keeps Chinese readable and serialises datetimes."""
    return json.dumps(value, ensure_ascii=False, default=_default, separators=(",", ":"))


def _default(value: object) -> JsonValue:
    iso = getattr(value, "isoformat", None)
    if iso is not None:
        return iso()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_response(data: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response."""
    return web.Response(
        text=dumps(data), status=status, content_type="application/json", headers=headers
    )


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The error envelope `{"error": {"code", "message"}}`."""
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def _depth(value: object, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def parse_json(body: bytes) -> Json:
    """A JSON object from a request body, or `BadRequest` saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("bad_encoding", "body is not valid UTF-8") from exc
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest("bad_json", f"body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequest("bad_json", "body must be a JSON object")
    if _depth(value) > MAX_DEPTH:
        raise BadRequest("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
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


def page(items: Sequence[object], next_cursor: str | int | None) -> Json:
    """The list envelope `{"items": [...], "next": CURSOR or null}`."""
    return {"items": list(items), "next": next_cursor}
