"""Inbound SMS on the real app: a case categorised from the text, conversation, ack SMS, call-back closing."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from gateway.services import SERVICES
from gateway.settings import Settings, TwilioSettings
from tests.conftest import auth

TOKEN = "twilio-sms-token"
SENDER = "+8613911112222"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Twilio configured, no proxy: the request URL is what Twilio signed."""
    return dataclasses.replace(settings, twilio=TwilioSettings(TOKEN))


async def post_sms(client: Any, sid: str, text: str, token: str = TOKEN) -> Any:
    params = {"MessageSid": sid, "From": SENDER, "To": "+8695598", "Body": text, "NumMedia": "0"}
    url = str(client.make_url("/channels/twilio/sms"))
    signature = RequestValidator(token).compute_signature(url, params)
    return await client.post("/channels/twilio/sms", data=urlencode(params).encode(),
                             headers={"X-Twilio-Signature": signature,
                                      "Content-Type": "application/x-www-form-urlencoded"})


async def poll(query: Any, within: float = 3.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await query()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_sms_opens_a_categorised_case_then_joins_it(client: Any) -> None:
    pool = client.app[SERVICES].pool
    response = await post_sms(client, "SM0001", "我家停电了，整栋楼都没电")
    assert response.status == 200 and "<Response>" in await response.text()
    assert (await post_sms(client, "SM0001", "我家停电了，整栋楼都没电")).status == 200  # retry

    async def case_row() -> Any:
        async with pool.acquire() as conn:
            return await conn.fetchrow("SELECT case_id, category, channel FROM cases WHERE caller_phone = $1",
                                       "13911112222")

    case = await poll(case_row)
    assert (case["category"], case["channel"]) == ("power_fault", "sms")
    assert (await post_sms(client, "SM0002", "请问什么时候来电？")).status == 200
    async with pool.acquire() as conn:  # answered only once the SMS itself is durable
        streams = [r["stream"] for r in await conn.fetch(
            "SELECT stream FROM events WHERE type = 'SmsReceived' ORDER BY position")]
    store = client.app[SERVICES].store
    [recorded] = [e for e in (await store.read_streams(streams)).values()
                  if e[0].data["contact"]["raw"]["MessageSid"] == "SM0002"]  # the raw SMS is sealed
    assert (recorded[0].stream, recorded[0].metadata["idempotency_key"]) == (
        "sms-twilio:sms:SM0002", "twilio:sms:SM0002")

    async def joined() -> Any:
        events = await store.read_stream(f"case-{case['case_id']}")
        return next((e.data["contact"]["raw"] for e in events if e.type == "CaseMessageReceived"), None)

    raw = await poll(joined)
    async with pool.acquire() as conn:
        types = [r["type"] for r in await conn.fetch(
            "SELECT type FROM events WHERE stream = $1 ORDER BY version", f"case-{case['case_id']}")]
        cases = await conn.fetchval("SELECT count(*) FROM cases")
        sms = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'SmsReceived'")
    assert types[0] == "CaseRegistered" and "CaseMessageReceived" in types
    assert raw["MessageSid"] == "SM0002"
    assert cases == 1 and sms == 2  # the retried SM0001 was recorded once

    async def ack() -> Any:
        body = await (await client.get(f"/api/v1/notifications?case_id={case['case_id']}",
                                       headers=auth("t-agent"))).json()
        return [n for n in body["items"] if n["status"] == "sent"]

    [sent] = await poll(ack)
    assert sent["dedup_key"] == f"ack:{case['case_id']}" and sent["to"] == "13911112222"
    assert case["case_id"] in sent["text"]
    masked = await (await client.get("/api/v1/notifications", headers=auth("t-unit"))).json()
    assert masked["items"][0]["to"] == "*******2222"


async def test_sms_from_a_missed_caller_closes_the_call_back(client: Any) -> None:
    call = {"event_id": "m1", "type": "abandoned", "call_id": "mc1", "caller": SENDER,
            "queue": "95598", "at": "2020-01-01T00:00:00Z"}
    assert (await client.post("/channels/cti/events", json=call, headers=auth("t-channel"))).status == 201

    async def tasks(status: str) -> Any:
        body = await (await client.get(f"/api/v1/missed-calls?status={status}",
                                       headers=auth("t-dispatcher"))).json()
        return body["items"]

    await poll(lambda: tasks("open"))
    assert (await post_sms(client, "SM0100", "刚才电话没打通，电压不稳")).status == 200
    [closed] = await poll(lambda: tasks("closed"))
    assert closed["close_reason"] == "got_through" and closed["caller"] == "13911112222"


async def test_bad_signature_and_missing_fields(client: Any) -> None:
    assert (await post_sms(client, "SM9", "hi", token="forged")).status == 403
    url = str(client.make_url("/channels/twilio/sms"))
    params = {"From": SENDER, "Body": "no sid"}
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    missing = await client.post("/channels/twilio/sms", data=urlencode(params).encode(),
                                headers={"X-Twilio-Signature": signature,
                                         "Content-Type": "application/x-www-form-urlencoded"})
    assert missing.status == 400
    assert (await missing.json())["error"] == {"code": "missing_field",
                                               "message": "form field 'MessageSid' is required"}
    async with client.app[SERVICES].pool.acquire() as conn:
        codes = [r["c"] for r in await conn.fetch(
            "SELECT data->>'code' AS c FROM events WHERE type = 'InputRejected' ORDER BY position")]
    assert codes == ["bad_signature", "missing_field"]


async def test_twilio_endpoints_answer_503_without_a_token(client: Any) -> None:
    services = client.app[SERVICES]
    services.settings = dataclasses.replace(services.settings, twilio=TwilioSettings())
    for path in ("/channels/twilio/sms", "/channels/twilio/voice-status"):
        response = await client.post(path, data=b"MessageSid=SM1",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "channel_disabled"
