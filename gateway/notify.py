"""The notification delivery providers this server uses, as its settings ask for them."""

from __future__ import annotations

from dataclasses import dataclass

from channels.twilio_rest import DEFAULT_API_BASE, TwilioMessages
from channels.wechat_api import WeChatCustomerService
from dispatch.core.errors import InvalidConfig
from dispatch.notify.provider import Provider
from dispatch.notify.sender import LogProvider

SMS_PROVIDERS: frozenset[str] = frozenset({"twilio", "log"})


@dataclass(frozen=True, slots=True)
class SmsConfig:
    """Where outbound SMS go: `log` (written to the log only) or `twilio` (its Messages API)."""

    provider: str = "log"
    account_sid: str = ""
    auth_token: str = ""
    sender: str = ""
    api_base: str = DEFAULT_API_BASE
    status_callback: str = ""
    """The URL Twilio reports delivery to (`INTAKE_PUBLIC_URL` + `/channels/twilio/sms-status`)."""

    def __post_init__(self) -> None:
        if self.provider not in SMS_PROVIDERS:
            raise InvalidConfig("provider", f"must be one of {sorted(SMS_PROVIDERS)}")
        if self.provider == "twilio" and not self.account_sid:
            raise InvalidConfig("account_sid", "is needed to send SMS through Twilio")
        if self.provider == "twilio" and not self.auth_token:
            raise InvalidConfig("auth_token", "is needed to send SMS through Twilio")
        if not self.api_base.startswith(("http://", "https://")):
            raise InvalidConfig("api_base", "must be an http:// or https:// URL")


@dataclass(frozen=True, slots=True)
class WechatOutbound:
    """The official account that sends WeChat messages (its AppID and AppSecret)."""

    appid: str
    secret: str
    api_base: str


def providers_from(config: SmsConfig, wechat: WechatOutbound | None = None) -> dict[str, Provider]:
    """The providers the configuration asks for, by outbox channel (the log where none is set)."""
    log_provider = LogProvider()
    found: dict[str, Provider] = {"log": log_provider, "sms": log_provider, "wechat": log_provider}
    if config.provider == "twilio":
        found["sms"] = TwilioMessages(
            account_sid=config.account_sid, auth_token=config.auth_token,
            sender=config.sender, api_base=config.api_base, status_callback=config.status_callback,
        )
    if wechat is not None:
        found["wechat"] = WeChatCustomerService(wechat.appid, wechat.secret, api_base=wechat.api_base)
    return found
