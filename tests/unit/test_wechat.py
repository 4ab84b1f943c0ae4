"""WeChat wire format: wechatpy builds pushes and decrypts our replies; conversation rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from wechatpy.crypto import PrpCrypto, WeChatCrypto

from channels.errors import BadInput, BadSignature
from channels.wechat import check_envelope, parse_xml, text_reply, to_push
from channels.wechat_crypto import SafeMode, check_fresh, check_signature, signature
from dispatch.cases.events import AWAITING_PHONE, CallerPhoneGiven
from dispatch.core.personal import pseudonym
from dispatch.gis.geo import geodesic_m, wgs84_to_gcj02
from dispatch.intake.sms import CaseMessageReceived
from dispatch.intake.wechat import (
    ASK_PHONE,
    Conversation,
    WeChatMessageReceived,
    WeChatPush,
    case_events,
    conversation_of,
    file_push,
    mentioned_phone,
    phone_in,
    registration,
    reply,
    step,
)
from gateway.nonces import NonceBook

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


def _filed(state: Conversation, push: WeChatPush, *, case_open: bool = False) -> WeChatMessageReceived:
    return file_push(state, push, "<xml/>", case_open=case_open, new_case=f"C-{push.msg_id}")


def test_a_complaint_opens_a_case_at_once_awaiting_a_phone_number() -> None:
    complaint = _filed(Conversation(), text_push("小区路灯坏了一周", "1"))
    assert complaint.opened and complaint.case_id == "C-1"
    cmd = registration(Conversation(), complaint)
    assert cmd.case_id == "C-1" and cmd.flags == (AWAITING_PHONE,) and cmd.channel == "wechat"
    assert cmd.caller.openid == "oUser_1" and cmd.caller.phone is None
    assert cmd.idempotency_key == "wechat:1:case" and cmd.description == "小区路灯坏了一周"
    assert "C-1" in reply(Conversation(), complaint) and ASK_PHONE in reply(Conversation(), complaint)
    state = step(Conversation(), complaint)
    assert state.case_id == "C-1" and state.opening == cmd


def test_the_phone_number_joins_the_open_case_instead_of_opening_one() -> None:
    state = step(Conversation(), _filed(Conversation(), text_push("小区路灯坏了一周", "1")))
    phone = _filed(state, text_push("+86 139 1234 5678", "2"), case_open=True)
    assert phone.case_id == "C-1" and not phone.opened
    [evt] = case_events(state, phone, datetime(2026, 11, 23, tzinfo=UTC))
    assert isinstance(evt, CallerPhoneGiven) and evt.case_id == "C-1" and evt.phone == "13912345678"
    state = step(state, phone)
    follow_up = _filed(state, text_push("又坏了", "3"), case_open=True)
    assert follow_up.case_id == "C-1" and not follow_up.opened
    [joined] = case_events(state, follow_up, datetime(2026, 11, 23, tzinfo=UTC))
    assert isinstance(joined, CaseMessageReceived) and joined.phone == "13912345678"
    assert ASK_PHONE not in reply(state, follow_up)
    # The case was closed meanwhile: the next text opens a case with the number known.
    fresh = _filed(state, text_push("又坏了", "4"), case_open=False)
    assert fresh.opened and fresh.case_id == "C-4"
    assert registration(state, fresh).flags == () and registration(state, fresh).caller.phone == "13912345678"


def test_a_mobile_number_in_a_complaint_counts_and_service_numbers_do_not() -> None:
    assert mentioned_phone("楼道灯坏了，电话139-1234-5678，谢谢") == "13912345678"
    assert mentioned_phone("停电了 +86 13912345678") == "13912345678"
    assert [phone_in(t) for t in ("110", "12345", "95598", "停电了")] == [None] * 4
    assert mentioned_phone("户号6100012345678901停电") is None
    complaint = _filed(Conversation(), text_push("路灯坏了，联系13912345678", "1"))
    assert complaint.opened and registration(Conversation(), complaint).flags == ()
    assert ASK_PHONE not in reply(Conversation(), complaint)
    waiting = step(Conversation(), _filed(Conversation(), text_push("路灯坏了", "1")))
    later = _filed(waiting, text_push("补充：我的电话是13912345678", "2"), case_open=True)
    message, given = case_events(waiting, later, datetime(2026, 11, 23, tzinfo=UTC))
    assert isinstance(message, CaseMessageReceived) and isinstance(given, CallerPhoneGiven)
    assert given.phone == "13912345678" and step(waiting, later).phone == "13912345678"


def test_a_phone_number_without_an_open_case_is_remembered() -> None:
    phone = _filed(Conversation(), text_push("13912345678", "1"))
    assert phone.case_id is None and "请描述" in reply(Conversation(), phone)
    assert conversation_of([phone]).phone == "13912345678"


def test_event_keys() -> None:
    fields = {"ToUserName": "gh", "FromUserName": "oU", "CreateTime": "9", "MsgType": "event",
              "Event": "subscribe"}
    push = to_push(fields)
    assert push.idempotency_key == f"wechat:{pseudonym('oU')}:9:subscribe"  # no OpenID in a key
    click = to_push({**fields, "Event": "CLICK", "EventKey": "category:power_fault"})
    assert step(Conversation(), WeChatMessageReceived(click, "")).category == "power_fault"


def test_utf16_billion_laughs_is_refused() -> None:
    bomb = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><Content>&b;</Content></xml>')
    with pytest.raises(BadInput):
        parse_xml(bomb.encode("utf-16"))
    assert parse_xml("<xml><Content>好</Content></xml>".encode("utf-16")) == {"Content": "好"}


def test_timestamps_outside_the_window_are_refused() -> None:
    check_fresh("1000", 1300, 300)
    check_fresh("1600", 1300, 300)
    for stale in ("999", "1601", "x"):
        with pytest.raises(BadSignature):
            check_fresh(stale, 1300, 300)


def test_the_envelope_must_name_the_sender_inside() -> None:
    inner = {"ToUserName": "gh", "FromUserName": "oA"}
    check_envelope({"ToUserName": "gh", "Encrypt": "x"}, inner, "oA")
    check_envelope({}, inner, None)
    for outer, openid in (({"FromUserName": "oB"}, None), ({}, "oB"), ({"ToUserName": "gh2"}, None)):
        with pytest.raises(BadSignature):
            check_envelope(outer, inner, openid)


async def test_nonce_book_without_redis_remembers_for_the_ttl() -> None:
    now = [0.0]
    book = NonceBook(None, "p:", max_local=2, now=lambda: now[0])
    assert await book.first_use("a", 10, "1") and not await book.first_use("a", 10, "2")
    now[0] = 10.5
    assert await book.first_use("a", 10, "2")
    assert await book.first_use("b", 10, "1") and await book.first_use("c", 10, "1")
    assert await book.first_use("a", 10, "3")  # forgotten: at most two are kept


async def test_nonce_book_without_redis_lets_the_same_request_again_and_refuses_another() -> None:
    book = NonceBook(None, "p:")
    assert await book.first_use("a", 10, "POST 1") and await book.first_use("a", 10, "POST 1")
    assert not await book.first_use("a", 10, "POST 2") and not await book.first_use("a", 10, "")


def test_the_view_only_verifies_parses_and_sends_one_command() -> None:
    import ast
    from pathlib import Path

    import gateway.views.wechat as view

    tree = ast.parse(Path(view.__file__).read_text("utf-8"))
    touched = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not touched & {"store", "append", "pool"}
    called = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert called.count("ReceiveWeChatPush") == 1
