"""Phone and SMS channel endpoints: CTI JSON events and Twilio's signed webhooks.

Each answers 2xx only after its event committed; bad input gets a 4xx JSON
error and an `InputRejected` event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from channels import cti, twilio
from channels.errors import ChannelError
from channels.rejected import record_rejected
from dispatch.core.messages import Command, Json
from dispatch.intake.calls import CALL_KINDS
from gateway.auth import require
from gateway.http import BadRequest, error_response, json_response, parse_json
from gateway.services import SERVICES, Services


async def _rejected(request: web.Request, channel: str, body: bytes, status: int, code: str,
                    message: str) -> web.Response:
    services = request.app[SERVICES]
    await record_rejected(
        services.bus.handle, channel=channel, code=code, reason=message, raw=body,
        at=services.clock.now(), headers=request.headers, peer=request.remote,
    )
    services.metrics.rejected_inputs.labels(channel, code).inc()
    return error_response(status, code, message)


Parse = Callable[[web.Request, Services, bytes], Awaitable[Command]]


async def _ingest(request: web.Request, channel: str, parse: Parse) -> tuple[Any, web.Response | None]:
    """Parse a channel request; a bad one is recorded and answered with its 4xx."""
    services = request.app[SERVICES]
    body = await request.read()
    try:
        command = await parse(request, services, body)
    except BadRequest as exc:
        return None, await _rejected(request, channel, body, 400, exc.error_code, exc.error_message)
    except ChannelError as exc:
        if exc.status >= 500:
            return None, error_response(exc.status, exc.code, exc.message)
        return None, await _rejected(request, channel, body, exc.status, exc.code, exc.message)
    result = await services.bus.handle(command)
    services.metrics.events_appended.labels(channel).inc()
    return result, None


async def _parse_cti(request: web.Request, services: Services, body: bytes) -> Command:
    return cti.parse_event(parse_json(body), services.clock.now())


async def cti_events(request: web.Request) -> web.Response:
    """`POST /channels/cti/events` (bearer `channel`)."""
    require(request, "channel")
    result, failed = await _ingest(request, "cti", _parse_cti)
    if failed is not None:
        return failed
    return json_response({"ok": True, "stream": result.stream, "duplicate": result.duplicate},
                         200 if result.duplicate else 201)


def _signed_urls(request: web.Request, services: Services) -> list[str]:
    public = services.settings.http.public_url
    if public:
        return [public + request.rel_url.raw_path_qs]
    return [str(request.url)]


def _twilio_parser(build: Callable[[twilio.Form, datetime], Command]) -> Parse:
    async def parse(request: web.Request, services: Services, body: bytes) -> Command:
        keys = twilio.TwilioKeys(services.settings.twilio.auth_token, services.settings.twilio.shared_key)
        form = twilio.parse_form(body)
        twilio.verify(keys, _signed_urls(request, services), form, request.headers)
        return build(form, services.clock.now())

    return parse


_PARSE_SMS = _twilio_parser(twilio.parse_sms)
_PARSE_VOICE_STATUS = _twilio_parser(twilio.parse_voice_status)


def _twiml() -> web.Response:
    return web.Response(text=twilio.EMPTY_TWIML, content_type="text/xml")


async def twilio_sms(request: web.Request) -> web.Response:
    """`POST /channels/twilio/sms`: inbound SMS webhook (one append; a policy makes the case)."""
    _, failed = await _ingest(request, "twilio", _PARSE_SMS)
    return failed or _twiml()


async def twilio_voice_status(request: web.Request) -> web.Response:
    """`POST /channels/twilio/voice-status`: call status callback."""
    _, failed = await _ingest(request, "twilio", _PARSE_VOICE_STATUS)
    return failed or _twiml()


def setup(app: web.Application) -> None:
    """Add the phone / SMS channel routes."""
    app.router.add_post("/channels/cti/events", cti_events)
    app.router.add_post("/channels/twilio/sms", twilio_sms)
    app.router.add_post("/channels/twilio/voice-status", twilio_voice_status)


_CTI_BODY: Json = {"type": "object", "required": ["event_id", "type", "call_id", "caller",
                                                            "queue", "at"],
                             "properties": {"event_id": {"type": "string"},
                                            "type": {"type": "string", "enum": list(CALL_KINDS)},
                                            "call_id": {"type": "string"}, "caller": {"type": "string"},
                                            "queue": {"type": "string"}, "agent": {"type": "string"},
                                            "at": {"type": "string", "format": "date-time"}}}
_SIGNED: list[dict[str, list[str]]] = []
_FORM = {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
_TWILIO_RESPONSES = {"200": {"description": "TwiML <Response/>; event committed"},
                     "400": {"description": "missing fields"}, "403": {"description": "bad signature"},
                     "503": {"description": "INTAKE_TWILIO_AUTH_TOKEN unset"}}
OPENAPI_PATHS: Json = {
    "/channels/cti/events": {"post": {
        "summary": "CTI call event (idempotent on event_id)",
        "requestBody": {"content": {"application/json": {"schema": _CTI_BODY}}},
        "responses": {"201": {"description": "recorded"}, "200": {"description": "repeat delivery"},
                      "400": {"description": "malformed input (recorded as rejected)"}}}},
    "/channels/twilio/sms": {"post": {
        "summary": "Twilio inbound SMS webhook (X-Twilio-Signature)", "security": _SIGNED,
        "requestBody": {"content": _FORM}, "responses": _TWILIO_RESPONSES}},
    "/channels/twilio/voice-status": {"post": {
        "summary": "Twilio voice status callback (X-Twilio-Signature)", "security": _SIGNED,
        "requestBody": {"content": _FORM}, "responses": _TWILIO_RESPONSES}},
}
