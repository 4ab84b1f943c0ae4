"""The notification delivery providers this server uses, as its settings ask for them."""

from __future__ import annotations

from collections.abc import Mapping

from channels.twilio_rest import DEFAULT_API_BASE, TwilioMessages
from dispatch.notify.provider import Provider
from dispatch.notify.sender import LogProvider
from gateway.settings import Settings


def providers_from(settings: Settings) -> dict[str, Provider]:
    """The providers the settings ask for, by outbox channel (`INTAKE_SMS_PROVIDER=twilio|log`)."""
    extra: Mapping[str, str] = settings.extra
    log_provider = LogProvider()
    wanted = extra.get("INTAKE_SMS_PROVIDER") or (
        "twilio" if extra.get("INTAKE_TWILIO_ACCOUNT_SID") and settings.twilio_auth_token else "log"
    )
    found: dict[str, Provider] = {"log": log_provider, "sms": log_provider, "wechat": log_provider}
    if wanted == "twilio":
        found["sms"] = TwilioMessages(
            account_sid=extra.get("INTAKE_TWILIO_ACCOUNT_SID", ""),
            auth_token=settings.twilio_auth_token or "",
            sender=extra.get("INTAKE_SMS_FROM", ""),
            api_base=extra.get("INTAKE_TWILIO_API_BASE") or DEFAULT_API_BASE,
        )
    return found
