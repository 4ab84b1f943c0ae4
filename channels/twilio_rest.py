"""Twilio's Messages REST API as an outbound SMS provider (a `dispatch.notify` `Provider`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from dispatch.core.phone import e164
from dispatch.notify.provider import Delivery, DeliveryError

DEFAULT_API_BASE = "https://api.twilio.com"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _retry_after(headers: Any) -> float | None:
    """`Retry-After` in seconds: delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    raw = str(headers.get("Retry-After", "")).strip()
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


async def _json_or_nothing(response: aiohttp.ClientResponse) -> Any:
    """The answer's JSON, or None when it is not JSON (a proxy's HTML page, a cut body): the
    status alone then says whether Twilio took the message (a 2xx it did: sending again would
    send it twice)."""
    try:
        return await response.json(content_type=None)
    except (ValueError, aiohttp.ClientPayloadError):
        return None


@dataclass(slots=True)
class TwilioMessages:
    """Sends SMS with `POST /2010-04-01/Accounts/{sid}/Messages.json`."""

    account_sid: str
    auth_token: str
    sender: str
    api_base: str = DEFAULT_API_BASE
    timeout: float = 10.0
    status_callback: str = ""
    """Where Twilio reports what became of each message (`POST /channels/twilio/sms-status`)."""
    name: str = "twilio"
    _session: aiohttp.ClientSession | None = field(default=None, init=False)

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        """Hand one message to Twilio; raise `DeliveryError` when it is not accepted.

        `to` is a canonical number (a Chinese one without `+86`): Twilio takes E.164 only.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        url = f"{self.api_base.rstrip('/')}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            form = {"To": e164(to), "From": self.sender, "Body": text}
            if self.status_callback:
                form["StatusCallback"] = self.status_callback
            async with self._session.post(
                url, data=form,
                headers={"Authorization": _basic(self.account_sid, self.auth_token),
                         "I-Twilio-Idempotency-Token": dedup_key},
            ) as response:
                body = await _json_or_nothing(response)
                return self._answer(response.status, body, response.headers)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryError(f"twilio unreachable: {type(exc).__name__}", retryable=True) from exc

    @staticmethod
    def _answer(status: int, body: Any, headers: Any) -> Delivery:
        info = body if isinstance(body, dict) else {}
        if 200 <= status < 300:
            sid = info.get("sid")
            return Delivery(sid if isinstance(sid, str) and sid else None,
                            str(info.get("status") or "queued"))
        message = f"twilio {status}: {info.get('code', '')} {info.get('message', '')}".strip()
        retryable = status == 429 or status >= 500
        raise DeliveryError(message, retryable=retryable, retry_after=_retry_after(headers))

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
