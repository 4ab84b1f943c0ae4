"""Twilio's status callbacks for outbound SMS on the real app: delivery reaches the outbox row."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from dispatch.notify.outbox import RequestNotification
from dispatch.notify.sender import LogProvider, Sender
from gateway.notify import SmsConfig, providers_from
from gateway.services import SERVICES
from gateway.settings import Settings, TwilioSettings, from_env
from tests.conftest import auth, stored_events

TOKEN = "twilio-status-token"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, twilio=TwilioSettings(TOKEN))


async def post_status(client: Any, sid: str, status: str, code: str = "") -> Any:
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC1", "To": "+8613912345678",
              "From": "+8610000"}
    if code:
        params["ErrorCode"] = code
    url = str(client.make_url("/channels/twilio/sms-status"))
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    return await client.post("/channels/twilio/sms-status", data=urlencode(params).encode(),
                             headers={"X-Twilio-Signature": signature,
                                      "Content-Type": "application/x-www-form-urlencoded"})


class Taking:
    """Takes every message under the Twilio SID `SM` + its dedup key's digits."""

    name = "twilio"

    async def send(self, to: str, text: str, dedup_key: str) -> Any:
        from dispatch.notify.provider import Delivery

        return Delivery("SM" + "".join(c for c in dedup_key if c.isdigit()), "queued")


async def sent(client: Any, *keys: str) -> None:
    services = client.app[SERVICES]
    for key in keys:
        await services.bus.handle(RequestNotification(dedup_key=key, channel="sms", to="13912345678",
                                                      text="您的诉求已受理", case_id=None))
    sender = Sender(services.pool, services.store, {"sms": Taking(), "log": LogProvider()}, services.clock)
    assert await sender.drain_once() == len(keys)


async def rows(client: Any) -> dict[str, tuple[str, str | None]]:
    response = await client.get("/api/v1/notifications", headers=auth("t-agent"))
    return {i["provider_id"]: (i["status"], i["last_error"]) for i in (await response.json())["items"]}


async def test_a_status_callback_moves_the_message_to_delivered_or_undelivered(client: Any) -> None:
    await sent(client, "ack:1", "ack:2")
    for sid, status, code in (("SM1", "sent", ""), ("SM1", "delivered", ""), ("SM2", "undelivered", "30003"),
                              ("SM1", "sent", ""), ("SM2", "delivered", "")):  # late and repeated reports
        response = await post_status(client, sid, status, code)
        assert response.status == 200 and "<Response>" in await response.text()
    assert await rows(client) == {"SM1": ("delivered", None), "SM2": ("undelivered", "undelivered 30003")}
    reported = await stored_events(client.app[SERVICES].pool, "type = 'NotificationStatusReported'")
    assert [(e.data["provider_id"], e.data["status"]) for e in reported] == [
        ("SM1", "sent"), ("SM1", "delivered"), ("SM2", "undelivered"), ("SM2", "delivered")]


async def test_an_unknown_message_or_status_changes_nothing(client: Any) -> None:
    assert (await post_status(client, "SM999", "delivered")).status == 200  # not ours: nothing to do
    assert (await post_status(client, "SM999", "exploded")).status == 400
    assert (await client.post("/channels/twilio/sms-status", data=b"MessageSid=SM1&MessageStatus=sent",
                              headers={"Content-Type": "application/x-www-form-urlencoded",
                                       "X-Twilio-Signature": "bad"})).status == 403
    assert await stored_events(client.app[SERVICES].pool, "type = 'NotificationStatusReported'") == []


def test_twilio_is_asked_to_report_to_the_public_url() -> None:
    settings = from_env({"INTAKE_TOKENS": "a-long-admin-token-0001:admin:root",
                         "INTAKE_TWILIO_AUTH_TOKEN": "tok", "INTAKE_TWILIO_ACCOUNT_SID": "AC1",
                         "INTAKE_PUBLIC_URL": "https://intake.example.cn"})
    assert settings.notifications.status_callback == "https://intake.example.cn/channels/twilio/sms-status"
    provider = providers_from(settings.notifications)["sms"]
    assert getattr(provider, "status_callback", None) == settings.notifications.status_callback
    assert providers_from(SmsConfig())["sms"].name == "log"
