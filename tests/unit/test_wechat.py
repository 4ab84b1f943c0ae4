"""WeChat wire format: wechatpy builds pushes and decrypts our replies; conversation rules."""

from __future__ import annotations

import pytest
from wechatpy.crypto import PrpCrypto, WeChatCrypto

from channels.errors import BadInput, BadSignature
from channels.wechat import parse_xml, text_reply, to_push
from channels.wechat_crypto import SafeMode, check_signature, signature
from dispatch.gis.geo import geodesic_m, wgs84_to_gcj02
from dispatch.intake.wechat import ASK_PHONE, Conversation, WeChatPush, decide, step

TOKEN = "tok3n"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx1234567890abcdef"
TEXT = (b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser_1]]></FromUserName>"
        b"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        b"<Content><![CDATA[%s]]></Content><MsgId>%s</MsgId></xml>")


def text_push(content: str, msg_id: str = "1001") -> WeChatPush:
    return to_push(parse_xml(TEXT % (content.encode(), msg_id.encode())))


def test_signature_matches_wechat_definition() -> None:
    from wechatpy.utils import check_signature as wechatpy_check

    sign = signature(TOKEN, "1700000000", "nonce1")
    wechatpy_check(TOKEN, sign, "1700000000", "nonce1")  # raises if different
    check_signature(sign, TOKEN, "1700000000", "nonce1")
    with pytest.raises(BadSignature):
        check_signature("0" * 40, TOKEN, "1700000000", "nonce1")


def test_decrypts_wechatpy_push_and_wechatpy_decrypts_our_reply() -> None:
    xml = (TEXT % ("停电了".encode(), b"77")).decode()
    encrypted = PrpCrypto(SafeMode(TOKEN, AES_KEY, APPID)._key).encrypt(xml, APPID)
    encrypted = encrypted.decode() if isinstance(encrypted, bytes) else encrypted
    safe = SafeMode(TOKEN, AES_KEY, APPID)
    inner = safe.decrypt(encrypted, signature(TOKEN, "170", "n1", encrypted), "170", "n1")
    assert to_push(parse_xml(inner)).content == "停电了"
    reply = safe.encrypt(text_reply(to_push(parse_xml(inner)), "已受理 C1"), "171", "n2")
    fields = parse_xml(reply.encode())
    plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(reply, fields["MsgSignature"], "171", "n2")
    assert "已受理 C1" in plain and "oUser_1" in plain


def test_wrong_appid_or_signature_is_refused() -> None:
    xml = (TEXT % (b"x", b"1")).decode()
    other = PrpCrypto(SafeMode(TOKEN, AES_KEY, APPID)._key).encrypt(xml, "wxOTHER")
    other = other.decode() if isinstance(other, bytes) else other
    safe = SafeMode(TOKEN, AES_KEY, APPID)
    with pytest.raises(BadSignature):
        safe.decrypt(other, signature(TOKEN, "1", "n", other), "1", "n")
    with pytest.raises(BadSignature):
        safe.decrypt(other, "bad", "1", "n")


@pytest.mark.parametrize("body", [
    b"<xml><a>", b"not xml", b"<other/>", b'<!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>',
    b"<xml><ToUserName>gh</ToUserName></xml>",
])
def test_malformed_xml_is_bad_input(body: bytes) -> None:
    with pytest.raises(BadInput):
        to_push(parse_xml(body))


def test_location_message_is_stored_in_wgs84_within_a_metre() -> None:
    true_lat, true_lon = 34.3295, 108.7093  # Xianyang
    gcj_lat, gcj_lon = wgs84_to_gcj02(true_lat, true_lon)
    xml = (b"<xml><ToUserName>gh</ToUserName><FromUserName>oUser_1</FromUserName><CreateTime>1</CreateTime>"
           b"<MsgType>location</MsgType><Location_X>%f</Location_X><Location_Y>%f</Location_Y>"
           b"<Scale>15</Scale><Label>Xianyang</Label><MsgId>5</MsgId></xml>") % (gcj_lat, gcj_lon)
    push = to_push(parse_xml(xml))
    assert push.lat is not None and push.lon is not None
    assert geodesic_m(push.lat, push.lon, true_lat, true_lon) < 1.0
    assert geodesic_m(gcj_lat, gcj_lon, true_lat, true_lon) > 100  # the offset is real


def test_complaint_waits_for_a_phone_number() -> None:
    state = Conversation()
    complaint = text_push("小区路灯坏了一周", "1")
    cmd, reply = decide(state, complaint, "wechat-oUser_1")
    assert cmd is None and reply == ASK_PHONE
    state = step(state, complaint)
    phone = text_push("13912345678", "2")
    cmd, _ = decide(state, phone, "wechat-oUser_1")
    assert cmd is not None and cmd.description == "小区路灯坏了一周"
    assert cmd.caller.phone == "13912345678" and cmd.caller.openid == "oUser_1"
    assert cmd.idempotency_key == "wechat:2:case"
    state = step(state, phone)
    cmd, _ = decide(state, text_push("又坏了", "3"), "wechat-oUser_1")
    assert cmd is not None and cmd.description == "又坏了"


def test_event_keys() -> None:
    fields = {"ToUserName": "gh", "FromUserName": "oU", "CreateTime": "9", "MsgType": "event",
              "Event": "subscribe"}
    push = to_push(fields)
    assert push.idempotency_key == "wechat:oU:9:subscribe"
    click = to_push({**fields, "Event": "CLICK", "EventKey": "category:power_fault"})
    assert step(Conversation(), click).category == "power_fault"
