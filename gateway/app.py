"""The aiohttp application factory and its middlewares."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from channels.errors import ChannelError
from dispatch.core.errors import DispatchError, InvalidCommand, NotAllowed, NotFound, StaleVersion
from dispatch.core.messages import Json
from eventstore import StoreUnavailable
from eventstore.errors import EventStoreError, IdempotencyConflict, InvalidIdentifier
from eventstore.postgres import UNAVAILABLE
from gateway import bootstrap
from gateway.auth import TOKENS, TokenTable, make_middleware
from gateway.http import BODY_HEADERS, MAX_BODY, WRITE_DEADLINE, BadRequest, check_url, error_response
from gateway.services import SERVICES, Services
from gateway.settings import Settings
from gateway.views import open311
from gateway.views.health import OPENAPI_PATHS_KEY

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RETRY_AFTER = "2"
_STORE_DOWN: tuple[type[BaseException], ...] = (StoreUnavailable, *UNAVAILABLE)
"""The store's own error, and a driver's from a view's own pool query."""
_READS = frozenset({"GET", "HEAD", "OPTIONS"})

_DOMAIN_STATUS: dict[type[DispatchError], int] = {
    InvalidCommand: 400,
    NotFound: 404,
    StaleVersion: 409,
    NotAllowed: 409,
}


def _domain_status(exc: DispatchError) -> int:
    for kind, status in _DOMAIN_STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


_CHANNEL_PATHS = (("/channels/cti/", "cti"), ("/channels/alarm/", "alarm"), ("/channels/twilio/", "twilio"),
                  ("/channels/wechat", "wechat"), ("/open311/", "web"))


def _count_dropped(request: web.Request, reason: str) -> None:
    """Count a channel request refused without an `InputRejected` record: before its channel saw it
    (a NUL in the URL) or after it parsed the input (a domain refusal, a reused id)."""
    services = request.app.get(SERVICES)
    channel = next((name for prefix, name in _CHANNEL_PATHS if request.path.startswith(prefix)), None)
    if services is not None and channel is not None:
        services.metrics.dropped_inputs.labels(channel, reason).inc()


def _refused(request: web.Request, exc: DispatchError | IdempotencyConflict) -> web.Response:
    """A command the domain refused, or an idempotency key reused for another stream: a 4xx.

    Raised after the channel parsed the input, so the channel did not record it: counted.
    """
    if isinstance(exc, IdempotencyConflict):  # the other stream may be another sender's: not named
        status, code, message = 409, "idempotency_conflict", "this id was already used for other input"
    else:
        status, code, message = _domain_status(exc), exc.code, str(exc)
    _count_dropped(request, code)
    return error_response(status, code, message)


def _no_such_file(request: web.Request) -> bool:
    """Whether a static route names nothing on disk: aiohttp's file response would answer it an
    empty `application/octet-stream` 404 (a path escaping the folder is refused by aiohttp itself)."""
    resource = request.match_info.route.resource
    if not isinstance(resource, web.StaticResource):
        return False
    return not (resource.get_info()["directory"] / request.match_info.get("filename", "")).exists()


@web.middleware
async def url_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a URL the database cannot hold (`check_url`) before any view sees it, and a static
    file that does not exist in the JSON envelope."""
    try:
        check_url(request)
    except BadRequest as exc:
        _count_dropped(request, exc.error_code)
        return error_response(400, exc.error_code, exc.error_message)
    if _no_such_file(request):
        return error_response(404, "not_found", "Not Found")
    return await handler(request)


def _store_error(request: web.Request, exc: EventStoreError) -> web.Response:
    """A name or key no store takes is the client's (400); any other refusal is logged (500)."""
    if isinstance(exc, InvalidIdentifier):
        return error_response(400, "bad_identifier", str(exc))
    log.exception("store_error", path=request.path)
    return error_response(500, "store_error", type(exc).__name__)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map errors to the JSON envelope; never leak a traceback, never answer 2xx on failure."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return error_response(400, exc.error_code, exc.error_message, fields=exc.fields)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", f"request body over {MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        # the exception's own Content-Type / Content-Length describe its plain-text body
        kept = {k: v for k, v in exc.headers.items() if k.lower() not in BODY_HEADERS}
        return error_response(exc.status, code, exc.reason, kept)
    except _STORE_DOWN as exc:
        log.warning("store_unavailable", path=request.path, error=type(exc).__name__, detail=str(exc))
        return error_response(
            503, "store_unavailable", "the database is unavailable; retry later",
            {"Retry-After": RETRY_AFTER},
        )
    except ChannelError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except (DispatchError, IdempotencyConflict) as exc:
        return _refused(request, exc)
    except EventStoreError as exc:
        return _store_error(request, exc)
    except Exception:  # a defect: logged with its request, answered in the envelope, no traceback
        log.exception("unhandled_error", path=request.path)
        return error_response(500, "internal_error", "an internal error; it is logged")


@web.middleware
async def deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every write within `WRITE_DEADLINE` of its arrival: 503 when it could not commit.

    The clock starts once the body is in, multipart included (a slow upload,
    such as a photo posted over a mobile link, is not the database's fault;
    every view reads its body whole, from `request.read()`'s cache). An
    abandoned statement drops its connection (`eventstore.unavailable`), so
    giving up is immediate whatever state the database is in: refusing
    connections, killing sessions, stopped, or silently dropping packets.
    """
    if request.method in _READS:
        return await handler(request)
    if request.body_exists:
        try:
            await request.read()
        except web.RequestPayloadError as exc:  # a `Content-Encoding: gzip` body that is not gzip: was a 500
            _count_dropped(request, "bad_encoding")  # before any channel saw it
            raise BadRequest("bad_encoding", "the body is not in its Content-Encoding") from exc
    try:
        async with asyncio.timeout(WRITE_DEADLINE):
            return await handler(request)
    except TimeoutError as exc:
        raise StoreUnavailable(f"no commit within {WRITE_DEADLINE} s") from exc


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to the logs, count and time the request."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status  # a channel's 401 / 403 was recorded (briefly) by the channel itself
        raise
    finally:
        services = request.app.get(SERVICES)
        if services is not None:
            route = request.match_info.route.resource
            name = route.canonical if route is not None else "unmatched"
            services.metrics.requests.labels(name, request.method, str(status)).inc()
            services.metrics.latency.labels(name).observe(time.perf_counter() - started)
        structlog.contextvars.unbind_contextvars("request_id")


def add_routes(app: web.Application) -> None:
    """Let every route module add its routes; keep their OpenAPI paths for the spec."""
    paths: Json = {}
    for routes in bootstrap.ROUTES:
        routes.setup(app)
        paths.update(routes.OPENAPI_PATHS)
    app[OPENAPI_PATHS_KEY] = paths


MAX_REQUEST_LINE = 64 * 1024
"""Request lines up to 64 KiB (aiohttp's default is 8 KiB): an Open311 status poll of 1,000 ids fits."""


def make_runner(app: web.Application, *, shutdown_timeout: float) -> web.AppRunner:
    """The runner `intake serve` serves the app with."""
    return web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None,
                         max_line_size=MAX_REQUEST_LINE)


def _origin(template: str) -> str:
    """The origin (` https://host`) of a URL template, or nothing."""
    parts = urlsplit(template.replace("{", "").replace("}", ""))
    return f" {parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def content_security_policy(tiles: str, recordings: str = "") -> str:
    """The CSP of every response: our own scripts only, nothing may frame us.

    Map tiles (`INTAKE_MAP_TILES`, a URL template) are the one image source
    from elsewhere, and the PBX's recordings (`INTAKE_RECORDING_URL`) the one
    media source; inline styles stay allowed for the citizen form's sheet.
    """
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:{_origin(tiles)}; media-src 'self'{_origin(recordings)}; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def security_headers(csp: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` hook: the headers every answer carries, errors and files included."""

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")

    return add


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    background: bool = True,
) -> web.Application:
    """The application. With `services` given (tests), it does not own them."""
    tokens = TokenTable(settings.http.tokens)
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[context_middleware, open311.errors_in_open311_form, url_middleware, errors_middleware,
                     deadline_middleware, make_middleware(tokens)],
    )
    app[TOKENS] = tokens

    async def wire(app: web.Application) -> AsyncIterator[None]:
        owned = services is None
        wired = services if services is not None else await bootstrap.build_services(settings)
        app[SERVICES] = wired
        try:
            if background:
                async for _ in bootstrap.run_background(wired):
                    yield
            else:
                yield
        finally:
            if owned:
                await bootstrap.close_services(wired)

    app.on_response_prepare.append(
        security_headers(content_security_policy(settings.console.map_tiles, settings.console.recording_url)))
    app.cleanup_ctx.append(wire)
    add_routes(app)
    return app
