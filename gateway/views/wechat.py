"""`GET|POST /channels/wechat`: the official account's server URL.

GET answers the echostr handshake; POST verifies and parses the push, sends
`ReceiveWeChatPush` (record it, let the conversation rules decide, open the
case when due) and answers a passive text reply (encrypted in safe mode). 503
while INTAKE_WECHAT_TOKEN (or, for safe mode, the AES key and AppID) is unset;
403 on a bad signature; 400 on malformed XML - each also recorded.
"""

from __future__ import annotations

import re

from aiohttp import web

from channels.errors import BadInput, ChannelDisabled, ChannelError
from channels.rejected import record_rejected
from channels.wechat import parse_xml, text_reply, to_push
from channels.wechat_crypto import SafeMode, check_signature
from dispatch.core.messages import Json
from dispatch.intake.wechat import ReceiveWeChatPush, WeChatAnswer
from gateway.services import SERVICES

_PARAM = re.compile(r"^[A-Za-z0-9]{1,64}$")


def _params(request: web.Request) -> tuple[str, str, str]:
    token = request.app[SERVICES].settings.wechat.token
    if not token:
        raise ChannelDisabled("WeChat is not configured (INTAKE_WECHAT_TOKEN)")
    timestamp, nonce = request.query.get("timestamp", ""), request.query.get("nonce", "")
    if not _PARAM.match(timestamp) or not _PARAM.match(nonce):
        raise BadInput("timestamp and nonce are required", code="bad_query")
    check_signature(request.query.get("signature"), token, timestamp, nonce)
    return token, timestamp, nonce


def _safe_mode(request: web.Request, token: str) -> SafeMode:
    wechat = request.app[SERVICES].settings.wechat
    if not wechat.aes_key or not wechat.appid:
        raise ChannelDisabled("safe mode needs INTAKE_WECHAT_AES_KEY and INTAKE_WECHAT_APPID")
    return SafeMode(token, wechat.aes_key, wechat.appid)


async def _rejected(request: web.Request, exc: ChannelError, raw: bytes | None) -> None:
    services = request.app[SERVICES]
    services.metrics.rejected_inputs.labels("wechat", exc.code).inc()
    await record_rejected(services.bus.handle, channel="wechat", code=exc.code, reason=exc.message, raw=raw,
                          at=services.clock.now(), headers=request.headers, peer=request.remote,
                          query=request.query)


async def handshake(request: web.Request) -> web.Response:
    """`GET /channels/wechat`: echo `echostr` when the signature is right."""
    try:
        _params(request)
    except ChannelError as exc:
        await _rejected(request, exc, None)
        raise
    return web.Response(text=request.query.get("echostr", ""), content_type="text/plain")


async def push(request: web.Request) -> web.Response:
    """`POST /channels/wechat`: record, decide, reply (encrypted in safe mode)."""
    body = raw = await request.read()
    safe: SafeMode | None = None
    try:
        token, timestamp, nonce = _params(request)
        fields = parse_xml(body)
        if request.query.get("encrypt_type") == "aes" or "Encrypt" in fields:
            safe = _safe_mode(request, token)
            body = safe.decrypt(fields.get("Encrypt", ""), request.query.get("msg_signature"),
                                timestamp, nonce)
            fields = parse_xml(body)
        message = to_push(fields)
    except ChannelError as exc:
        await _rejected(request, exc, raw)
        raise
    services = request.app[SERVICES]
    received = ReceiveWeChatPush(message, body.decode("utf-8", "replace"))
    answer: WeChatAnswer = await services.bus.handle(received)
    if not answer.duplicate:
        services.metrics.events_appended.labels("wechat").inc()
    reply = text_reply(message, answer.reply)
    if safe is not None:
        reply = safe.encrypt(reply, timestamp, nonce)
    return web.Response(text=reply, content_type="application/xml")


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/channels/wechat", handshake)
    app.router.add_post("/channels/wechat", push)


_Q = [{"name": n, "in": "query", "schema": {"type": "string"}}
      for n in ("signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature", "openid")]
OPENAPI_PATHS: Json = {
    "/channels/wechat": {
        "get": {"summary": "WeChat server URL handshake (echostr)", "security": [], "parameters": _Q,
                "responses": {"200": {"description": "echostr"}, "403": {"description": "bad signature"},
                              "503": {"description": "WeChat not configured"}}},
        "post": {"summary": "WeChat push (text / location / event; plain or AES safe mode)",
                 "security": [], "parameters": _Q,
                 "responses": {"200": {"description": "passive text reply (encrypted in safe mode)"},
                               "400": {"description": "malformed XML"},
                               "403": {"description": "bad signature"},
                               "503": {"description": "WeChat not configured / store down"}}},
    },
}
