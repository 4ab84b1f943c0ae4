"""WeChat's customer-service message API as an outbound provider (a `dispatch.notify` `Provider`).

An official account may message a follower who wrote to it within the last 48 hours with
`POST /cgi-bin/message/custom/send?access_token=...`. The access token comes from
`POST /cgi-bin/stable_token`: unlike the older `GET /cgi-bin/token`, fetching it does not
revoke the token other processes hold, so every worker may fetch and cache its own. It is
cached until shortly before `expires_in`; an answer saying the token is stale (40001, 40014,
42001) fetches a fresh one (`force_refresh`) and sends once more. Fetches are one at a time, and
a send told its token is stale uses the token another send fetched meanwhile: a forced refresh
revokes the token before it (and WeChat allows 20 a day, 30 s apart), so the outbox's concurrent
sends must not force one each. A token still stale after that is tried again later.

Errors are sorted for the outbox: WeChat busy (-1), the account's call limit (45009) and network
trouble are retried later; a follower outside the 48-hour window (45015), over the
window's message quota (45047), unsubscribed (43004) or unknown (40003) is not, since
trying again soon cannot help. WeChat has no
idempotency key: the outbox's dedup key keeps each message to one request unless a send's
answer is lost, and the sender records every outcome as an event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from dispatch.notify.provider import Delivery, DeliveryError

DEFAULT_API_BASE = "https://api.weixin.qq.com"
STALE_TOKEN: frozenset[int] = frozenset({40001, 40014, 42001})
RETRYABLE: frozenset[int] = frozenset({-1, 45009})
TOKEN_MARGIN = 300.0
"""Seconds before `expires_in` at which a cached token is fetched again."""


@dataclass(slots=True)
class WeChatCustomerService:
    """Sends text messages to followers (OpenIDs) of one official account."""

    appid: str
    secret: str
    api_base: str = DEFAULT_API_BASE
    timeout: float = 10.0
    now: Callable[[], float] = time.monotonic
    name: str = "wechat"
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    _token: str | None = field(default=None, init=False)
    _token_until: float = field(default=0.0, init=False)
    _fetching: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        """Hand one text to WeChat for the follower `to`; raise `DeliveryError` when not taken."""
        body = {"touser": to, "msgtype": "text", "text": {"content": text}}
        token = await self._access_token(stale=None)
        answer = await self._post_message(body, token)
        if _code(answer) in STALE_TOKEN:
            answer = await self._post_message(body, await self._access_token(stale=token))
        return _delivery(answer)

    async def _access_token(self, *, stale: str | None) -> str:
        """The cached token, else a fetched one; `stale` is a token WeChat refused."""
        async with self._fetching:
            cached = self._token
            if cached is not None and cached != stale and self.now() < self._token_until:
                return cached
            return await self._fetch(force=stale is not None and stale == cached)

    async def _fetch(self, *, force: bool) -> str:
        answer = await self._call("/cgi-bin/stable_token", {
            "grant_type": "client_credential", "appid": self.appid, "secret": self.secret,
            "force_refresh": force,
        })
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            code = _code(answer)
            raise DeliveryError(f"wechat token {code}: {answer.get('errmsg', '')}".strip(),
                                retryable=code in RETRYABLE)
        expires_in = answer.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 7200.0
        self._token, self._token_until = token, self.now() + max(lifetime - TOKEN_MARGIN, 0.0)
        return token

    async def _post_message(self, body: dict[str, Any], token: str) -> dict[str, Any]:
        return await self._call("/cgi-bin/message/custom/send", body, access_token=token)

    async def _call(self, path: str, body: dict[str, Any], **query: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        url = f"{self.api_base.rstrip('/')}{path}"
        try:
            async with self._session.post(url, params=query, json=body) as response:
                if response.status >= 500 or response.status == 429:
                    raise DeliveryError(f"wechat http {response.status}", retryable=True)
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryError(f"wechat unreachable: {type(exc).__name__}", retryable=True) from exc
        if not isinstance(answer, dict):
            raise DeliveryError("wechat answered something that is not a JSON object", retryable=True)
        return answer

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _code(answer: dict[str, Any]) -> int:
    code = answer.get("errcode", 0)
    return code if isinstance(code, int) else -1


def _delivery(answer: dict[str, Any]) -> Delivery:
    code = _code(answer)
    if code == 0:
        msgid = answer.get("msgid")
        return Delivery(str(msgid) if msgid is not None else None, "sent")
    raise DeliveryError(f"wechat {code}: {answer.get('errmsg', '')}".strip(),
                        retryable=code in RETRYABLE or code in STALE_TOKEN)
