"""Input that arrives before any credential is accepted: recorded in short, and only so often.

Anyone can send a Twilio webhook with a wrong signature or a CTI event without
a token. The append-only log keeps of such a rejection its length, its SHA-256
and at most its first 256 bytes; past a per-source allowance the rest are only
counted (`intake_dropped_inputs_total{reason="rejections_rate_limited"}`).
An authenticated sender's bad input keeps its payload, as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any
from urllib.parse import urlencode

import pytest

from channels.rejected import MAX_UNAUTHENTICATED
from gateway.ratelimit import REJECTION_BURST, RejectionLimits, SourceLimiter
from gateway.settings import Settings, TwilioSettings
from tests.conftest import auth
from tests.integration.alarm_helpers import events_of


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, twilio=TwilioSettings("twilio-test-token"),
                               http=dataclasses.replace(settings.http, public_url="https://hotline.example.cn"))


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, services: Any) -> Any:
    from gateway.app import create_app

    return await aiohttp_client(create_app(settings, services=services, background=False))


def _dropped(services: Any, channel: str) -> float:
    return services.metrics.registry.get_sample_value(
        "intake_dropped_inputs_total", {"channel": channel, "reason": "rejections_rate_limited"}) or 0.0


async def test_a_65_kb_body_with_a_bad_signature_leaves_256_bytes_a_length_and_a_hash(
    client: Any, services: Any
) -> None:
    body = urlencode({"MessageSid": "SM1", "From": "+8613912345678", "Body": "停电" * 10_900}).encode()
    assert len(body) > 65_000
    response = await client.post("/channels/twilio/sms", data=body, headers={
        "X-Twilio-Signature": "AAAA", "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "x" * 4000})
    assert response.status == 403
    [rejected] = await events_of(services, "InputRejected")
    data = rejected["data"]
    assert data["code"] == "bad_signature"
    assert len(data["raw"].encode()) <= MAX_UNAUTHENTICATED  # on main: the whole 65 KB
    assert body.decode().startswith(data["raw"]) and len(data["raw"]) > 200
    assert (data["raw_length"], data["raw_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert len(data["headers"]["User-Agent"]) <= MAX_UNAUTHENTICATED


async def test_a_flood_of_unauthenticated_input_is_recorded_up_to_the_allowance_then_counted(
    client: Any, services: Any
) -> None:
    # a clock that does not move: the allowance never refills during the test
    frozen = SourceLimiter(1.0, REJECTION_BURST, now=lambda: 0.0)
    services.rejection_limits = RejectionLimits(per_source=frozen)
    sent = REJECTION_BURST + 15
    for n in range(sent):
        twilio = await client.post("/channels/twilio/sms", data={"MessageSid": f"SM{n}", "Body": "x"},
                                   headers={"X-Twilio-Signature": "AAAA"})
        cti = await client.post("/channels/cti/events", json={"event_id": f"e{n}"})
        assert (twilio.status, cti.status) == (403, 401)  # every one still answered
    recorded = await events_of(services, "InputRejected")
    assert len(recorded) == REJECTION_BURST  # on main: all 90 (and without limit)
    assert _dropped(services, "twilio") + _dropped(services, "cti") == 2 * sent - REJECTION_BURST
    rejected = services.metrics.registry.get_sample_value(
        "intake_rejected_inputs_total", {"channel": "twilio", "code": "bad_signature"})
    assert rejected == sent


async def test_an_authenticated_senders_bad_input_keeps_its_payload(client: Any, services: Any) -> None:
    services.rejection_limits = RejectionLimits(per_source=SourceLimiter(1.0, 1, now=lambda: 0.0))
    body = b'{"event_id": "e1", "note": "' + b"n" * 10_000 + b'"'  # not JSON: no closing brace
    for _ in range(3):  # authenticated rejections are not limited
        response = await client.post("/channels/cti/events", data=body,
                                     headers={**auth("t-channel"), "Content-Type": "application/json"})
        assert response.status == 400
    recorded = await events_of(services, "InputRejected")
    assert [r["data"]["raw"].encode() for r in recorded] == [body] * 3
