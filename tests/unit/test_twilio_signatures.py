"""Twilio signature checks against Twilio's own RequestValidator, and form parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from twilio.request_validator import RequestValidator

from channels import twilio
from channels.errors import BadInput, BadSignature, ChannelDisabled
from channels.signatures import twilio_algorithm, twilio_valid

TOKEN = "12345"
URL = "https://intake.example.cn/channels/twilio/sms?x=1"
PARAMS = {"MessageSid": "SM123", "From": "+8613912345678", "Body": "停电了", "To": "+8695598"}
NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


def _form(params: dict[str, str]) -> dict[str, list[str]]:
    return {k: [v] for k, v in params.items()}


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256"])
def test_accepts_what_twilio_signs(algorithm: str) -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, PARAMS, algorithm)
    assert twilio_valid(TOKEN, [URL], _form(PARAMS), signature, algorithm)


def test_accepts_url_signed_with_default_port() -> None:
    signature = RequestValidator(TOKEN).compute_signature(
        "https://intake.example.cn:443/channels/twilio/sms?x=1", PARAMS)
    assert twilio_valid(TOKEN, [URL], _form(PARAMS), signature, "HMAC_SHA1")


@pytest.mark.parametrize("change", ["token", "param", "url", "algorithm"])
def test_rejects_any_change(change: str) -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    token, params, url, algorithm = TOKEN, dict(PARAMS), URL, "HMAC_SHA1"
    if change == "token":
        token = "other"
    elif change == "param":
        params["Body"] = "tampered"
    elif change == "url":
        url = URL.replace("x=1", "x=2")
    else:
        algorithm = "HMAC_SHA256"
    assert not twilio_valid(token, [url], _form(params), signature, algorithm)


def test_settings_header_names_the_algorithm() -> None:
    assert twilio_algorithm(None) == "HMAC_SHA1"
    assert twilio_algorithm("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256") == "HMAC_SHA256"


def test_verify_uses_shared_key_for_sha256() -> None:
    keys = twilio.TwilioKeys("auth", "shared")
    signature = RequestValidator("shared").compute_signature(URL, PARAMS, "HMAC_SHA256")
    headers = {"X-Twilio-Signature": signature,
               "X-Twilio-Webhooks-Signature-Settings": "key=k1,algorithm=HMAC_SHA256"}
    twilio.verify(keys, [URL], _form(PARAMS), headers)
    with pytest.raises(BadSignature):
        twilio.verify(keys, [URL], _form(PARAMS), {"X-Twilio-Signature": signature})


def test_unconfigured_token_disables_the_channel() -> None:
    with pytest.raises(ChannelDisabled):
        twilio.verify(twilio.TwilioKeys(None), [URL], _form(PARAMS), {})


def test_parse_sms_keeps_raw_and_key() -> None:
    cmd = twilio.parse_sms(_form(PARAMS), NOW)
    assert cmd.contact.idempotency_key == "twilio:sms:SM123"
    assert cmd.contact.text == "停电了"
    assert cmd.contact.raw == PARAMS


@pytest.mark.parametrize("missing", ["MessageSid", "From", "Body"])
def test_parse_sms_requires_fields(missing: str) -> None:
    params = {k: v for k, v in PARAMS.items() if k != missing}
    with pytest.raises(BadInput, match=missing):
        twilio.parse_sms(_form(params), NOW)


@pytest.mark.parametrize(
    ("status", "direction", "kind"),
    [("no-answer", "inbound", "abandoned"), ("busy", "inbound", "abandoned"),
     ("canceled", "inbound", "abandoned"), ("failed", "inbound", "abandoned"),
     ("no-answer", "outbound-api", "ended"), ("ringing", "inbound", "offered"),
     ("in-progress", "inbound", "answered"), ("completed", "inbound", "ended")],
)
def test_voice_status_mapping(status: str, direction: str, kind: str) -> None:
    form = _form({"CallSid": "CA1", "CallStatus": status, "From": "+8613912345678",
                  "To": "+8695598", "Direction": direction,
                  "Timestamp": "Mon, 23 Nov 2026 08:00:05 +0000"})
    cmd = twilio.parse_voice_status(form, NOW)
    assert cmd.kind == kind
    assert cmd.contact.idempotency_key == f"twilio:call:CA1:{status}"
    assert cmd.contact.occurred_at == datetime(2026, 11, 23, 8, 0, 5, tzinfo=UTC)


def test_voice_status_rejects_unknown_status_and_bad_sid() -> None:
    base = {"CallSid": "CA1", "CallStatus": "exploded", "From": "+861"}
    with pytest.raises(BadInput):
        twilio.parse_voice_status(_form(base), NOW)
    with pytest.raises(BadInput):
        twilio.parse_voice_status(_form({**base, "CallSid": "../x", "CallStatus": "busy"}), NOW)
