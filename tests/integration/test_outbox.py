"""The notification outbox on real PostgreSQL, delivered to a local server answering as Twilio does."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from channels.twilio_rest import TwilioMessages
from dispatch.cases.sla import SlaConfig
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import Clock, FakeClock, SystemClock
from dispatch.notify.outbox import Lane, RequestNotification, RequestNotifications, claim_due
from dispatch.notify.provider import Delivery, DeliveryError
from dispatch.notify.sender import LogProvider, RetryPolicy, Sender
from dispatch.personal.erasure import EraseSubject
from eventstore.postgres import PostgresEventStore
from gateway.bootstrap import DOMAIN


class FakeTwilio:
    """Answers `POST /2010-04-01/Accounts/{sid}/Messages.json` like Twilio, scripted statuses first."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []

    async def messages(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append({"sid": request.match_info["sid"], "form": dict(form),
                              "auth": request.headers.get("Authorization", ""),
                              "token": request.headers.get("I-Twilio-Idempotency-Token")})
        status = self.script.pop(0) if self.script else 201
        if status == 201:
            return web.json_response({"sid": f"SM{len(self.requests):032d}", "status": "queued",
                                      "to": form["To"], "body": form["Body"]}, status=201)
        headers = {"Retry-After": "0"} if status == 429 else {}
        return web.json_response({"code": 20429 if status == 429 else 21211, "status": status,
                                  "message": "Too Many Requests" if status == 429 else "Invalid 'To'"},
                                 status=status, headers=headers)


async def start(aiohttp_server: Any, script: list[int]) -> tuple[FakeTwilio, str]:
    fake = FakeTwilio(script)
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", fake.messages)
    server = await aiohttp_server(app)
    return fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
def bus(pg_store: PostgresEventStore, pg_pool: asyncpg.Pool) -> MessageBus:
    return MessageBus(collect_handlers(DOMAIN), {"store": pg_store, "clock": SystemClock(), "pool": pg_pool})


@pytest.fixture
async def twilio_provider() -> AsyncIterator[list[TwilioMessages]]:
    made: list[TwilioMessages] = []
    yield made
    for provider in made:
        await provider.close()


async def events_of(pool: asyncpg.Pool, stream_like: str = "notification-%") -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT type FROM events WHERE stream LIKE $1 ORDER BY position", stream_like)
    return [r["type"] for r in rows]


async def outbox(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(await conn.fetch("SELECT * FROM notification_outbox ORDER BY id"))


def request(key: str = "ack:C1", to: str = "+8613912345678") -> RequestNotification:
    return RequestNotification(dedup_key=key, channel="sms", to=to, text="您的诉求已受理", case_id="C1")


def twilio_sender(
    pool: asyncpg.Pool, store: PostgresEventStore, base: str, opened: list[TwilioMessages],
    clock: Clock | None = None, retry: RetryPolicy | None = None,
) -> tuple[TwilioMessages, Sender]:
    """A Twilio provider at the fake `base` (closed after the test) and a sender using it."""
    provider = TwilioMessages("AC123", "secret", "+8610000", api_base=base)
    opened.append(provider)
    return provider, Sender(pool, store, {"sms": provider, "log": LogProvider()}, clock or SystemClock(),
                            retry=retry)


async def test_same_dedup_key_queues_once(bus: MessageBus, pg_pool: asyncpg.Pool) -> None:
    assert await bus.handle(request()) is True
    assert await bus.handle(request()) is False
    assert len(await outbox(pg_pool)) == 1
    assert await events_of(pg_pool) == ["NotificationRequested"]


async def test_concurrent_requests_with_one_dedup_key_queue_once(
    bus: MessageBus, pg_pool: asyncpg.Pool
) -> None:
    answers = await asyncio.gather(*(bus.handle(request()) for _ in range(12)))
    assert sorted(answers) == [False] * 11 + [True]
    assert len(await outbox(pg_pool)) == 1
    assert await events_of(pg_pool) == ["NotificationRequested"]


async def test_event_and_outbox_row_commit_together(bus: MessageBus, pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        await conn.execute("ALTER TABLE notification_outbox RENAME TO outbox_away")
    with pytest.raises(asyncpg.UndefinedTableError):
        await bus.handle(request())
    assert await events_of(pg_pool) == []  # the event rolled back with the failed row


async def test_retries_with_backoff_until_twilio_accepts(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore, aiohttp_server: Any,
    twilio_provider: list[TwilioMessages],
) -> None:
    fake, base = await start(aiohttp_server, [429, 500])
    provider = TwilioMessages("AC123", "secret", "+8610000", api_base=base)
    twilio_provider.append(provider)
    sender = Sender(pg_pool, pg_store, {"sms": provider, "log": LogProvider()}, SystemClock(),
                    retry=RetryPolicy(base_delay=0.0))
    await bus.handle(request())
    for _ in range(3):
        assert await sender.drain_once() == 1
    assert await sender.drain_once() == 0
    [row] = await outbox(pg_pool)
    assert (row["status"], row["attempts"], row["provider_id"]) == ("sent", 3, f"SM{3:032d}")
    assert await events_of(pg_pool) == ["NotificationRequested", "NotificationAttemptFailed",
                                        "NotificationAttemptFailed", "NotificationSent"]
    sent = fake.requests[-1]
    assert sent["sid"] == "AC123" and sent["token"] == "ack:C1"
    assert sent["form"] == {"To": "+8613912345678", "From": "+8610000", "Body": "您的诉求已受理"}
    assert base64.b64decode(sent["auth"].split()[1]) == b"AC123:secret"


async def test_an_outage_past_five_attempts_delays_the_message_but_does_not_fail_it(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore, aiohttp_server: Any,
    twilio_provider: list[TwilioMessages],
) -> None:
    """Twilio answering 503 for a while (here 8 attempts; at 2 s doubling, over eight minutes)."""
    fake, base = await start(aiohttp_server, [503] * 8)
    _, sender = twilio_sender(pg_pool, pg_store, base, twilio_provider, retry=RetryPolicy(base_delay=0.0))
    await bus.handle(request())
    for _ in range(9):
        assert await sender.drain_once() == 1
    [row] = await outbox(pg_pool)
    assert (row["status"], row["attempts"]) == ("sent", 9)
    assert len(fake.requests) == 9


async def test_a_message_not_taken_within_its_time_is_failed(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore, aiohttp_server: Any,
    twilio_provider: list[TwilioMessages],
) -> None:
    """Retried until `give_up_after` from its request: a later try would come past it, so none is made."""
    _, base = await start(aiohttp_server, [503] * 3)
    later = FakeClock(datetime.now(UTC))
    _, sender = twilio_sender(pg_pool, pg_store, base, twilio_provider, later,
                              RetryPolicy(base_delay=60.0, give_up_after=3600.0))
    await bus.handle(request())
    assert await sender.drain_once() == 1
    [row] = await outbox(pg_pool)
    assert row["status"] == "retry"  # the first failure: tried again a minute later
    await pg_pool.execute("UPDATE notification_outbox SET next_attempt_at = now()")
    later.advance(timedelta(minutes=59, seconds=30))  # its next try would be 60.5 minutes after it was asked
    assert await sender.drain_once() == 1
    [row] = await outbox(pg_pool)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert (await events_of(pg_pool))[-1] == "NotificationFailed"


async def test_an_urgent_message_goes_out_before_a_queue_of_others(
    bus: MessageBus, pg_pool: asyncpg.Pool,
) -> None:
    """An elder's alert asked for behind a storm's broadcasts and acknowledgements is in the next batch."""
    await bus.handle(RequestNotifications(tuple(
        replace(request(f"incident:I1:C{n}", f"+86139000{n:05d}"), lane=Lane.BULK) for n in range(60))))
    await bus.handle(RequestNotifications(tuple(
        request(f"ack:C{n}", f"+86138000{n:05d}") for n in range(60))))
    await bus.handle(replace(request("elder-alert:C9", "+8613700000000"), lane=Lane.URGENT))
    async with pg_pool.acquire() as conn:
        first = {row.dedup_key for row in await claim_due(conn, 50, 60.0)}
        second = {row.dedup_key for row in await claim_due(conn, 50, 60.0)}
    assert first == {"elder-alert:C9", *(f"ack:C{n}" for n in range(49))}  # in the order asked
    assert second == {*(f"ack:C{n}" for n in range(49, 60)), *(f"incident:I1:C{n}" for n in range(39))}


async def test_permanent_error_fails_without_retry(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore, aiohttp_server: Any,
    twilio_provider: list[TwilioMessages],
) -> None:
    fake, base = await start(aiohttp_server, [400])
    _, sender = twilio_sender(pg_pool, pg_store, base, twilio_provider)
    await bus.handle(request(to="+860"))
    assert await sender.drain_once() == 1
    assert await sender.drain_once() == 0
    [row] = await outbox(pg_pool)
    assert row["status"] == "failed" and "21211" in row["last_error"]
    assert (await events_of(pg_pool))[-1] == "NotificationFailed"
    assert len(fake.requests) == 1


async def test_expired_lease_is_delivered_again(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore
) -> None:
    sender = Sender(pg_pool, pg_store, {"log": LogProvider()}, SystemClock(), lease=0.0)
    await bus.handle(request())
    async with pg_pool.acquire() as conn:  # a sender that claimed the row and died
        await conn.execute("UPDATE notification_outbox SET status = 'sending', "
                           "lease_until = now() - interval '1 s'")
    assert await sender.drain_once() == 1
    assert (await outbox(pg_pool))[0]["status"] == "sent"


async def test_requests_and_deliveries_wake_readers_of_notifications(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore
) -> None:
    """They append inside their own transactions (append_on), so they wake the category themselves."""
    notifications, calls = pg_store.wakeup(frozenset({"notification"})), pg_store.wakeup(frozenset({"call"}))
    await bus.handle(request())
    assert notifications.is_set()
    notifications.clear()
    sender = Sender(pg_pool, pg_store, {"log": LogProvider()}, SystemClock())
    assert await sender.drain_once() == 1
    assert notifications.is_set()
    assert not calls.is_set()


async def test_a_batch_of_requests_queues_each_key_once_in_one_transaction(
    bus: MessageBus, pg_pool: asyncpg.Pool
) -> None:
    assert await bus.handle(request("ack:C0")) is True
    batch = RequestNotifications((request("ack:C1"), request("ack:C0"), request("ack:C2", "+8613900000002"),
                                  request("ack:C1")))

    assert await bus.handle(batch) == [True, False, True, False]
    assert await bus.handle(batch) == [False, False, False, False]  # a repeated batch sends nothing
    rows = await outbox(pg_pool)
    assert [(r["dedup_key"], r["to_addr"], r["stream"]) for r in rows] == [
        ("ack:C0", "+8613912345678", "notification-ack:C0"),
        ("ack:C1", "+8613912345678", "notification-ack:C1"),
        ("ack:C2", "+8613900000002", "notification-ack:C2")]
    assert await events_of(pg_pool) == ["NotificationRequested"] * 3


async def test_a_batch_of_requests_commits_its_events_with_its_rows(
    bus: MessageBus, pg_pool: asyncpg.Pool
) -> None:
    async with pg_pool.acquire() as conn:
        await conn.execute("ALTER TABLE notification_outbox RENAME TO outbox_away")
    with pytest.raises(asyncpg.UndefinedTableError):
        await bus.handle(RequestNotifications((request("ack:C1"), request("ack:C2"))))
    assert await events_of(pg_pool) == []


class ByNumber:
    """Accepts, refuses for now, or refuses for good, by the number sent to."""

    name = "by-number"

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        if to.endswith("1"):
            raise DeliveryError("busy", retryable=True)
        if to.endswith("2"):
            raise DeliveryError("no such number", retryable=False)
        return Delivery(f"id-{dedup_key}", "queued")


async def test_a_claimed_batch_records_each_outcome_on_its_own_row_and_stream(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore
) -> None:
    sender = Sender(pg_pool, pg_store, {"sms": ByNumber(), "log": LogProvider()}, SystemClock(),
                    retry=RetryPolicy(base_delay=60.0))
    for n in range(3):
        await bus.handle(request(f"ack:C{n}", f"+861390000000{n}"))

    assert await sender.drain_once() == 3
    assert await sender.drain_once() == 0  # the retry waits its backoff
    rows = {r["dedup_key"]: r for r in await outbox(pg_pool)}
    found = {k: (r["status"], r["provider_id"], r["last_error"], r["lease_until"]) for k, r in rows.items()}
    assert found == {
        "ack:C0": ("sent", "id-ack:C0", None, None), "ack:C1": ("retry", None, "busy", None),
        "ack:C2": ("failed", None, "no such number", None)}
    assert rows["ack:C1"]["next_attempt_at"] > rows["ack:C0"]["next_attempt_at"]
    for n, last in enumerate(("NotificationSent", "NotificationAttemptFailed", "NotificationFailed")):
        assert await events_of(pg_pool, f"notification-ack:C{n}") == ["NotificationRequested", last]


async def test_a_chinese_number_goes_to_twilio_in_e164(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore, aiohttp_server: Any,
    twilio_provider: list[TwilioMessages],
) -> None:
    """Cases keep a Chinese number without +86 (`normalise_phone`); Twilio's `To` takes E.164 only."""
    fake, base = await start(aiohttp_server, [])
    _, sender = twilio_sender(pg_pool, pg_store, base, twilio_provider)
    await bus.handle(request(to="13912345678"))
    assert await sender.drain_once() == 1
    assert [r["form"]["To"] for r in fake.requests] == ["+8613912345678"]
    assert (await outbox(pg_pool))[0]["status"] == "sent"


class Flaky:
    """Accepts every message but one, for which it fails with an error of its own (a bug)."""

    name = "flaky"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        if to.endswith("1"):
            raise KeyError("sid")
        self.sent.append(dedup_key)
        return Delivery(f"id-{dedup_key}", "queued")


async def test_a_provider_bug_on_one_message_costs_the_others_nothing(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore
) -> None:
    """The other messages of the batch were accepted: they are recorded, never sent again."""
    provider = Flaky()
    sender = Sender(pg_pool, pg_store, {"sms": provider, "log": LogProvider()}, SystemClock(),
                    retry=RetryPolicy(base_delay=60.0), lease=0.0)
    for n in range(3):
        await bus.handle(request(f"ack:C{n}", f"+861390000000{n}"))

    assert await sender.drain_once() == 3
    assert await sender.drain_once() == 0
    found = {r["dedup_key"]: (r["status"], r["last_error"]) for r in await outbox(pg_pool)}
    assert found == {"ack:C0": ("sent", None), "ack:C1": ("retry", "flaky error: KeyError"),
                     "ack:C2": ("sent", None)}
    assert sorted(provider.sent) == ["ack:C0", "ack:C2"]


class Quoting:
    """Refuses every message quoting the number, as Twilio's 21211 message does."""

    name = "quoting"

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        raise DeliveryError(f"twilio 400: 21211 The 'To' number {to} is not a valid phone number.",
                            retryable=dedup_key.endswith("0"))


async def test_a_provider_error_quoting_the_number_is_kept_masked(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore
) -> None:
    """Delivery events are not sealed personal data: the number must not stand whole in them."""
    sender = Sender(pg_pool, pg_store, {"sms": Quoting(), "log": LogProvider()}, SystemClock(),
                    retry=RetryPolicy(base_delay=60.0))
    await bus.handle(request("ack:C0", "+8613912345670"))
    await bus.handle(request("ack:C1", "+8613912345671"))
    assert await sender.drain_once() == 2
    async with pg_pool.acquire() as conn:
        errors = await conn.fetch("SELECT type, data->>'error' AS error FROM events "
                                  "WHERE stream LIKE 'notification-%' AND data ? 'error' ORDER BY stream")
        rows = await conn.fetch("SELECT last_error FROM notification_outbox ORDER BY id")
    said = "twilio 400: 21211 The 'To' number **********567{} is not a valid phone number."
    assert [(e["type"], e["error"]) for e in errors] == [
        ("NotificationAttemptFailed", said.format(0)), ("NotificationFailed", said.format(1))]
    assert [r["last_error"] for r in rows] == [e["error"] for e in errors]


async def answering(aiohttp_server: Any, *answers: web.Response) -> str:
    """A server answering Twilio's Messages URL with `answers` in turn."""
    queue = list(answers)

    async def messages(request: web.Request) -> web.Response:
        await request.post()
        return queue.pop(0)

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", messages)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_twilio_answers_that_are_not_json_are_judged_by_their_status(
    aiohttp_server: Any, twilio_provider: list[TwilioMessages],
) -> None:
    """A 2xx took the message (sending again would send it twice); a 4xx HTML page refused it."""
    later = "Wed, 21 Oct 2099 07:28:00 GMT"
    base = await answering(
        aiohttp_server, web.Response(status=201, text="<html>created</html>"),
        web.json_response({"sid": 12345, "status": "queued"}, status=201),
        web.Response(status=400, text="<html>Bad Request</html>"),
        web.Response(status=429, text="slow down", headers={"Retry-After": later}))
    provider = TwilioMessages("AC123", "secret", "+8610000", api_base=base)
    twilio_provider.append(provider)
    assert await provider.send("13912345678", "您好", "k1") == Delivery(None, "queued")
    assert await provider.send("13912345678", "您好", "k2") == Delivery(None, "queued")
    with pytest.raises(DeliveryError) as refused:
        await provider.send("13912345678", "您好", "k3")
    assert not refused.value.retryable and refused.value.message.startswith("twilio 400")
    with pytest.raises(DeliveryError) as limited:
        await provider.send("13912345678", "您好", "k4")
    assert limited.value.retryable and (limited.value.retry_after or 0) > 86400 * 365


async def test_a_message_to_a_person_erased_before_it_went_out_is_not_sent(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore, aiohttp_server: Any,
    twilio_provider: list[TwilioMessages],
) -> None:
    """Erasure blanks the waiting row's number and text: nothing goes to Twilio, the row says why."""
    fake, base = await start(aiohttp_server, [])
    _, sender = twilio_sender(pg_pool, pg_store, base, twilio_provider)
    await bus.handle(request("ack:C1", "13912345678"))
    erasing = MessageBus(collect_handlers(DOMAIN), {"store": pg_store, "clock": SystemClock(),
                                                    "pool": pg_pool, "sla": SlaConfig()})
    await erasing.handle(EraseSubject(subject="phone:13912345678", reason="公民申请删除个人信息",
                                      legal_basis="request", actor="admin:root"))
    assert await sender.drain_once() == 1
    assert fake.requests == []
    [row] = await outbox(pg_pool)
    assert (row["status"], row["last_error"], row["to_addr"]) == ("failed", "recipient erased", "[erased]")
    assert (await events_of(pg_pool))[-1] == "NotificationFailed"


async def test_twilio_is_told_where_to_report_delivery(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore, aiohttp_server: Any,
    twilio_provider: list[TwilioMessages],
) -> None:
    fake, base = await start(aiohttp_server, [])
    hook = "https://intake.example.cn/channels/twilio/sms-status"
    provider = TwilioMessages("AC123", "secret", "+8610000", api_base=base, status_callback=hook)
    twilio_provider.append(provider)
    sender = Sender(pg_pool, pg_store, {"sms": provider, "log": LogProvider()}, SystemClock())
    await bus.handle(request())
    assert await sender.drain_once() == 1
    assert fake.requests[0]["form"]["StatusCallback"] == hook


class Slow:
    """A provider whose first message is accepted at once and every other one only after `hold` s."""

    name = "slow"

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.accepted: list[str] = []
        self.started = asyncio.Event()

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        self.started.set()
        if self.accepted:
            await asyncio.sleep(self.hold)
        self.accepted.append(dedup_key)
        return Delivery(f"SM-{dedup_key}", "queued")


@pytest.mark.parametrize(("hold", "stop_wait", "recorded"), [(0.3, 3.0, 3), (30.0, 0.3, 1)])
async def test_a_sender_stopped_gracefully_records_what_it_handed_over_and_releases_the_rest(
    bus: MessageBus, pg_pool: asyncpg.Pool, pg_store: PostgresEventStore, hold: float, stop_wait: float,
    recorded: int,
) -> None:
    """SIGTERM cancels the sender mid-batch: it waits a little for the messages in flight, records
    those the provider accepted (they are never sent again) and lets the others go at once
    (another worker takes them without waiting out the lease) - instead of leaving the whole batch
    leased for a minute and sending the accepted ones again after it."""
    for n in range(3):
        await bus.handle(request(key=f"ack:C{n}"))
    provider = Slow(hold=hold)
    sender = Sender(pg_pool, pg_store, {"sms": provider, "log": LogProvider()}, SystemClock(),
                    stop_wait=stop_wait)
    task = asyncio.create_task(sender.run())
    await asyncio.wait_for(provider.started.wait(), 5)
    await asyncio.sleep(0.05)  # the first message accepted, the other two in flight
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    rows = {r["dedup_key"]: r["status"] for r in await outbox(pg_pool)}
    assert len(provider.accepted) == recorded
    assert sorted(rows.values()) == ["sending"] * (3 - recorded) + ["sent"] * recorded, rows
    assert {k for k, status in rows.items() if status == "sent"} == set(provider.accepted)
    assert (await events_of(pg_pool)).count("NotificationSent") == recorded
    other = Slow(hold=0.0)
    taking_over = Sender(pg_pool, pg_store, {"sms": other, "log": LogProvider()}, SystemClock())
    assert await taking_over.drain_once() == 3 - recorded  # at once: no lease left to run out
    assert sorted(provider.accepted + other.accepted) == ["ack:C0", "ack:C1", "ack:C2"]
    assert {r["status"] for r in await outbox(pg_pool)} == {"sent"}
