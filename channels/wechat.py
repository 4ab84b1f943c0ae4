"""WeChat official account wire format: push XML in, passive text replies out.

A push is checked and parsed into `dispatch.intake.wechat.WeChatPush`, its
GCJ-02 coordinates converted to WGS84; what it does is the conversation
rules' (`dispatch.intake.wechat`).
"""

from __future__ import annotations

import re
import time
from xml.etree import ElementTree

from channels.errors import BadInput
from dispatch.gis.geo import to_wgs84
from dispatch.intake.wechat import WeChatPush

_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


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


def to_push(fields: dict[str, str]) -> WeChatPush:
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
    return WeChatPush(
        to_user=fields["ToUserName"], from_user=fields["FromUserName"],
        create_time=fields["CreateTime"], msg_type=msg_type, msg_id=fields.get("MsgId") or None,
        content=fields.get("Content") or None, lat=lat, lon=lon, label=fields.get("Label") or None,
        event=fields.get("Event") or None, event_key=fields.get("EventKey") or None,
    )


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(push: WeChatPush, content: str, now: float | None = None) -> str:
    """The passive text reply to a push."""
    created = int(now if now is not None else time.time())
    return (f"<xml><ToUserName>{_cdata(push.from_user)}</ToUserName>"
            f"<FromUserName>{_cdata(push.to_user)}</FromUserName><CreateTime>{created}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content>{_cdata(content)}</Content></xml>")
