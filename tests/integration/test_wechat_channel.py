"""`/channels/wechat` on the real app: wechatpy builds the pushes and reads our replies."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from wechatpy.crypto import WeChatCrypto

from channels.wechat_crypto import signature
from gateway.settings import Settings, WechatSettings
from tests.integration.alarm_helpers import events_of

TOKEN = "wechat-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx1234567890abcdef"
PUSH = ("<xml><ToUserName><![CDATA[gh_intake]]></ToUserName><FromUserName><![CDATA[{user}]]>"
        "</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[{type}]]></MsgType>{body}</xml>")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, wechat=WechatSettings(TOKEN, AES_KEY, APPID))


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, services: Any) -> Any:
    """The whole app without background runners: tests drive projections themselves."""
    from gateway.app import create_app

    services.settings = settings
    return await aiohttp_client(create_app(settings, services=services, background=False))


def text(content: str, msg_id: str, user: str = "oUser_42") -> str:
    return PUSH.format(user=user, ts="1700000000", type="text",
                       body=f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>")


def signed(ts: str = "1700000001", nonce: str = "abc123") -> dict[str, str]:
    return {"signature": signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}


async def post(client: Any, xml: str) -> str:
    response = await client.post("/channels/wechat", params=signed(), data=xml.encode(),
                                 headers={"Content-Type": "text/xml"})
    assert response.status == 200, await response.text()
    return str(await response.text())


async def test_handshake_echoes_and_bad_signature_is_403(client: Any) -> None:
    response = await client.get("/channels/wechat", params={**signed(), "echostr": "hello42"})
    assert response.status == 200 and await response.text() == "hello42"
    bad = await client.get("/channels/wechat", params={**signed(), "signature": "0" * 40, "echostr": "x"})
    assert bad.status == 403
    assert (await bad.json())["error"]["code"] == "bad_signature"


async def test_complaint_asks_for_phone_then_opens_case_and_retry_is_idempotent(
    client: Any, services: Any
) -> None:
    first = await post(client, text("楼道灯坏了，一直没人修", "5001"))
    assert "手机号码" in first
    reply = await post(client, text("13912345678", "5002"))
    assert "工单号 C" in reply
    case_id = reply.split("工单号 ")[1].split("，")[0]
    again = await post(client, text("13912345678", "5002"))  # WeChat's retry of the same MsgId
    assert case_id in again
    assert len(await events_of(services, "WeChatMessageReceived")) == 2
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["case_id"] == case_id and case["data"]["channel"] == "wechat"
    assert case["data"]["caller"]["phone"] == "13912345678"
    assert case["data"]["caller"]["openid"] == "oUser_42"


async def test_location_then_text_gives_the_case_a_wgs84_place(client: Any, services: Any) -> None:
    await post(client, text("13912345678", "6001", "oUser_7"))
    location = PUSH.format(user="oUser_7", ts="1700000005", type="location",
                           body="<Location_X>34.3321</Location_X><Location_Y>108.7145</Location_Y>"
                                "<Scale>16</Scale><Label><![CDATA[咸阳市人民路]]></Label><MsgId>6002</MsgId>")
    assert "咸阳市人民路" in await post(client, location)
    reply = await post(client, text("这里井盖丢了", "6003", "oUser_7"))
    assert "工单号" in reply
    [case] = await events_of(services, "CaseRegistered")
    place = case["data"]["location"]
    assert place["lat"] != 34.3321 and abs(place["lat"] - 34.3321) < 0.01  # converted from GCJ-02
    assert case["data"]["address"] == "咸阳市人民路"


async def test_events_get_a_reply_and_dedup_on_user_time_event(client: Any, services: Any) -> None:
    subscribe = PUSH.format(user="oUser_9", ts="1700000100", type="event",
                            body="<Event><![CDATA[subscribe]]></Event>")
    assert "欢迎" in await post(client, subscribe)
    assert "欢迎" in await post(client, subscribe)
    click = PUSH.format(user="oUser_9", ts="1700000101", type="event",
                        body="<Event>CLICK</Event><EventKey>category:power_fault</EventKey>")
    await post(client, click)
    gps = PUSH.format(user="oUser_9", ts="1700000102", type="event",
                      body="<Event>LOCATION</Event><Latitude>23.02</Latitude><Longitude>113.75</Longitude>"
                           "<Precision>30</Precision>")
    await post(client, gps)
    assert len(await events_of(services, "WeChatMessageReceived")) == 3


async def test_safe_mode_push_and_encrypted_reply(client: Any, services: Any) -> None:
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    envelope = crypto.encrypt_message(text("13800138000", "7001", "oUser_s"), "n0nce", "1700000200")
    encrypted = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    params = {**signed("1700000200", "n0nce"), "encrypt_type": "aes",
              "msg_signature": signature(TOKEN, "1700000200", "n0nce", encrypted)}
    response = await client.post("/channels/wechat", params=params, data=envelope.encode())
    assert response.status == 200
    body = await response.text()
    assert "<Encrypt>" in body
    msg_signature = body.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    plain = crypto.decrypt_message(body, msg_signature, "1700000200", "n0nce")
    assert "手机号码" in plain and "oUser_s" in plain


async def test_malformed_xml_is_400_and_recorded(client: Any, services: Any) -> None:
    for junk in (b"<xml><oops>", b'<!DOCTYPE a [<!ENTITY x "y">]><xml>&x;</xml>', b"\xff\xfe"):
        response = await client.post("/channels/wechat", params=signed(), data=junk)
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "bad_xml"
    assert len(await events_of(services, "InputRejected")) == 3


async def test_unconfigured_wechat_is_503(aiohttp_client: Any, settings: Settings, services: Any) -> None:
    from gateway.app import create_app

    bare = dataclasses.replace(settings, wechat=dataclasses.replace(settings.wechat, token=None))
    services.settings = bare
    client = await aiohttp_client(create_app(bare, services=services, background=False))
    response = await client.get("/channels/wechat", params=signed())
    assert response.status == 503
