"""WeChat official account wire format: push XML in, passive text replies out.

A push is checked and parsed into `dispatch.intake.wechat.WeChatPush`, its
GCJ-02 coordinates converted to WGS84; what it does is the conversation
rules' (`dispatch.intake.wechat`).
"""

from __future__ import annotations

import re
import time
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from channels.errors import BadInput, BadSignature
from dispatch.gis.geo import to_wgs84
from dispatch.intake.wechat import WeChatPush

_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def parse_xml(body: bytes) -> dict[str, str]:
    """The child elements of a WeChat `<xml>` document.

    Any DTD is refused by the parser itself, after it has decoded the body in
    whatever encoding the body declares (a byte search for `<!DOCTYPE` misses
    a UTF-16 document, and a 1 KB entity bomb expands to megabytes).
    """
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise BadInput("XML with a DTD or entities is not accepted", code="bad_xml") from exc
    except (ParseError, ValueError) as exc:
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
    created = fields["CreateTime"]
    if not _SAFE_ID.match(fields["FromUserName"]) or not (created.isdigit() and len(created) <= 10):
        raise BadInput("FromUserName or CreateTime is malformed", code="bad_field")
    for name in ("MsgType", "MsgId", "Event"):  # they make the idempotency key: WeChat's are short
        if fields.get(name) and not _SAFE_ID.match(fields[name]):
            raise BadInput(f"{name} is malformed", code="bad_field")
    msg_type = fields["MsgType"]
    if msg_type == "location":
        lat, lon = _gcj(fields, "Location_X", "Location_Y")
    else:
        lat, lon = _gcj(fields, "Latitude", "Longitude")
    return WeChatPush(
        to_user=fields["ToUserName"], from_user=fields["FromUserName"],
        create_time=fields["CreateTime"], msg_type=msg_type, msg_id=fields.get("MsgId") or None,
        content=fields.get("Content") or (fields.get("Recognition") if msg_type == "voice" else None) or None,
        lat=lat, lon=lon, label=fields.get("Label") or None,
        event=fields.get("Event") or None, event_key=fields.get("EventKey") or None,
        media_url=fields.get("PicUrl") or fields.get("Url") or None, media_id=fields.get("MediaId") or None,
    )


def check_envelope(outer: dict[str, str], inner: dict[str, str], openid: str | None) -> None:
    """Raise `BadSignature` unless what is outside the encryption names the sender inside it.

    In safe mode only the decrypted XML is signed: the `openid` query parameter
    and a compatible-mode envelope's plain fields are not, so they must agree
    with it (or be absent), and only the inner XML is used.
    """
    claims = [("ToUserName", outer.get("ToUserName")), ("FromUserName", outer.get("FromUserName")),
              ("FromUserName", openid)]
    for name, claimed in claims:
        if claimed and claimed != inner.get(name):
            raise BadSignature(f"{name} outside the encrypted message differs from inside it",
                               code="sender_mismatch")


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(push: WeChatPush, content: str, now: float | None = None) -> str:
    """The passive text reply to a push."""
    created = int(now if now is not None else time.time())
    return (f"<xml><ToUserName>{_cdata(push.from_user)}</ToUserName>"
            f"<FromUserName>{_cdata(push.to_user)}</FromUserName><CreateTime>{created}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content>{_cdata(content)}</Content></xml>")
