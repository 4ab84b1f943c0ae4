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
from dispatch.core.messages import Command, Json
from dispatch.intake.calls import CALL_KINDS
from gateway.http import BadRequest, error_response, json_response, parse_json
from gateway.rejections import channel_caller, reject_request
from gateway.services import SERVICES, Services

Verify = Callable[[web.Request, Services, bytes], Awaitable[Any]]
"""Checks the sender's credential; what it answers goes to `Build`. Raises for input
that cannot be authenticated (recorded in short, limited per source)."""
Build = Callable[[Services, Any], Command]
"""The command an authenticated request stands for."""


async def _ingest(request: web.Request, channel: str, verify: Verify, build: Build
                  ) -> tuple[Any, web.Response | None]:
    """Authenticate and parse a channel request; a bad one is recorded and answered with its 4xx."""
    services = request.app[SERVICES]
    body = await request.read()
    authenticated = False
    try:
        verified = await verify(request, services, body)
        authenticated = True
        command = build(services, verified)
    except BadRequest as exc:
        await reject_request(request, channel=channel, code=exc.error_code, reason=exc.error_message,
                             raw=body, authenticated=authenticated)
        return None, error_response(400, exc.error_code, exc.error_message)
    except ChannelError as exc:
        if exc.status < 500:
            await reject_request(request, channel=channel, code=exc.code, reason=exc.message, raw=body,
                                 authenticated=authenticated)
        return None, error_response(exc.status, exc.code, exc.message)
    result = await services.bus.handle(command)
    services.metrics.events_appended.labels(channel).inc()
    return result, None


async def _verify_cti(request: web.Request, services: Services, body: bytes) -> bytes:
    await channel_caller(request, "cti", body)
    return body


def _build_cti(services: Services, body: bytes) -> Command:
    return cti.parse_event(parse_json(body), services.clock.now())


async def cti_events(request: web.Request) -> web.Response:
    """`POST /channels/cti/events` (bearer `channel` token whose scope names `cti`)."""
    result, failed = await _ingest(request, "cti", _verify_cti, _build_cti)
    if failed is not None:
        return failed
    return json_response({"ok": True, "stream": result.stream, "duplicate": result.duplicate},
                         200 if result.duplicate else 201)


def _signed_urls(request: web.Request, services: Services) -> list[str]:
    public = services.settings.http.public_url
    if public:
        return [public + request.rel_url.raw_path_qs]
    return [str(request.url)]  # settings made in code (tests, the demo): from_env requires the public URL


async def _verify_twilio(request: web.Request, services: Services, body: bytes) -> twilio.Form:
    keys = twilio.TwilioKeys(services.settings.twilio.auth_token, services.settings.twilio.shared_key)
    form = twilio.parse_form(body)
    twilio.verify(keys, _signed_urls(request, services), form, request.headers)
    return form


def _twilio_builder(parse: Callable[[twilio.Form, datetime], Command]) -> Build:
    def build(services: Services, form: twilio.Form) -> Command:
        return parse(form, services.clock.now())

    return build


_BUILD_SMS = _twilio_builder(twilio.parse_sms)
_BUILD_VOICE_STATUS = _twilio_builder(twilio.parse_voice_status)
_BUILD_MESSAGE_STATUS = _twilio_builder(twilio.parse_message_status)


def _twiml() -> web.Response:
    return web.Response(text=twilio.EMPTY_TWIML, content_type="text/xml")


async def twilio_sms(request: web.Request) -> web.Response:
    """`POST /channels/twilio/sms`: inbound SMS webhook (one append; a policy makes the case)."""
    _, failed = await _ingest(request, "twilio", _verify_twilio, _BUILD_SMS)
    return failed or _twiml()


async def twilio_voice_status(request: web.Request) -> web.Response:
    """`POST /channels/twilio/voice-status`: call status callback."""
    _, failed = await _ingest(request, "twilio", _verify_twilio, _BUILD_VOICE_STATUS)
    return failed or _twiml()


async def twilio_sms_status(request: web.Request) -> web.Response:
    """`POST /channels/twilio/sms-status`: what became of an outbound SMS (its status callback)."""
    _, failed = await _ingest(request, "twilio", _verify_twilio, _BUILD_MESSAGE_STATUS)
    return failed or _twiml()


def setup(app: web.Application) -> None:
    """Add the phone / SMS channel routes."""
    app.router.add_post("/channels/cti/events", cti_events)
    app.router.add_post("/channels/twilio/sms", twilio_sms)
    app.router.add_post("/channels/twilio/voice-status", twilio_voice_status)
    app.router.add_post("/channels/twilio/sms-status", twilio_sms_status)


_WITHHELD = "the calling number; absent or empty when withheld (recorded, no call-back task)"
_CTI_BODY: Json = {"type": "object", "required": ["event_id", "type", "call_id", "queue", "at"],
                             "properties": {"event_id": {"type": "string"},
                                            "type": {"type": "string", "enum": list(CALL_KINDS)},
                                            "call_id": {"type": "string"},
                                            "caller": {"type": "string", "description": _WITHHELD},
                                            "queue": {"type": "string"}, "agent": {"type": "string"},
                                            "at": {"type": "string", "format": "date-time"}}}
_SIGNED: list[dict[str, list[str]]] = []
_FORM = {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
_TWILIO_RESPONSES = {"200": {"description": "TwiML <Response/>; event committed"},
                     "400": {"description": "missing fields"}, "403": {"description": "bad signature"},
                     "409": {"description": "idempotency_conflict: the MessageSid (CallSid + CallStatus) "
                                            "named another message (call event)"},
                     "503": {"description": "INTAKE_TWILIO_AUTH_TOKEN unset"}}
OPENAPI_PATHS: Json = {
    "/channels/cti/events": {"post": {
        "summary": "CTI call event (idempotent on event_id)",
        "requestBody": {"content": {"application/json": {"schema": _CTI_BODY}}},
        "responses": {"201": {"description": "recorded"}, "200": {"description": "repeat delivery"},
                      "400": {"description": "malformed input (recorded as rejected)"},
                      "409": {"description": "idempotency_conflict: the event_id named another event"},
                      "401": {"description": "no channel token"},
                      "403": {"description": "the token's scope does not name cti"}}}},
    "/channels/twilio/sms": {"post": {
        "summary": "Twilio inbound SMS webhook (X-Twilio-Signature)", "security": _SIGNED,
        "requestBody": {"content": _FORM}, "responses": _TWILIO_RESPONSES}},
    "/channels/twilio/voice-status": {"post": {
        "summary": "Twilio voice status callback (X-Twilio-Signature)", "security": _SIGNED,
        "requestBody": {"content": _FORM}, "responses": _TWILIO_RESPONSES}},
    "/channels/twilio/sms-status": {"post": {
        "summary": "Twilio outbound SMS status callback (X-Twilio-Signature): MessageSid, MessageStatus, "
                   "ErrorCode; delivered / undelivered / failed update GET /api/v1/notifications",
        "security": _SIGNED, "requestBody": {"content": _FORM}, "responses": _TWILIO_RESPONSES}},
}
