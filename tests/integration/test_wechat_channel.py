"""`/channels/wechat` on the real app: wechatpy builds the pushes and reads our replies.

The app runs on an injected clock; every request is signed with a timestamp
of that clock and a nonce of its own, as WeChat's servers send them. Safe mode
(an AES key configured) is the default here: pushes are encrypted.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from wechatpy.crypto import PrpCrypto, WeChatCrypto

from channels.wechat_crypto import signature
from dispatch.cases.actions import CloseCase
from dispatch.cases.events import Place
from dispatch.cases.read_model import projections as case_projections
from dispatch.cases.state import load_case
from dispatch.core.clock import FakeClock
from dispatch.core.messages import EVENT_TYPES
from dispatch.gis.geo import DistrictIndex
from dispatch.places.locate import LocateCase
from eventstore.subscriptions import ProjectionRunner
from gateway.settings import Settings, WechatSettings
from tests.conftest import auth
from tests.integration.alarm_helpers import events_of

TOKEN = "wechat-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx1234567890abcdef"
PUSH = ("<xml><ToUserName><![CDATA[gh_intake]]></ToUserName><FromUserName><![CDATA[{user}]]>"
        "</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[{type}]]></MsgType>{body}</xml>")
_msg_ids = itertools.count(int(time.time() * 1000))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, wechat=WechatSettings(TOKEN, AES_KEY, APPID))


@pytest.fixture
async def services(settings: Settings, clock: FakeClock) -> AsyncIterator[Any]:
    """Wired services on the injected clock (the replay window is checked against it)."""
    from gateway.bootstrap import build_services, close_services

    wired = await build_services(settings, clock=clock)
    yield wired
    await close_services(wired)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, services: Any) -> Any:
    """The whole app without background runners: tests drive projections themselves."""
    from gateway.app import create_app

    services.settings = settings
    return await aiohttp_client(create_app(settings, services=services, background=False))


@pytest.fixture
async def plain_client(aiohttp_client: Any, settings: Settings, services: Any) -> Any:
    """The app with a token only: plain mode."""
    from gateway.app import create_app

    plain = dataclasses.replace(settings, wechat=WechatSettings(TOKEN))
    services.settings = plain
    return await aiohttp_client(create_app(plain, services=services, background=False))


def text(content: str, user: str = "oUser_42", msg_id: int | None = None) -> str:
    msg_id = next(_msg_ids) if msg_id is None else msg_id
    return PUSH.format(user=user, ts="1763884800", type="text",
                       body=f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>")


def fresh(clock: FakeClock, age: float = 0) -> tuple[str, str]:
    """A timestamp `age` seconds before the clock's now and a nonce never used before."""
    return str(int(clock.now().timestamp() - age)), uuid.uuid4().hex[:16]


def signed(ts: str, nonce: str) -> dict[str, str]:
    return {"signature": signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}


def encrypt(xml: str | bytes) -> str:
    encrypted = PrpCrypto(base64.b64decode(AES_KEY + "=")).encrypt(xml, APPID)
    return encrypted.decode() if isinstance(encrypted, bytes) else str(encrypted)


OUTER = "<ToUserName><![CDATA[gh_intake]]></ToUserName>"


def safe_request(xml: str | bytes, clock: FakeClock, *, outer: str = OUTER,
                 openid: str | None = None) -> tuple[dict[str, str], bytes]:
    """The query and body WeChat sends in safe mode for a push."""
    ts, nonce = fresh(clock)
    encrypted = encrypt(xml)
    params = {**signed(ts, nonce), "encrypt_type": "aes",
              "msg_signature": signature(TOKEN, ts, nonce, encrypted)}
    if openid is not None:
        params["openid"] = openid
    return params, f"<xml>{outer}<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()


async def post(client: Any, xml: str, clock: FakeClock) -> str:
    """Send a push as WeChat does in safe mode; the decrypted reply."""
    params, body = safe_request(xml, clock)
    response = await client.post("/channels/wechat", params=params, data=body,
                                 headers={"Content-Type": "text/xml"})
    assert response.status == 200, await response.text()
    reply = await response.text()
    msg_signature = reply.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    return str(WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
        reply, msg_signature, params["timestamp"], params["nonce"]))


def case_of(reply: str) -> str:
    return reply.split("工单号 ")[1][:19]


async def refused(response: Any, code: str) -> None:
    assert response.status == 403, await response.text()
    assert (await response.json())["error"]["code"] == code


async def rejected_codes(services: Any) -> list[str]:
    return [e["data"]["code"] for e in await events_of(services, "InputRejected")]


async def board(client: Any, services: Any, case_id: str) -> Any:
    for projection in case_projections(services):
        await ProjectionRunner(services.store, projection).run_until_caught_up()
    listed = await client.get("/api/v1/cases", params={"status": "accepted"}, headers=auth("t-dispatcher"))
    assert case_id in [c["case_id"] for c in (await listed.json())["items"]]
    response = await client.get(f"/api/v1/cases/{case_id}", headers=auth("t-dispatcher"))
    assert response.status == 200
    return await response.json()


async def test_handshake_echoes_and_bad_signature_is_403(client: Any, clock: FakeClock) -> None:
    response = await client.get("/channels/wechat", params={**signed(*fresh(clock)), "echostr": "hello42"})
    assert response.status == 200 and await response.text() == "hello42"
    bad = await client.get("/channels/wechat",
                           params={**signed(*fresh(clock)), "signature": "0" * 40, "echostr": "x"})
    await refused(bad, "bad_signature")


async def test_stale_or_future_timestamp_is_403_on_the_injected_clock(
    client: Any, services: Any, clock: FakeClock
) -> None:
    params, body = safe_request(text("停电了"), clock)
    clock.advance(301)  # WeChat's request reaches us 301 s after it was signed
    await refused(await client.post("/channels/wechat", params=params, data=body), "stale_timestamp")
    params, body = safe_request(text("停电了"), clock)
    clock.advance(-302)  # ... or our clock is behind the signer's
    await refused(await client.post("/channels/wechat", params=params, data=body), "stale_timestamp")
    clock.advance(301)
    params, body = safe_request(text("停电了"), clock)
    clock.advance(299)  # inside the window: accepted
    assert (await client.post("/channels/wechat", params=params, data=body)).status == 200
    # The signature the old suite used (November 2023, a fixed nonce) is refused.
    old = {"signature": signature(TOKEN, "1700000001", "abc123"), "timestamp": "1700000001",
           "nonce": "abc123"}
    await refused(await client.get("/channels/wechat", params={**old, "echostr": "x"}), "stale_timestamp")
    assert await rejected_codes(services) == ["stale_timestamp"] * 3
    assert len(await events_of(services, "CaseRegistered")) == 1


async def test_replayed_push_is_403_and_recorded(client: Any, services: Any, clock: FakeClock) -> None:
    params, body = safe_request(text("路灯不亮了"), clock)
    assert (await client.post("/channels/wechat", params=params, data=body)).status == 200
    # The same signed query with another push encrypted in it: msg_signature covers the body.
    _, other = safe_request(text("井盖丢了", user="oUser_1"), clock)
    await refused(await client.post("/channels/wechat", params=params, data=other), "bad_signature")
    assert await rejected_codes(services) == ["bad_signature"]
    assert len(await events_of(services, "WeChatMessageReceived")) == 1


async def test_a_nonce_is_refused_to_any_other_request_than_the_one_that_used_it(
    plain_client: Any, services: Any, clock: FakeClock
) -> None:
    # Plain mode signs only the query: what refuses a captured one with another body is the nonce.
    params = signed(*fresh(clock))
    first = await plain_client.post("/channels/wechat", params=params, data=text("停电了").encode())
    assert first.status == 200
    await refused(await plain_client.post("/channels/wechat", params=params, data=text("井盖丢了").encode()),
                  "replayed")
    await refused(await plain_client.post("/channels/wechat", params={**params, "encrypt_type": "raw"},
                                          data=text("停电了").encode()), "replayed")
    assert await rejected_codes(services) == ["replayed", "replayed"]
    assert len(await events_of(services, "WeChatMessageReceived")) == 1


async def test_the_same_push_again_under_its_nonce_is_a_retry_answered_as_the_first(
    client: Any, services: Any, clock: FakeClock
) -> None:
    # WeChat retries an answer that took over 5 s; should the retry carry the same query, refusing
    # it would show the follower "该公众号暂时无法提供服务" for a push that was taken.
    params, body = safe_request(text("我家停电了，请尽快处理"), clock)
    answers = []
    for _ in range(2):
        response = await client.post("/channels/wechat", params=params, data=body)
        assert response.status == 200, await response.text()
        reply = await response.text()
        signed_by = reply.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
        answers.append(WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
            reply, signed_by, params["timestamp"], params["nonce"]))
    first, again = (a.split("<Content><![CDATA[")[1].split("]]>")[0] for a in answers)
    assert "工单号" in first and again == first
    assert await rejected_codes(services) == []
    assert len(await events_of(services, "WeChatMessageReceived")) == 1
    assert len(await events_of(services, "CaseRegistered")) == 1


async def test_replayed_handshake_is_403(client: Any, clock: FakeClock) -> None:
    params = {**signed(*fresh(clock)), "echostr": "e1"}
    assert (await client.get("/channels/wechat", params=params)).status == 200
    again = await client.get("/channels/wechat", params=params)  # a retry: the same answer
    assert again.status == 200 and await again.text() == "e1"
    await refused(await client.get("/channels/wechat", params={**params, "echostr": "e2"}), "replayed")


async def test_plain_push_in_safe_mode_is_403(client: Any, services: Any, clock: FakeClock) -> None:
    plain = text("停电了").encode()
    response = await client.post("/channels/wechat", params=signed(*fresh(clock)), data=plain)
    await refused(response, "encryption_required")
    # Saying encrypt_type=aes without an Encrypt element is no better.
    response = await client.post("/channels/wechat", params={**signed(*fresh(clock)), "encrypt_type": "aes"},
                                 data=text("停电了").encode())
    await refused(response, "encryption_required")
    assert await rejected_codes(services) == ["encryption_required"] * 2
    assert await events_of(services, "WeChatMessageReceived") == []


async def test_handshake_signature_cannot_be_used_for_a_push_in_safe_mode(
    client: Any, services: Any, clock: FakeClock
) -> None:
    params = signed(*fresh(clock))
    assert (await client.get("/channels/wechat", params={**params, "echostr": "e"})).status == 200
    _, body = safe_request(text("停电了"), clock)  # it has no msg_signature over this body
    await refused(await client.post("/channels/wechat", params={**params, "encrypt_type": "aes"}, data=body),
                  "bad_signature")
    assert await events_of(services, "WeChatMessageReceived") == []


async def test_handshake_signature_cannot_be_used_for_a_push_in_plain_mode(
    plain_client: Any, services: Any, clock: FakeClock
) -> None:
    # WeChat defines both signatures alike, so what refuses it is the nonce the handshake spent.
    params = signed(*fresh(clock))
    assert (await plain_client.get("/channels/wechat", params={**params, "echostr": "e"})).status == 200
    await refused(await plain_client.post("/channels/wechat", params=params, data=text("停电了").encode()),
                  "replayed")
    assert await events_of(services, "WeChatMessageReceived") == []


async def test_sender_outside_the_encryption_must_match_inside(
    client: Any, services: Any, clock: FakeClock
) -> None:
    inner = text("停电了", user="oVictim")
    params, body = safe_request(inner, clock, openid="oAttacker")
    await refused(await client.post("/channels/wechat", params=params, data=body), "sender_mismatch")
    compatible = "<ToUserName>gh_intake</ToUserName><FromUserName>oAttacker</FromUserName>"
    params, body = safe_request(inner, clock, outer=compatible)
    await refused(await client.post("/channels/wechat", params=params, data=body), "sender_mismatch")
    # Compatible mode, consistent: the decrypted XML is what counts.
    params, body = safe_request(inner, clock, outer=compatible.replace("oAttacker", "oVictim"),
                                openid="oVictim")
    assert (await client.post("/channels/wechat", params=params, data=body)).status == 200
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["caller"]["openid"] == "oVictim"


async def test_complaint_opens_a_case_at_once_and_the_phone_joins_it(
    client: Any, services: Any, clock: FakeClock
) -> None:
    first = await post(client, text("楼道灯坏了，一直没人修", msg_id=5001), clock)
    case_id = case_of(first)
    assert "手机号码" in first
    shown = await board(client, services, case_id)
    assert shown["channel"] == "wechat" and shown["flags"] == ["awaiting_phone"]
    assert shown["caller"]["openid"] == "oUser_42" and shown["caller"]["phone"] is None
    more = await post(client, text("三楼也不亮", msg_id=5002), clock)
    assert case_id in more and "手机号码" in more
    reply = await post(client, text("139 1234 5678", msg_id=5003), clock)
    assert case_of(reply) == case_id
    again = await post(client, text("139 1234 5678", msg_id=5003), clock)  # WeChat's retry of the MsgId
    assert again == reply
    assert len(await events_of(services, "WeChatMessageReceived")) == 3
    [registered] = await events_of(services, "CaseRegistered")
    assert registered["stream"] == f"case-{case_id}"
    [given] = await events_of(services, "CallerPhoneGiven")
    assert given["stream"] == f"case-{case_id}" and given["data"]["phone"] == "13912345678"
    [joined] = await events_of(services, "CaseMessageReceived")
    assert joined["stream"] == f"case-{case_id}" and joined["data"]["text"] == "三楼也不亮"
    shown = await board(client, services, case_id)
    assert shown["flags"] == [] and shown["caller"]["phone"] == "13912345678"
    # Once the case is closed, the next complaint opens a new case with the known number.
    await services.bus.handle(CloseCase(case_id=case_id, reason="answered", actor="agent:A001"))
    reply = await post(client, text("又坏了", msg_id=5004), clock)
    assert case_of(reply) != case_id and "手机号码" not in reply
    second = await board(client, services, case_of(reply))
    assert second["flags"] == [] and second["caller"]["phone"] == "13912345678"
    async with services.pool.acquire() as conn:  # every event the pushes wrote is a declared type
        assert {r["type"] for r in await conn.fetch("SELECT DISTINCT type FROM events")} <= set(EVENT_TYPES)


async def test_pushes_of_one_follower_at_once_open_one_case(
    client: Any, services: Any, clock: FakeClock
) -> None:
    replies = await asyncio.gather(*(post(client, text(f"第{n}条：停电了", user="oBusy"), clock)
                                     for n in range(4)))
    assert len({case_of(r) for r in replies}) == 1
    assert len(await events_of(services, "CaseRegistered")) == 1
    assert len(await events_of(services, "CaseMessageReceived")) == 3


async def test_location_goes_with_the_next_case_or_the_open_one(
    client: Any, services: Any, clock: FakeClock
) -> None:
    location = PUSH.format(user="oUser_7", ts="1763884805", type="location",
                           body="<Location_X>34.3321</Location_X><Location_Y>108.7145</Location_Y>"
                                "<Scale>16</Scale><Label><![CDATA[咸阳市人民路]]></Label><MsgId>6002</MsgId>")
    assert "咸阳市人民路" in await post(client, location, clock)
    reply = await post(client, text("这里井盖丢了", "oUser_7"), clock)
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["case_id"] == case_of(reply)
    place = case["data"]["location"]
    assert place["lat"] != 34.3321 and abs(place["lat"] - 34.3321) < 0.01  # converted from GCJ-02
    assert case["data"]["address"] == "咸阳市人民路"
    later = location.replace("6002", "6004").replace("人民路", "渭阳路")
    assert case_of(reply) in await post(client, later, clock)
    [joined] = await events_of(services, "CaseMessageReceived")
    assert joined["stream"] == case["stream"] and joined["data"]["text"] == "咸阳市渭阳路"
    assert joined["data"]["contact"]["location"]["lat"] == place["lat"]


async def test_events_get_a_reply_and_dedup_on_user_time_event(
    client: Any, services: Any, clock: FakeClock
) -> None:
    subscribe = PUSH.format(user="oUser_9", ts="1763884900", type="event",
                            body="<Event><![CDATA[subscribe]]></Event>")
    assert "欢迎" in await post(client, subscribe, clock)
    assert "欢迎" in await post(client, subscribe, clock)
    click = PUSH.format(user="oUser_9", ts="1763884901", type="event",
                        body="<Event>CLICK</Event><EventKey>category:power_fault</EventKey>")
    await post(client, click, clock)
    gps = PUSH.format(user="oUser_9", ts="1763884902", type="event",
                      body="<Event>LOCATION</Event><Latitude>23.02</Latitude><Longitude>113.75</Longitude>"
                           "<Precision>30</Precision>")
    await post(client, gps, clock)
    assert len(await events_of(services, "WeChatMessageReceived")) == 3
    await post(client, text("家里没电", "oUser_9"), clock)
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["category"] == "power_fault" and abs(case["data"]["location"]["lat"] - 23.02) < 0.01


async def test_plain_mode_without_an_aes_key(plain_client: Any, services: Any, clock: FakeClock) -> None:
    ts, nonce = fresh(clock)
    response = await plain_client.post("/channels/wechat", params=signed(ts, nonce),
                                       data=text("停电了", "oPlain").encode())
    assert response.status == 200
    assert "工单号" in await response.text() and "<Encrypt>" not in await response.text()


async def test_a_compatible_mode_push_is_taken_from_its_plain_fields_without_an_aes_key(
    plain_client: Any, services: Any, clock: FakeClock
) -> None:
    """WeChat's compatible mode (兼容模式) sends the plain fields beside `Encrypt`, with
    `encrypt_type=aes` and the plain `signature`, so that a server without the key goes on as
    before ("公众号回复明文或密文均可，不影响现有消息收发"): a token-only server takes the push
    from its plain fields and replies in plain, not 503. A push with nothing but `Encrypt`
    (safe mode) still needs the key."""
    inner = text("路灯不亮了", "oCompat")
    ts, nonce = fresh(clock)
    encrypted = encrypt(inner)
    params = {**signed(ts, nonce), "encrypt_type": "aes", "openid": "oCompat",
              "msg_signature": signature(TOKEN, ts, nonce, encrypted)}
    body = inner.replace("</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>").encode()
    response = await plain_client.post("/channels/wechat", params=params, data=body)
    assert response.status == 200, await response.text()
    reply = await response.text()
    assert "工单号" in reply and "<Encrypt>" not in reply
    assert len(await events_of(services, "CaseRegistered")) == 1
    ts, nonce = fresh(clock)
    only = f"<xml>{OUTER}<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()
    safe_only = await plain_client.post("/channels/wechat", data=only, params={
        **signed(ts, nonce), "encrypt_type": "aes", "msg_signature": signature(TOKEN, ts, nonce, encrypted)})
    assert safe_only.status == 503


async def test_an_overlong_msgid_or_event_is_400_not_a_store_error(
    client: Any, services: Any, clock: FakeClock
) -> None:
    """`MsgId` (WeChat: a 64-bit integer) and `Event` make the push's idempotency key: a
    3,000-character one overflowed PostgreSQL's index on the keys and answered 500
    `store_error`. What WeChat never sends is 400 `bad_field`, recorded."""
    long_id = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(50))  # incompressible
    for body in (f"<Content><![CDATA[停电了]]></Content><MsgId>{long_id}</MsgId>",
                 f"<Event><![CDATA[{long_id}]]></Event>"):
        xml = PUSH.format(user="oLongKey", ts="1763884800", type="event" if "Event" in body else "text",
                          body=body)
        params, sent = safe_request(xml, clock)
        response = await client.post("/channels/wechat", params=params, data=sent)
        assert response.status == 400, await response.text()
        assert (await response.json())["error"]["code"] == "bad_field"
    assert await rejected_codes(services) == ["bad_field"] * 2
    assert await post(client, text("停电了", "oLongKey", msg_id=2**63 - 1), clock)  # WeChat's largest


async def test_malformed_xml_is_400_and_recorded(plain_client: Any, services: Any, clock: FakeClock) -> None:
    for junk in (b"<xml><oops>", b'<!DOCTYPE a [<!ENTITY x "y">]><xml>&x;</xml>', b"\xff\xfe"):
        response = await plain_client.post("/channels/wechat", params=signed(*fresh(clock)), data=junk)
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "bad_xml"
    assert await rejected_codes(services) == ["bad_xml"] * 3


def billion_laughs() -> bytes:
    """A push of under 2 KB in UTF-16 whose entities expand to a million characters.

    Small enough for expat's own amplification limit to let it through: only
    refusing the DTD stops it.
    """
    entities = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(5))
    bomb = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [' + entities + ']>'
            '<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>1</CreateTime>'
            '<MsgType>text</MsgType><Content>&f;</Content><MsgId>1</MsgId></xml>').encode("utf-16")
    assert len(bomb) < 2048 and b"<!DOCTYPE" not in bomb.upper()
    return bomb


async def test_utf16_billion_laughs_is_refused(plain_client: Any, services: Any, clock: FakeClock) -> None:
    params = signed(*fresh(clock))
    response = await plain_client.post("/channels/wechat", params=params, data=billion_laughs())
    assert response.status == 400 and (await response.json())["error"]["code"] == "bad_xml"
    assert await rejected_codes(services) == ["bad_xml"]


async def test_utf16_billion_laughs_inside_the_encryption_is_refused(
    client: Any, services: Any, clock: FakeClock
) -> None:
    params, body = safe_request(billion_laughs(), clock)
    response = await client.post("/channels/wechat", params=params, data=body)
    assert response.status == 400 and (await response.json())["error"]["code"] == "bad_xml"
    assert await rejected_codes(services) == ["bad_xml"]


async def test_unconfigured_wechat_is_503(aiohttp_client: Any, settings: Settings, services: Any,
                                          clock: FakeClock) -> None:
    from gateway.app import create_app

    bare = dataclasses.replace(settings, wechat=WechatSettings())
    services.settings = bare
    client = await aiohttp_client(create_app(bare, services=services, background=False))
    response = await client.get("/channels/wechat", params=signed(*fresh(clock)))
    assert response.status == 503


def load_district(services: Any) -> None:
    """秦都区 (610402) in the district index, as the reference follower of a running app has it."""
    features = json.loads((Path(__file__).parents[2] / "gis_data" / "districts.geojson").read_text("utf-8"))
    services.districts = DistrictIndex.from_features(
        f for f in features["features"] if f["properties"]["adcode"] == "610402")


def _location(user: str, msg_id: int, lat: float = 34.3321, lon: float = 108.7145) -> str:
    return PUSH.format(user=user, ts="1763884805", type="location",
                       body=f"<Location_X>{lat}</Location_X><Location_Y>{lon}</Location_Y><Scale>16</Scale>"
                            f"<Label><![CDATA[咸阳市人民路]]></Label><MsgId>{msg_id}</MsgId>")


async def test_a_location_names_the_district_it_lies_in(client: Any, services: Any, clock: FakeClock) -> None:
    """Bug this catches: a WeChat case at a point inside a loaded district registered without the
    district, so the board's district filter and the routing to the district's sub-centre miss it."""
    load_district(services)
    await post(client, _location("oDistrict", 6101), clock)
    reply = await post(client, text("这里停电了", "oDistrict"), clock)
    shown = await board(client, services, case_of(reply))
    assert shown["location"]["district"] == "610402"
    assert shown["location"]["district_name"] == "秦都区"


async def test_a_location_sent_to_an_open_case_without_a_place_locates_it(
    client: Any, services: Any, clock: FakeClock
) -> None:
    """Bug this catches: the follower's location (the welcome asks for it) joined the open case only
    as a message; the case kept no place, so nothing could be dispatched near it."""
    load_district(services)
    reply = await post(client, text("家里停电了", "oLater"), clock)
    case_id = case_of(reply)
    assert (await board(client, services, case_id))["location"] is None
    assert case_id in await post(client, _location("oLater", 6201), clock)
    shown = await board(client, services, case_id)
    place = shown["location"]
    assert place is not None and place["source"] == "given" and place["district"] == "610402"
    assert place["lat"] != 34.3321 and abs(place["lat"] - 34.3321) < 0.01  # converted from GCJ-02
    assert len(await events_of(services, "CaseMessageReceived")) == 1  # and the message is kept
    # A place an agent set stands: a later location is a message only.
    await services.bus.handle(LocateCase(case_id, Place(34.30, 108.70), "agent", actor="agent:A001"))
    await post(client, _location("oLater", 6202, lat=34.35), clock)
    assert (await load_case(services.store, case_id)).location == Place(34.30, 108.70)
    assert len(await events_of(services, "CaseLocated")) == 2


async def test_a_photo_or_voice_sent_to_an_open_case_joins_it_and_the_reply_names_it(
    client: Any, services: Any, clock: FakeClock
) -> None:
    """Bug this catches: a follower's photo of the fault (or a voice message, with WeChat's
    recognition of it) sent after the complaint was filed with no case: the agent never saw it
    and the reply asked for words without naming the case."""
    photo = PUSH.format(user="oMedia", ts="1763884806", type="image",
                        body="<PicUrl><![CDATA[http://mmbiz.qpic.cn/fault.jpg]]></PicUrl>"
                             "<MediaId><![CDATA[media-1]]></MediaId><MsgId>6301</MsgId>")
    assert "工单号" not in await post(client, photo, clock)  # no open case: nothing to join
    case_id = case_of(await post(client, text("电线杆倒了", "oMedia"), clock))
    reply = await post(client, photo.replace("6301", "6302"), clock)
    assert case_id in reply and "图片" in reply
    voice = PUSH.format(user="oMedia", ts="1763884807", type="voice",
                        body="<MediaId><![CDATA[media-2]]></MediaId><Format><![CDATA[amr]]></Format>"
                             "<Recognition><![CDATA[就在小区门口]]></Recognition><MsgId>6303</MsgId>")
    assert case_id in await post(client, voice, clock)
    joined = [e["data"] for e in await events_of(services, "CaseMessageReceived")]
    assert [(j["case_id"], j["contact"]["kind"]) for j in joined] == [
        (case_id, "wechat_image"), (case_id, "wechat_voice")]
    assert joined[0]["text"] == "http://mmbiz.qpic.cn/fault.jpg" and joined[1]["text"] == "就在小区门口"


async def test_an_encrypted_echostr_is_answered_decrypted(client: Any, clock: FakeClock) -> None:
    """Bug this catches: a safe-mode handshake (WeChat Work's and newer platforms' form: the
    `echostr` encrypted, `msg_signature` over it) answered with the ciphertext, so the check fails."""
    ts, nonce = fresh(clock)
    echostr = encrypt("7216534987365")
    params = {"msg_signature": signature(TOKEN, ts, nonce, echostr), "timestamp": ts, "nonce": nonce,
              "echostr": echostr}
    response = await client.get("/channels/wechat", params=params)
    assert response.status == 200 and await response.text() == "7216534987365"
    ts, nonce = fresh(clock)
    forged = {**params, "msg_signature": signature(TOKEN, ts, nonce, "other"), "timestamp": ts,
              "nonce": nonce}
    await refused(await client.get("/channels/wechat", params=forged), "bad_signature")
