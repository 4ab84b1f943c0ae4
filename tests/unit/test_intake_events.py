"""Rejected input, presence changes and WeChat pushes are typed events that keep their stored shape."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from channels.rejected import MAX_UNAUTHENTICATED, kept_payload, record_rejected
from dispatch.core.bus import MessageBus
from dispatch.core.clock import FakeClock
from dispatch.core.messages import from_recorded
from dispatch.intake.rejected import InputRejected, RecordRejectedInput, record_rejected_input
from dispatch.intake.wechat import (
    ASK_PHONE,
    ReceiveWeChatPush,
    WeChatMessageReceived,
    WeChatPush,
    conversation_stream,
    receive_wechat_push,
)
from dispatch.missed_calls.presence import RecordPresence, record_presence
from eventstore import RecordedEvent
from eventstore.memory import MemoryEventStore

AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def bus(store: MemoryEventStore) -> MessageBus:
    handlers: dict[type, Any] = {
        RecordRejectedInput: record_rejected_input, RecordPresence: record_presence,
        ReceiveWeChatPush: receive_wechat_push,
    }
    return MessageBus(handlers, {"store": store, "clock": FakeClock()})


async def events(store: MemoryEventStore) -> list[RecordedEvent]:
    return [record for _, record in await store.read_all(await store.load_checkpoint("x"))]


async def test_a_rejection_is_recorded_with_the_keys_old_logs_hold() -> None:
    store = MemoryEventStore()
    recorded = await record_rejected(
        bus(store).handle, channel="wechat", code="bad_xml", reason="malformed", raw=b"<xml api_key=1",
        at=AT, headers={"Content-Type": "text/xml", "Cookie": "x"}, peer="1.2.3.4", query={"nonce": "n"})
    [record] = await events(store)
    assert recorded and record.type == "InputRejected" and record.stream.startswith("rejected-")
    assert record.data == {"channel": "wechat", "code": "bad_xml", "reason": "malformed",
                           "raw": "<xml api_key=1", "raw_length": 14, "headers": {"Content-Type": "text/xml"},
                           "peer": "1.2.3.4", "query": {"nonce": "n"}, "transport": None,
                           "raw_sha256": hashlib.sha256(b"<xml api_key=1").hexdigest()}
    assert record.metadata["actor"] == "channel:wechat"


def test_an_old_rejection_record_reads_back() -> None:
    old = {"channel": "alarm", "code": "bad_frame", "reason": "r", "raw": None, "raw_length": 0,
           "headers": {}, "peer": "p", "transport": "sia-tcp"}
    evt = from_recorded(RecordedEvent(1, "rejected-1", 0, "InputRejected", 1, old, {}, AT))
    assert evt == InputRejected("alarm", "bad_frame", "r", None, 0, {}, "p", None, "sia-tcp")


async def test_presence_is_recorded_only_when_it_changes() -> None:
    store = MemoryEventStore()
    handle = bus(store).handle
    assert await handle(RecordPresence("a1", "online", None, "agent:a1"))
    assert not await handle(RecordPresence("a1", "online", "online", "agent:a1"))
    assert not await handle(RecordPresence("a1", "offline", None, "agent:a1"))
    [record] = await events(store)
    assert (record.stream, record.type) == ("presence-a1", "AgentPresenceChanged")
    assert record.data == {"agent_id": "a1", "status": "online", "previous": "offline"}


def push(content: str, msg_id: str) -> WeChatPush:
    return WeChatPush("gh", "oUser_1", "1700000000", "text", msg_id, content)


async def test_a_wechat_complaint_opens_its_case_at_once_and_the_phone_number_joins_it() -> None:
    store = MemoryEventStore()
    handle = bus(store).handle
    first = await handle(ReceiveWeChatPush(push("路灯坏了", "1"), "<xml/>"))
    phone = await handle(ReceiveWeChatPush(push("13912345678", "2"), "<xml/>"))
    again = await handle(ReceiveWeChatPush(push("13912345678", "2"), "<xml/>"))
    assert first.case_id is not None and f"工单号 {first.case_id}" in first.reply and ASK_PHONE in first.reply
    assert (phone.case_id, phone.duplicate) == (first.case_id, False)
    assert (again.reply, again.case_id, again.duplicate) == (phone.reply, phone.case_id, True)
    received = [from_recorded(r) for r in await store.read_stream(conversation_stream("oUser_1"))]
    filed = [(e.push.msg_id, e.case_id, e.opened) for e in received if isinstance(e, WeChatMessageReceived)]
    assert filed == [("1", first.case_id, True), ("2", first.case_id, False)]
    case = [r.type for r in await store.read_stream(f"case-{first.case_id}")]
    assert case == ["CaseRegistered", "CallerPhoneGiven"]
    assert [r.type for r in await events(store)].count("CaseRegistered") == 1


def test_an_old_wechat_push_record_reads_back() -> None:
    pushed = {"to_user": "gh", "from_user": "oU", "create_time": "1", "msg_type": "text", "msg_id": "9",
              "content": "x", "lat": None, "lon": None, "label": None, "event": None, "event_key": None}
    old = {"push": pushed, "raw": "<xml/>"}
    evt = from_recorded(RecordedEvent(1, "wechat-oU", 0, "WeChatMessageReceived", 1, old, {}, AT))
    assert evt == WeChatMessageReceived(WeChatPush("gh", "oU", "1", "text", "9", "x"), "<xml/>")


SECRET = "s3cr3t-channel-key"


@pytest.mark.parametrize("raw", [
    f"service_code=x&api_key={SECRET}&lat=1",
    f'{{"api_key": "{SECRET}", "lat": 1}}',
    f"<request><api_key>{SECRET}</api_key></request>",
    f'--b\r\nContent-Disposition: form-data; name="api_key"\r\n\r\n{SECRET}\r\n--b--\r\n',
    f'--b\r\nContent-Disposition: form-data; name="api_key"\r\nContent-Type: text/plain\r\n\r\n'
    f"{SECRET}\r\n--b--",
    f"--b\nContent-Disposition: form-data; name=api_key\n\n{SECRET}\n--b--\n",
], ids=["form", "json", "xml", "multipart", "multipart-typed", "multipart-lf"])
def test_a_credential_is_redacted_whatever_the_body_shape(raw: str) -> None:
    for authenticated in (True, False):
        kept, _, _ = kept_payload(raw.encode(), authenticated=authenticated)
        assert kept is not None and SECRET not in kept and "***" in kept, kept


def test_unauthenticated_input_keeps_256_bytes_of_whole_characters_its_length_and_hash() -> None:
    raw = ("停" * 200).encode()  # 600 bytes, 3 a character
    kept, length, digest = kept_payload(raw, authenticated=False)
    assert kept == "停" * 85 and (length, digest) == (600, hashlib.sha256(raw).hexdigest())
    cut_key = ("x" * 240 + f"&api_key={SECRET}").encode()  # the key straddles byte 256
    kept, _, _ = kept_payload(cut_key, authenticated=False)
    assert kept is not None and SECRET[:4] not in kept and len(kept.encode()) <= MAX_UNAUTHENTICATED
    assert kept_payload(raw, authenticated=True)[0] == "停" * 200
