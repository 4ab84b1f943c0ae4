"""`GET|POST /channels/wechat`: the official account's server URL.

GET answers the echostr handshake; POST verifies and parses the push and sends
`ReceiveWeChatPush` (record it filed with its case, open or join that case),
then answers a passive text reply (encrypted in safe mode). This view appends
nothing itself.

Every request must carry a `timestamp` within the replay window
(`INTAKE_WECHAT_REPLAY_WINDOW`, 300 s) and a `nonce` not seen before in that
window (GET and POST share the record, so a handshake's signature, which WeChat
defines as it defines a plain push's, cannot be replayed as a push). With an
AES key configured (safe mode) a push must be encrypted and carry
`msg_signature` over its `Encrypt` text; only the decrypted XML is trusted.
503 while INTAKE_WECHAT_TOKEN is unset; 403 on a bad, stale or replayed
signature or a plain push in safe mode; 400 on malformed XML - each recorded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from aiohttp import web

from channels.errors import BadInput, BadSignature, ChannelDisabled, ChannelError
from channels.wechat import check_envelope, parse_xml, text_reply, to_push
from channels.wechat_crypto import SafeMode, check_fresh, check_signature
from dispatch.core.messages import Json
from dispatch.intake.wechat import ReceiveWeChatPush, WeChatAnswer, WeChatPush
from gateway.nonces import NonceBook
from gateway.rejections import reject_request
from gateway.services import SERVICES, Services
from gateway.settings import WechatSettings
from gateway.views.cases import in_district

_PARAM = re.compile(r"^[A-Za-z0-9]{1,64}$")


def _settings(request: web.Request) -> WechatSettings:
    wechat = request.app[SERVICES].settings.wechat
    if not wechat.token:
        raise ChannelDisabled("WeChat is not configured (INTAKE_WECHAT_TOKEN)")
    return wechat


def _signed(request: web.Request, wechat: WechatSettings, *, signed: bool = True) -> tuple[str, str]:
    """(timestamp, nonce) once `signature` is right (unless `signed` is False: the caller checks
    `msg_signature`) and the timestamp fresh."""
    assert wechat.token is not None
    timestamp, nonce = request.query.get("timestamp", ""), request.query.get("nonce", "")
    if not _PARAM.match(timestamp) or not _PARAM.match(nonce):
        raise BadInput("timestamp and nonce are required", code="bad_query")
    if signed:
        check_signature(request.query.get("signature"), wechat.token, timestamp, nonce)
    check_fresh(timestamp, request.app[SERVICES].clock.now().timestamp(), wechat.replay_window)
    return timestamp, nonce


def _digest(method: str, sent: bytes) -> str:
    return f"{method} {hashlib.sha256(sent).hexdigest()}"


async def _first_use(services: Services, wechat: WechatSettings, timestamp: str, nonce: str,
                     request: str) -> None:
    """Raise `BadSignature` when this (timestamp, nonce) was used within the replay window by
    another request than `request` (the method and a digest of what it carries). The same
    request again is WeChat retrying an answer that took over 5 s: it goes on, and the `MsgId`
    (or sender, time and event) dedup answers it as the first, changing nothing."""
    if services.nonces is None:
        services.nonces = NonceBook(services.redis, services.settings.stores.redis_prefix)
    # A timestamp is accepted from `window` before it to `window` after it.
    if not await services.nonces.first_use(f"wechat:{timestamp}:{nonce}", 2 * wechat.replay_window + 1,
                                           request):
        raise BadSignature("this signature was used already", code="replayed")


def _plain(request: web.Request, body: bytes) -> tuple[WeChatPush, bytes]:
    """A push without an AES key: plain, or compatible mode's plain fields beside `Encrypt`
    (WeChat signs the query alike, and a server without the key goes on as before)."""
    fields = parse_xml(body)
    if "Encrypt" in fields and not fields.get("MsgType"):  # safe mode: nothing but the ciphertext
        raise ChannelDisabled("an encrypted push needs INTAKE_WECHAT_AES_KEY and INTAKE_WECHAT_APPID")
    fields.pop("Encrypt", None)
    check_envelope({}, fields, request.query.get("openid"))
    return to_push(fields), body


def _decrypted(request: web.Request, body: bytes, safe: SafeMode, timestamp: str,
               nonce: str) -> tuple[WeChatPush, bytes]:
    outer = parse_xml(body)
    if request.query.get("encrypt_type") != "aes" or not outer.get("Encrypt"):
        raise BadSignature("safe mode: plain pushes are refused", code="encryption_required")
    inner_xml = safe.decrypt(outer["Encrypt"], request.query.get("msg_signature"), timestamp, nonce)
    inner = parse_xml(inner_xml)
    check_envelope(outer, inner, request.query.get("openid"))
    return to_push(inner), inner_xml


async def _rejected(request: web.Request, exc: ChannelError, raw: bytes | None) -> None:
    """Record a refused push or handshake, kept short and limited per source like every
    input whose sender was not proven (`gateway.rejections`)."""
    await reject_request(request, channel="wechat", code=exc.code, reason=exc.message, raw=raw,
                         authenticated=False, query=True)


async def handshake(request: web.Request) -> web.Response:
    """`GET /channels/wechat`: echo `echostr` when the signature is right, fresh and unused (in
    safe mode, an encrypted `echostr` signed by `msg_signature` is answered decrypted)."""
    services = request.app[SERVICES]
    echostr = request.query.get("echostr", "")
    try:
        wechat = _settings(request)
        encrypted = bool(wechat.aes_key and wechat.appid and "msg_signature" in request.query)
        timestamp, nonce = _signed(request, wechat, signed=not encrypted)
        if encrypted:  # safe mode's form: `msg_signature` over an encrypted echostr, answered decrypted
            safe = SafeMode(wechat.token or "", wechat.aes_key or "", wechat.appid or "")
            echostr = safe.decrypt(echostr, request.query.get("msg_signature"), timestamp,
                                   nonce).decode("utf-8", "replace")
        await _first_use(services, wechat, timestamp, nonce, _digest("GET", request.query_string.encode()))
    except ChannelError as exc:
        await _rejected(request, exc, None)
        raise
    return web.Response(text=echostr, content_type="text/plain")


async def push(request: web.Request) -> web.Response:
    """`POST /channels/wechat`: verify, send one command, reply (encrypted in safe mode)."""
    services = request.app[SERVICES]
    raw = await request.read()
    safe: SafeMode | None = None
    try:
        wechat = _settings(request)
        timestamp, nonce = _signed(request, wechat)
        if wechat.aes_key and wechat.appid:
            safe = SafeMode(wechat.token or "", wechat.aes_key, wechat.appid)
            message, xml = _decrypted(request, raw, safe, timestamp, nonce)
        else:
            message, xml = _plain(request, raw)
        sent = _digest("POST", request.query_string.encode() + b"\n" + raw)
        await _first_use(services, wechat, timestamp, nonce, sent)
    except ChannelError as exc:
        await _rejected(request, exc, raw)
        raise
    place = in_district(message.place, services)  # the board and the routing name it
    if place is not None:
        message = replace(message, district=place.district, district_name=place.district_name)
    command = ReceiveWeChatPush(message, xml.decode("utf-8", "replace"))
    answer: WeChatAnswer = await services.bus.handle(command)
    if not answer.duplicate:
        services.metrics.events_appended.labels("wechat").inc()
    reply = text_reply(message, answer.reply, services.clock.now().timestamp())
    if safe is not None:
        reply = safe.encrypt(reply, timestamp, nonce)
    return web.Response(text=reply, content_type="application/xml")


def setup(app: web.Application) -> None:
    """Add the routes of this module."""
    app.router.add_get("/channels/wechat", handshake)
    app.router.add_post("/channels/wechat", push)


_Q = [{"name": n, "in": "query", "schema": {"type": "string"}}
      for n in ("signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature", "openid")]
_MALFORMED = "malformed XML, XML with a DTD, a missing or malformed field"
_REFUSED = "bad, stale (over the replay window) or replayed signature; plain push in safe mode"
OPENAPI_PATHS: Json = {
    "/channels/wechat": {
        "get": {"summary": "WeChat server URL handshake (echostr)", "security": [], "parameters": _Q,
                "responses": {"200": {"description": "echostr"},
                              "403": {"description": _REFUSED},
                              "503": {"description": "WeChat not configured"}}},
        "post": {"summary": "WeChat push (text / location / event; plain, or AES safe mode when configured)",
                 "security": [], "parameters": _Q,
                 "responses": {"200": {"description": "passive text reply (encrypted in safe mode)"},
                               "400": {"description": _MALFORMED},
                               "403": {"description": _REFUSED},
                               "409": {"description": "the follower's conversation kept changing; retry"},
                               "503": {"description": "WeChat not configured / store down"}}},
    },
}
