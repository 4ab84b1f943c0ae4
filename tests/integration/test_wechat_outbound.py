"""WeChat messages through the outbox on real PostgreSQL, to a local server answering as WeChat's API does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from channels.wechat_api import WeChatCustomerService
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import SystemClock
from dispatch.notify.outbox import RequestNotification
from dispatch.notify.provider import DeliveryError
from dispatch.notify.sender import LogProvider, RetryPolicy, Sender
from eventstore.postgres import PostgresEventStore
from gateway.bootstrap import DOMAIN
from gateway.notify import SmsConfig, WechatOutbound, providers_from

OPENID = "oG8xZ5-followerOpenId0001"


class FakeWeChatApi:
    """`POST /cgi-bin/stable_token` and `POST /cgi-bin/message/custom/send` as WeChat answers them.

    Tokens are numbered; `revoke()` makes the current one stale (errcode 40001) as when the
    account's token was refreshed elsewhere. `script` holds errcodes the send answers first.
    """

    def __init__(self, script: list[int] | None = None) -> None:
        self.script = list(script or [])
        self.token_requests: list[dict[str, Any]] = []
        self.sends: list[dict[str, Any]] = []
        self.issued = 0
        self.valid: set[str] = set()
        self.clock = [0.0]

    def revoke(self) -> None:
        self.valid.clear()

    async def stable_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.token_requests.append(body)
        if body.get("appid") != "wx1234" or body.get("secret") != "s3cret":
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if body.get("force_refresh") or not self.valid:
            self.issued += 1
            self.valid = {f"TOKEN{self.issued}"}
        return web.json_response({"access_token": next(iter(self.valid)), "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        self.sends.append({"token": token, "body": await request.json()})
        if token not in self.valid:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        code = self.script.pop(0) if self.script else 0
        if code:
            return web.json_response({"errcode": code, "errmsg": "scripted"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": 1000 + len(self.sends)})


@pytest.fixture
async def wechat_api(aiohttp_server: Any) -> AsyncIterator[tuple[FakeWeChatApi, WeChatCustomerService]]:
    fake = FakeWeChatApi()
    app = web.Application()
    app.router.add_post("/cgi-bin/stable_token", fake.stable_token)
    app.router.add_post("/cgi-bin/message/custom/send", fake.send)
    server = await aiohttp_server(app)
    clock = [0.0]
    provider = WeChatCustomerService("wx1234", "s3cret", api_base=str(server.make_url("")).rstrip("/"),
                                     now=lambda: clock[0])
    fake.clock = clock
    yield fake, provider
    await provider.close()


@pytest.fixture
def bus(pg_store: PostgresEventStore, pg_pool: asyncpg.Pool) -> MessageBus:
    return MessageBus(collect_handlers(DOMAIN), {"store": pg_store, "clock": SystemClock(), "pool": pg_pool})


def wechat_request(key: str = "done:C7") -> RequestNotification:
    return RequestNotification(dedup_key=key, channel="wechat", to=OPENID, text="您的工单C7已办结",
                               case_id="C7")


async def events_of(pool: asyncpg.Pool) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT type FROM events WHERE stream LIKE 'notification-%' ORDER BY position")
    return [r["type"] for r in rows]


async def test_the_token_is_fetched_once_and_the_text_goes_to_the_follower(
    wechat_api: tuple[FakeWeChatApi, WeChatCustomerService],
) -> None:
    fake, provider = wechat_api
    first = await provider.send(OPENID, "您的诉求已受理", "ack:C1")
    second = await provider.send(OPENID, "您的工单已办结", "done:C1")
    assert (first.provider_id, second.provider_id) == ("1001", "1002")
    assert fake.token_requests == [{"grant_type": "client_credential", "appid": "wx1234",
                                    "secret": "s3cret", "force_refresh": False}]
    assert [s["body"] for s in fake.sends] == [
        {"touser": OPENID, "msgtype": "text", "text": {"content": "您的诉求已受理"}},
        {"touser": OPENID, "msgtype": "text", "text": {"content": "您的工单已办结"}},
    ]
    assert {s["token"] for s in fake.sends} == {"TOKEN1"}


async def test_a_token_near_its_expiry_is_fetched_again(
    wechat_api: tuple[FakeWeChatApi, WeChatCustomerService],
) -> None:
    fake, provider = wechat_api
    clock = fake.clock
    await provider.send(OPENID, "一", "k1")
    clock[0] = 7200 - 301.0  # still inside the cached lifetime (expires_in less the margin)
    await provider.send(OPENID, "二", "k2")
    assert len(fake.token_requests) == 1
    clock[0] = 7200 - 299.0
    await provider.send(OPENID, "三", "k3")
    assert len(fake.token_requests) == 2


async def test_a_stale_token_is_refreshed_and_the_message_sent_once_more(
    wechat_api: tuple[FakeWeChatApi, WeChatCustomerService],
) -> None:
    fake, provider = wechat_api
    await provider.send(OPENID, "一", "k1")
    fake.revoke()  # another holder forced a refresh: our cached token is no longer valid
    delivery = await provider.send(OPENID, "二", "k2")
    assert delivery.status == "sent"
    assert fake.token_requests[-1]["force_refresh"] is True
    assert [s["token"] for s in fake.sends] == ["TOKEN1", "TOKEN1", "TOKEN2"]


async def test_concurrent_sends_share_one_token_and_one_forced_refresh(
    wechat_api: tuple[FakeWeChatApi, WeChatCustomerService],
) -> None:
    """The outbox sends a batch at once: a forced refresh revokes the token before it (and WeChat
    allows 20 a day, 30 s apart), so one per send would revoke the others' and lose their messages."""
    fake, provider = wechat_api
    first = await asyncio.gather(*(provider.send(OPENID, f"一{n}", f"a{n}") for n in range(5)))
    assert len(fake.token_requests) == 1 and {d.status for d in first} == {"sent"}
    fake.revoke()
    again = await asyncio.gather(*(provider.send(OPENID, f"二{n}", f"b{n}") for n in range(5)))
    assert {d.status for d in again} == {"sent"}
    assert [r["force_refresh"] for r in fake.token_requests] == [False, True]
    assert {s["token"] for s in fake.sends[-5:]} == {"TOKEN2"}


async def test_a_token_still_stale_after_the_refresh_is_tried_again_later(
    wechat_api: tuple[FakeWeChatApi, WeChatCustomerService],
) -> None:
    fake, provider = wechat_api
    fake.script = [42001, 42001]  # expired, and again with the token fetched after it
    with pytest.raises(DeliveryError) as caught:
        await provider.send(OPENID, "二", "k1")
    assert caught.value.retryable and "42001" in caught.value.message


@pytest.mark.parametrize(("code", "retryable"), [(-1, True), (45009, True), (45015, False),
                                                 (45047, False), (43004, False), (40003, False)])
async def test_errors_say_whether_trying_again_can_help(
    wechat_api: tuple[FakeWeChatApi, WeChatCustomerService], code: int, retryable: bool,
) -> None:
    fake, provider = wechat_api
    fake.script = [code]
    with pytest.raises(DeliveryError) as caught:
        await provider.send(OPENID, "一", "k1")
    assert caught.value.retryable is retryable
    assert str(code) in caught.value.message


async def test_a_wrong_secret_is_a_permanent_failure(aiohttp_server: Any) -> None:
    fake = FakeWeChatApi()
    app = web.Application()
    app.router.add_post("/cgi-bin/stable_token", fake.stable_token)
    server = await aiohttp_server(app)
    provider = WeChatCustomerService("wx1234", "wrong", api_base=str(server.make_url("")))
    try:
        with pytest.raises(DeliveryError) as caught:
            await provider.send(OPENID, "一", "k1")
    finally:
        await provider.close()
    assert not caught.value.retryable and "40013" in caught.value.message


async def test_the_outbox_retries_wechat_busy_and_records_the_delivery(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore,
    wechat_api: tuple[FakeWeChatApi, WeChatCustomerService],
) -> None:
    fake, provider = wechat_api
    fake.script = [-1]
    sender = Sender(pg_pool, pg_store, {"wechat": provider, "log": LogProvider()}, SystemClock(),
                    retry=RetryPolicy(base_delay=0.0))
    assert await bus.handle(wechat_request()) is True
    assert await bus.handle(wechat_request()) is False  # one dedup key, one message
    assert await sender.drain_once() == 1
    assert await sender.drain_once() == 1
    assert await sender.drain_once() == 0
    async with pg_pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, attempts, provider_id FROM notification_outbox")
    assert (row["status"], row["attempts"], row["provider_id"]) == ("sent", 2, "1002")
    assert await events_of(pg_pool) == [
        "NotificationRequested", "NotificationAttemptFailed", "NotificationSent"]


async def test_a_follower_outside_the_window_fails_without_retry(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore,
    wechat_api: tuple[FakeWeChatApi, WeChatCustomerService],
) -> None:
    fake, provider = wechat_api
    fake.script = [45015]
    sender = Sender(pg_pool, pg_store, {"wechat": provider, "log": LogProvider()}, SystemClock())
    await bus.handle(wechat_request())
    assert await sender.drain_once() == 1
    assert await sender.drain_once() == 0
    assert (await events_of(pg_pool))[-1] == "NotificationFailed"
    assert len(fake.sends) == 1


def test_the_wechat_channel_uses_the_api_only_when_the_account_is_configured() -> None:
    assert isinstance(providers_from(SmsConfig())["wechat"], LogProvider)
    configured = providers_from(SmsConfig(), WechatOutbound("wx1234", "s3cret", "https://api.weixin.qq.com"))
    assert isinstance(configured["wechat"], WeChatCustomerService)
    assert isinstance(configured["sms"], LogProvider)
