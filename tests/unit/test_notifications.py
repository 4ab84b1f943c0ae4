"""Acknowledgement SMS policy and the sender's retry policy."""

from __future__ import annotations

import math

from dispatch.cases.events import CallerInfo
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.core.clock import FakeClock
from dispatch.notify.outbox import (
    MAX_TEXT,
    AcknowledgementPolicy,
    RequestNotification,
    fit_text,
    notification_stream,
)
from dispatch.notify.sender import RetryPolicy
from eventstore import ANY, NewEvent
from eventstore.memory import MemoryEventStore
from eventstore.subscriptions import Keyed


async def acknowledged(store: MemoryEventStore) -> list[RequestNotification]:
    """What the acknowledgement policy asks for, reacting to every event of `store` in log order."""
    sent: list[RequestNotification] = []

    async def handle(cmd: object) -> None:
        assert isinstance(cmd, RequestNotification)
        sent.append(cmd)

    policy = AcknowledgementPolicy(handle, store)
    for _, record in await store.read_all(await store.load_checkpoint("x")):
        await policy.react(record)
    return sent


async def complete(store: MemoryEventStore, *case_ids: str) -> None:
    """Record each case's `CaseCompleted`."""
    for case_id in case_ids:
        await store.append(f"case-{case_id}", [NewEvent(
            "CaseCompleted", {"case_id": case_id, "completed_at": "2026-11-23T09:00:00+00:00"})], ANY)


async def test_acknowledges_acceptance_and_completion_once_per_case() -> None:
    store = MemoryEventStore()
    sent: list[RequestNotification] = []

    async def handle(cmd: object) -> None:
        assert isinstance(cmd, RequestNotification)
        sent.append(cmd)

    registered = await register_case(
        RegisterCase(category="power_fault", channel="phone", description="停电",
                     caller=CallerInfo(name="张三", phone="13912345678")),
        store=store, clock=FakeClock())
    anonymous = await register_case(
        RegisterCase(category="consultation", channel="web", description="?", caller=CallerInfo()),
        store=store, clock=FakeClock())
    await store.append(f"case-{registered.case_id}", [NewEvent(
        "CaseCompleted", {"case_id": registered.case_id, "completed_at": "2026-11-23T09:00:00+00:00"})], ANY)
    policy = AcknowledgementPolicy(handle, store)
    records = [record for _, record in await store.read_all(await store.load_checkpoint("x"))]
    for record in records:
        await policy.react(record)
    assert isinstance(policy, Keyed) and {policy.key(r) for r in records} == {
        f"case-{registered.case_id}", f"case-{anonymous.case_id}"}  # per case: concurrent cases
    assert [(n.dedup_key, n.to, n.reason) for n in sent] == [
        (f"ack:{registered.case_id}", "13912345678", "accepted"),
        (f"done:{registered.case_id}", "13912345678", "completed"),
    ]
    assert registered.case_id in sent[0].text
    assert all(anonymous.case_id not in n.dedup_key for n in sent)


async def test_a_landline_caller_is_not_texted_and_a_follower_is_told_over_wechat() -> None:
    """A landline cannot take the SMS (the provider would only fail it); WeChat reaches a follower."""
    store = MemoryEventStore()
    landline = await register_case(
        RegisterCase(category="power_fault", channel="phone", description="停电",
                     caller=CallerInfo(name="张三", phone="02988886666")),
        store=store, clock=FakeClock())
    both = await register_case(
        RegisterCase(category="power_fault", channel="phone", description="停电",
                     caller=CallerInfo(phone="029-8888-6667", openid="oG8xZ5-follower")),
        store=store, clock=FakeClock())
    await complete(store, landline.case_id, both.case_id)
    assert [(n.dedup_key, n.channel, n.to) for n in await acknowledged(store)] == [
        (f"done:{both.case_id}", "wechat", "oG8xZ5-follower")]


async def test_alarm_cases_get_no_acceptance_sms_to_the_device_owner() -> None:
    store = MemoryEventStore()
    await register_case(
        RegisterCase(category="elderly_emergency", channel="alarm", description="一键呼叫",
                     caller=CallerInfo(name="王奶奶", phone="13912345678", device_account="E0001")),
        store=store, clock=FakeClock())
    assert await acknowledged(store) == []


def test_retry_delay_is_exponential_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=30.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.delay(1, retry_after=12.0) == 12.0


def test_a_provider_retry_after_is_honoured_only_up_to_the_longest_delay() -> None:
    """`Retry-After: 1e12` or `inf` must neither park a message past year 9999 nor stop the sender."""
    policy = RetryPolicy(base_delay=2.0, max_delay=600.0)
    assert [policy.delay(1, retry_after=v) for v in (1e12, math.inf, math.nan, -5.0)] == [
        600.0, 2.0, 2.0, 2.0]


def test_odd_dedup_keys_get_a_valid_stream() -> None:
    assert notification_stream("ack:C1") == "notification-ack:C1"
    odd = notification_stream("chase/unit U001 #3")
    assert odd.startswith("notification-") and len(odd) == len("notification-") + 64


async def test_a_wechat_case_without_a_phone_is_told_of_completion_over_wechat() -> None:
    store = MemoryEventStore()
    follower = await register_case(
        RegisterCase(category="complaint", channel="wechat", description="路灯不亮",
                     caller=CallerInfo(openid="oG8xZ5-follower")), store=store, clock=FakeClock())
    both = await register_case(
        RegisterCase(category="complaint", channel="wechat", description="路灯不亮",
                     caller=CallerInfo(phone="13912345678", openid="oG8xZ5-other")),
        store=store, clock=FakeClock())
    await complete(store, follower.case_id, both.case_id)
    sent = await acknowledged(store)
    assert [(n.dedup_key, n.channel, n.to) for n in sent if n.reason == "completed"] == [
        (f"done:{follower.case_id}", "wechat", "oG8xZ5-follower"),
        (f"done:{both.case_id}", "sms", "13912345678"),  # a phone number is preferred
    ]
    wechat = next(n.text for n in sent if n.channel == "wechat")
    assert "短信" not in wechat and "回复本消息" in wechat  # a WeChat message is no SMS to reply to
    assert not any(n.reason == "accepted" and n.channel == "wechat" for n in sent)  # the reply acked it


def test_a_text_over_the_limit_is_cut_between_characters_as_sms_counts_them() -> None:
    """SMS counts UTF-16 units (an emoji is two): the cut text fits and no character is split."""
    assert fit_text("您的诉求已受理") == "您的诉求已受理"
    assert fit_text("停" * MAX_TEXT) == "停" * MAX_TEXT
    cut = fit_text("停电" * MAX_TEXT)
    assert cut == "停电" * (MAX_TEXT // 2 - 1) + "停…"
    emoji = fit_text("😀" * MAX_TEXT)
    assert emoji == "😀" * (MAX_TEXT // 2 - 1) + "…"
    assert len(emoji.encode("utf-16-le")) // 2 <= MAX_TEXT
