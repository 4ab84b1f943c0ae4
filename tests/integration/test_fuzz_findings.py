"""What the fuzz run (tests/fuzz) found, one input each: every one answered 5xx or went unrecorded."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from twilio.request_validator import RequestValidator
from wechatpy.crypto import PrpCrypto

from channels.sia import crc16_arc
from channels.wechat_crypto import signature
from gateway.settings import Settings, TwilioSettings, WechatSettings
from gateway.sia_listener import SiaReceiver
from tests.conftest import auth, stored_events

PUBLIC = "https://intake.example.cn"
TWILIO_TOKEN = "twilio-token-for-fuzzing"
WECHAT_TOKEN = "wechat-token"
WECHAT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
WECHAT_APPID = "wx0123456789"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, twilio=TwilioSettings(TWILIO_TOKEN),
        wechat=WechatSettings(WECHAT_TOKEN, WECHAT_AES_KEY, WECHAT_APPID),
        http=dataclasses.replace(settings.http, public_url=PUBLIC))


async def rejections(services: Any) -> list[dict[str, Any]]:
    return [e.data for e in await stored_events(services.pool, "type = 'InputRejected'")]


def dropped(services: Any, channel: str, reason: str) -> float:
    return services.metrics.registry.get_sample_value(
        "intake_dropped_inputs_total", {"channel": channel, "reason": reason}) or 0.0


@pytest.mark.parametrize("url", ["/api/v1/cases?category=%00", "/api/v1/cases/C1%00",
                                 "/open311/v2/requests.json?status=open&service_code=%00",
                                 "/open311/v2/requests/C%00.json"])
async def test_a_nul_in_the_url_is_400_not_a_database_error(client: Any, services: Any, url: str) -> None:
    """Was 500: `%00` reached PostgreSQL, which cannot hold a NUL in text."""
    response = await client.get(url, headers=auth("t-agent"))
    assert response.status == 400, await response.text()
    body = await response.json()
    if url.startswith("/open311/"):  # GeoReport v2's error array on its paths
        assert [e["code"] for e in body] == [400] and "NUL" in body[0]["description"]
        assert dropped(services, "web", "bad_text") == 1.0
    else:
        assert body["error"]["code"] == "bad_text"
        assert dropped(services, "web", "bad_text") == 0.0


async def test_a_twilio_signature_that_is_not_ascii_is_403_and_recorded(client: Any, services: Any) -> None:
    """Was 500: `hmac.compare_digest` raises TypeError on non-ASCII text."""
    response = await client.post("/channels/twilio/sms", data=b"MessageSid=SM1&From=1&Body=x",
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": "签名"})
    assert response.status == 403
    assert [r["code"] for r in await rejections(services)] == ["bad_signature"]


async def test_a_signed_twilio_form_with_a_nul_is_400_and_recorded(client: Any, services: Any) -> None:
    """Was 500 `store_error`: the SMS event could not be stored, and nothing was recorded."""
    params = {"MessageSid": "SM0123456789abcdef", "From": "+8613912345678", "Body": "x", "AccountSid": "\x00"}
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + "/channels/twilio/sms", params)
    response = await client.post("/channels/twilio/sms", data=params, headers={"X-Twilio-Signature": sig})
    assert response.status == 400, await response.text()
    assert [r["code"] for r in await rejections(services)] == ["bad_text"]


async def test_a_rejected_body_holding_a_nul_byte_is_still_recorded(client: Any, services: Any) -> None:
    """Was: the rejection's append failed (`\\u0000 cannot be converted to text`) and was only logged."""
    response = await client.post("/channels/twilio/sms", data=b"From=\x00\xff",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 400
    [rejected] = await rejections(services)
    assert rejected["code"] == "bad_encoding" and rejected["raw"] == "From=\\x00\\xff"


async def test_a_wechat_signature_that_is_not_ascii_is_403_and_recorded(client: Any, services: Any) -> None:
    """Was 500: `hmac.compare_digest` raises TypeError on non-ASCII text."""
    response = await client.post("/channels/wechat?timestamp=1&nonce=1&signature=%E7%AD%BE", data=b"<xml/>")
    assert response.status == 403
    assert [r["code"] for r in await rejections(services)] == ["bad_signature"]


async def test_a_signed_wechat_encrypt_that_is_not_ascii_is_400_and_recorded(
    client: Any, services: Any
) -> None:
    """Was 500: `base64.b64decode` raises ValueError (not binascii.Error) on non-ASCII text."""
    timestamp, nonce, encrypted = str(int(time.time())), "n1", "密文"
    query = {"timestamp": timestamp, "nonce": nonce, "signature": signature(WECHAT_TOKEN, timestamp, nonce),
             "encrypt_type": "aes", "msg_signature": signature(WECHAT_TOKEN, timestamp, nonce, encrypted)}
    body = f"<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()
    response = await client.post("/channels/wechat", params=query, data=body)
    assert response.status == 400, await response.text()
    assert [r["code"] for r in await rejections(services)] == ["bad_encrypt"]


async def test_an_open311_form_with_a_nul_is_400_in_open311_shape_and_recorded(
    client: Any, services: Any
) -> None:
    """Was 500 `store_error`: the case could not be stored."""
    form = {"api_key": "t-channel", "service_code": "complaint", "description": "路灯不亮\x00",
            "address_string": "秦都区建设路195号"}
    response = await client.post("/open311/v2/requests.json", data=form)
    assert response.status == 400, await response.text()
    assert (await response.json())[0]["code"] == 400
    assert [r["code"] for r in await rejections(services)] == ["bad_text"]


@pytest.mark.parametrize(("path", "channel"), [("/channels/cti/events", "cti"),
                                               ("/channels/alarm/events", "alarm")])
async def test_bearer_channel_requests_without_a_valid_token_are_recorded_once(
    client: Any, services: Any, path: str, channel: str
) -> None:
    """Was neither recorded nor counted: a 401 / 403 left no trace of the input. Now the channel
    records it in short (`gateway.rejections`), and it is not counted as dropped besides."""
    assert (await client.post(path, data=b"{}")).status == 401
    assert (await client.post(path, data=b"{}", headers=auth("t-unit"))).status == 403
    assert [r["code"] for r in await rejections(services)] == ["unauthorized", "forbidden"]
    assert dropped(services, channel, "unauthorized") == dropped(services, channel, "forbidden") == 0.0


@pytest.fixture
async def sia_port(services: Any) -> AsyncIterator[int]:
    receiver = SiaReceiver(services)
    tcp, _ = await receiver.start("127.0.0.1", 0)
    yield tcp
    await receiver.close()


def exchange(port: int, body: bytes) -> bytes:
    raw = b"\n%04X0%03X" % (crc16_arc(body), len(body)) + body + b"\r"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        return sock.recv(1024)


@pytest.mark.parametrize("body", [b'"SIA-DCS"0001L0#5555[Nri1/MA01][\x00]',
                                  b'"SIA-DCS"0002L0#5555[Nri1/MA01^\x00^]'], ids=["xdata", "data"])
async def test_a_dc09_frame_holding_a_nul_is_nakked_and_recorded(
    services: Any, sia_port: int, body: bytes
) -> None:
    """Was unanswered and uncounted: the alarm could not be stored (`sia_frame_failed`); the device
    retried for ever."""
    answer = await asyncio.to_thread(exchange, sia_port, body)
    assert b'"NAK"' in answer
    assert [r["code"] for r in await rejections(services)] == ["bad_frame"]


@pytest.mark.parametrize(("path", "body"), [
    ("/channels/cti/events", {"event_id": "e1", "type": "ended", "call_id": "c1", "caller": "13912345678",
                              "queue": "95598", "at": "9999-12-31T23:59:59-01:00"}),
    ("/channels/alarm/events", {"event_id": "a1", "account": "5555", "code": "MA",
                                "at": "0001-01-01T00:00:00+01:00"}),
], ids=["cti", "alarm"])
async def test_a_time_outside_2000_2099_is_400_and_recorded(
    client: Any, services: Any, path: str, body: dict[str, str]
) -> None:
    """Was 201: the event was stored, then the `calls` projection failed on it (year 10000 in UTC)
    for ever."""
    response = await client.post(path, json=body, headers=auth("t-channel"))
    assert response.status == 400, await response.text()
    assert [r["code"] for r in await rejections(services)] == ["bad_field"]


async def test_a_twilio_timestamp_outside_2000_2099_is_400_and_minus_zero_is_utc(
    client: Any, services: Any
) -> None:
    """Was 200, then the `calls` projection failed on the stored year-9999 time for ever."""
    url = PUBLIC + "/channels/twilio/voice-status"
    for sid, stamp, status in [("CA1", "Fri, 31 Dec 9999 23:59:59 -1200", 400),
                               ("CA2", "Mon, 23 Nov 2026 08:00:00 -0000", 200)]:
        params = {"CallSid": sid, "CallStatus": "no-answer", "From": "+8613912345678", "Timestamp": stamp}
        sig = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
        response = await client.post("/channels/twilio/voice-status", data=params,
                                     headers={"X-Twilio-Signature": sig})
        assert response.status == status, await response.text()
    assert [r["code"] for r in await rejections(services)] == ["bad_field"]
    async with services.pool.acquire() as conn:
        occurred = await conn.fetchval(
            "SELECT data->'contact'->>'occurred_at' FROM events WHERE stream = 'call-CA2'")
    assert occurred == "2026-11-23T08:00:00+00:00"  # `-0000` is UTC (RFC 2822), not a naive time


async def test_an_open311_query_date_outside_2000_2099_is_400_in_open311_shape(
    client: Any, services: Any
) -> None:
    """Was 500: `end_date - 90 days` overflowed (year 0)."""
    response = await client.get("/open311/v2/requests.json?end_date=0001-01-01T00:00:00Z")
    assert response.status == 400, await response.text()
    assert (await response.json())[0]["code"] == 400
    assert [r["code"] for r in await rejections(services)] == ["bad_request"]


async def test_a_wechat_msgid_reused_by_another_follower_is_409_and_counted(
    client: Any, services: Any
) -> None:
    """Was 500 `store_error` (IdempotencyConflict); the answer must not name the other follower."""
    for user, status in [("oUser_42", 200), ("oUser_43", 409)]:
        timestamp, nonce = str(int(time.time())), "n" + user.replace("_", "")
        xml = (f"<xml><ToUserName>gh</ToUserName><FromUserName>{user}</FromUserName>"
               "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>停电了</Content>"
               "<MsgId>5001</MsgId></xml>")  # safe mode (the AES key is set): encrypted as WeChat does
        encrypted = PrpCrypto(base64.b64decode(WECHAT_AES_KEY + "=")).encrypt(xml, WECHAT_APPID)
        encrypted = encrypted.decode() if isinstance(encrypted, bytes) else str(encrypted)
        query = {"timestamp": timestamp, "nonce": nonce,
                 "signature": signature(WECHAT_TOKEN, timestamp, nonce),
                 "encrypt_type": "aes", "msg_signature": signature(WECHAT_TOKEN, timestamp, nonce, encrypted)}
        body = f"<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        response = await client.post("/channels/wechat", params=query, data=body.encode())
        assert response.status == status, await response.text()
    assert (await response.json())["error"]["code"] == "idempotency_conflict"
    assert "oUser_42" not in await response.text()
    assert dropped(services, "wechat", "idempotency_conflict") == 1.0


async def test_a_cti_event_id_reused_for_another_call_is_409_and_counted(client: Any, services: Any) -> None:
    """Was 409 and left no trace: neither recorded nor counted."""
    for call_id, status in [("c1", 201), ("c2", 409)]:
        body = {"event_id": "e1", "type": "offered", "call_id": call_id, "caller": "13912345678",
                "queue": "95598", "at": "2026-11-23T08:00:00Z"}
        response = await client.post("/channels/cti/events", json=body, headers=auth("t-channel"))
        assert response.status == status
    assert (await response.json())["error"]["code"] == "idempotency_conflict"  # as README says of reused ids
    assert dropped(services, "cti", "idempotency_conflict") == 1.0


async def test_a_report_span_outside_2000_2099_is_400(client: Any) -> None:
    """Was 500: year 1 with an offset overflowed once moved to UTC."""
    response = await client.get("/api/v1/reports/abandoned-calls?from=0001-01-01T00:00:00%2B01:00",
                                headers=auth("t-agent"))
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == "bad_parameter"


@pytest.mark.parametrize("url", ["/api/v1/notifications?cursor=" + "9" * 40, "/api/v1/notifications?cursor=²",
                                 "/api/v1/audit/events?after=" + "9" * 40, "/api/v1/audit/events?after=²",
                                 "/api/v1/kpis?hours=²", "/api/v1/kpis?hours=" + "9" * 5000])
async def test_a_cursor_or_count_that_is_not_a_bigint_is_400(client: Any, url: str) -> None:
    """Was 500: 40 digits overflowed the query, `int("²")` and 5,000 digits raised ValueError."""
    response = await client.get(url, headers=auth("t-admin"))
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == "bad_parameter"
