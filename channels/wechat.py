"""WeChat official account: push XML, passive text replies, and the conversation rules.

Each follower (OpenID) has a conversation stream `wechat-<openid>` holding
every push (`WeChatMessageReceived`, idempotent on `MsgId`, or on
`FromUserName`+`CreateTime`+`Event` for events). What a push does is decided
from the pushes before it, so a WeChat retry decides the same again:
a complaint text waits until the follower has given a phone number, then
becomes a case; location messages (GCJ-02, stored as WGS84) go with the case.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any
from xml.etree import ElementTree

from channels.errors import BadInput
from dispatch.cases.events import CallerInfo, Place
from dispatch.cases.registration import RegisterCase
from dispatch.core.errors import InvalidCommand
from dispatch.core.phone import normalise_phone
from dispatch.gis.geo import to_wgs84
from dispatch.intake.classify import classify_text

_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_CATEGORY_KEY = re.compile(r"^category:([a-z_]{1,40})$")
ASK_PHONE = "您好，已收到您的留言。请回复您的手机号码，我们将据此受理并回访。"
WELCOME = "欢迎关注！直接留言描述问题即可，发送位置可帮助我们更快找到您。"


@dataclass(frozen=True, slots=True)
class Push:
    """One decoded push; lat/lon are WGS84."""

    to_user: str
    from_user: str
    create_time: str
    msg_type: str
    msg_id: str | None = None
    content: str | None = None
    lat: float | None = None
    lon: float | None = None
    label: str | None = None
    event: str | None = None
    event_key: str | None = None

    @property
    def idempotency_key(self) -> str:
        """`wechat:<MsgId>`, or for events `wechat:<FromUserName>:<CreateTime>:<Event>`."""
        if self.msg_id:
            return f"wechat:{self.msg_id}"
        return f"wechat:{self.from_user}:{self.create_time}:{self.event or self.msg_type}"


def parse_xml(body: bytes) -> dict[str, str]:
    """The child elements of a WeChat `<xml>` document (no DTDs or entities accepted)."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise BadInput("XML with DTD or entities is not accepted", code="bad_xml")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise BadInput(f"malformed XML: {exc}", code="bad_xml") from exc
    if root.tag != "xml":
        raise BadInput("root element must be <xml>", code="bad_xml")
    return {child.tag: (child.text or "").strip() for child in root}


def _gcj(fields: dict[str, str], lat_key: str, lon_key: str) -> tuple[float | None, float | None]:
    if not fields.get(lat_key) or not fields.get(lon_key):
        return None, None
    try:
        return to_wgs84(float(fields[lat_key]), float(fields[lon_key]), "gcj02")
    except ValueError as exc:
        raise BadInput(f"{lat_key}/{lon_key} are not coordinates", code="bad_location") from exc


def to_push(fields: dict[str, str]) -> Push:
    """Check the fields a push must have and convert its coordinates."""
    for name in ("ToUserName", "FromUserName", "CreateTime", "MsgType"):
        if not fields.get(name):
            raise BadInput(f"{name} is required", code="missing_field")
    if not _SAFE_ID.match(fields["FromUserName"]) or not fields["CreateTime"].isdigit():
        raise BadInput("FromUserName or CreateTime is malformed", code="bad_field")
    msg_type = fields["MsgType"]
    if msg_type == "location":
        lat, lon = _gcj(fields, "Location_X", "Location_Y")
    else:
        lat, lon = _gcj(fields, "Latitude", "Longitude")
    return Push(
        to_user=fields["ToUserName"], from_user=fields["FromUserName"],
        create_time=fields["CreateTime"], msg_type=msg_type, msg_id=fields.get("MsgId") or None,
        content=fields.get("Content") or None, lat=lat, lon=lon, label=fields.get("Label") or None,
        event=fields.get("Event") or None, event_key=fields.get("EventKey") or None,
    )


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(push: Push, content: str, now: float | None = None) -> str:
    """The passive text reply to a push."""
    created = int(now if now is not None else time.time())
    return (f"<xml><ToUserName>{_cdata(push.from_user)}</ToUserName>"
            f"<FromUserName>{_cdata(push.to_user)}</FromUserName><CreateTime>{created}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content>{_cdata(content)}</Content></xml>")


@dataclass(frozen=True, slots=True)
class Conversation:
    """What earlier pushes of one follower left behind."""

    phone: str | None = None
    pending_text: str | None = None
    place: Place | None = None
    label: str | None = None
    category: str | None = None


def _phone_in(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return normalise_phone(text.strip())
    except InvalidCommand:
        return None


def step(state: Conversation, push: Push) -> Conversation:
    """The conversation after one push."""
    if push.lat is not None and push.lon is not None:
        state = replace(state, place=Place(push.lat, push.lon), label=push.label or state.label)
    if push.event == "CLICK" and push.event_key and _CATEGORY_KEY.match(push.event_key):
        return replace(state, category=_CATEGORY_KEY.match(push.event_key).group(1))  # type: ignore[union-attr]
    if push.msg_type != "text":
        return state
    phone = _phone_in(push.content)
    if phone:
        return replace(state, phone=phone, pending_text=None)
    if state.phone:
        return replace(state, pending_text=None)
    return replace(state, pending_text=push.content)


def decide(state: Conversation, push: Push, stream: str) -> tuple[RegisterCase | None, str]:
    """The case a push opens (if any) and the reply when no case is opened."""
    if push.msg_type == "event":
        return None, WELCOME if push.event == "subscribe" else "已收到。直接留言描述问题即可。"
    if push.msg_type == "location":
        return None, f"已收到您的位置{('：' + push.label) if push.label else ''}，请继续描述问题。"
    if push.msg_type != "text":
        return None, "已收到。请用文字描述您的问题。"
    phone = _phone_in(push.content)
    text = state.pending_text if phone else push.content
    phone = phone or state.phone
    if not phone:
        return None, ASK_PHONE
    if not text:
        return None, "已记录您的手机号码，请描述您的问题。"
    cmd = RegisterCase(
        category=state.category or classify_text(text), channel="wechat", description=text[:4000],
        caller=CallerInfo(phone=phone, openid=push.from_user), location=state.place,
        address=state.label, contact_stream=stream, idempotency_key=f"{push.idempotency_key}:case",
        actor=f"wechat:{push.from_user}", raw={"openid": push.from_user, "text": text},
    )
    return cmd, ""


def case_reply(case_id: str) -> str:
    """The reply once a push has opened (or, on a retry, had opened) a case."""
    return f"您的诉求已受理，工单号 {case_id}，我们将尽快处理并回访。"


def conversation_of(pushes: list[dict[str, Any]]) -> Conversation:
    """Fold stored pushes (their `push` data) into the conversation."""
    state = Conversation()
    for data in pushes:
        state = step(state, Push(**data))
    return state
