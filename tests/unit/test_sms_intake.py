"""SMS intake decisions on the in-memory store, with a `cases` read model that lags."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatch.cases.events import CallerInfo
from dispatch.cases.state import CaseState
from dispatch.core.clock import FakeClock
from dispatch.core.errors import KeyReused
from dispatch.intake.contact import InboundContact
from dispatch.intake.sms import (
    ReceiveSms,
    SmsIntakePolicy,
    TakeInSms,
    callable_number,
    newest_open,
    receive_sms,
    sender_stream,
    sms_stream,
    take_in_sms,
)
from eventstore.memory import MemoryEventStore
from eventstore.subscriptions import Keyed

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class StaleReadModel:
    """Stands in for the pool: the `cases` read model answers `case_id` (None: nothing yet)."""

    def __init__(self, case_id: str | None = None) -> None:
        self.case_id = case_id

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        """A connection whose every query answers the stale row."""
        outer = self

        class Conn:
            async def fetchval(self, *_: Any) -> str | None:
                return outer.case_id

        yield Conn()


def contact(sid: str, phone: str | None = "+8613911112222") -> TakeInSms:
    found = InboundContact(channel="sms", kind="sms", idempotency_key=f"twilio:sms:{sid}",
                           caller=CallerInfo(phone=phone), occurred_at=T0, received_at=T0,
                           text="停电了", raw={"MessageSid": sid})
    return TakeInSms(found, sms_stream(found))


def test_newest_open_skips_finished_cases() -> None:
    old = CaseState("C1", status="accepted", created_at=T0)
    new = replace(old, case_id="C2", created_at=T0 + timedelta(minutes=1))
    assert newest_open([new, old]) == "C2"
    assert newest_open([replace(new, status="closed"), old]) == "C1"
    done = ("completed", "called_back", "archived", "closed")
    assert newest_open([replace(old, status=s) for s in done]) is None
    assert newest_open([]) is None


async def test_the_next_sms_joins_the_case_the_read_model_has_not_seen_yet() -> None:
    store, clock, pool = MemoryEventStore(), FakeClock(), StaleReadModel()
    first = await take_in_sms(contact("SM1"), store=store, clock=clock, pool=pool)
    second = await take_in_sms(contact("SM2"), store=store, clock=clock, pool=pool)
    again = await take_in_sms(contact("SM1"), store=store, clock=clock, pool=pool)

    assert (first.opened, first.duplicate) == (True, False)
    assert (second.case_id, second.opened, second.duplicate) == (first.case_id, False, False)
    assert (again.case_id, again.opened, again.duplicate) == (first.case_id, True, True)
    [opened] = await store.read_stream(sender_stream("13911112222"))
    assert opened.data == {"case_id": first.case_id, "sms_stream": "sms-twilio:sms:SM1"}


async def test_the_newer_of_the_own_and_the_read_model_case_wins() -> None:
    store, clock = MemoryEventStore(), FakeClock()

    async def take(sid: str, read_model: str | None = None, phone: str | None = "13911112222") -> Any:
        return await take_in_sms(contact(sid, phone), store=store, clock=clock,
                                 pool=StaleReadModel(read_model))

    older = await take("SM0", phone=None)  # stands for a case an agent registered earlier
    clock.advance(60)
    mine = await take("SM1")  # the read model does not show the older case yet
    assert mine.opened and mine.case_id != older.case_id
    assert (await take("SM2", read_model=older.case_id)).case_id == mine.case_id
    clock.advance(60)
    newer = await take("SM3", phone=None)
    assert (await take("SM4", read_model=newer.case_id)).case_id == newer.case_id


async def test_the_policy_takes_in_one_senders_sms_in_order_others_alongside() -> None:
    store = MemoryEventStore()
    for sid, phone in [("SM1", "+8613911112222"), ("SM2", None), ("SM3", "+86 139 1111 2222")]:
        await receive_sms(ReceiveSms(contact(sid, phone).contact), store=store)
    policy = SmsIntakePolicy(print)
    assert isinstance(policy, Keyed)

    keys = [policy.key(e) for _, e in await store.read_all(await store.load_checkpoint("x"))]
    assert keys[0] == keys[2] == callable_number("+8613911112222")
    assert keys[1] == "sms-twilio:sms:SM2"  # no number: the SMS is a key of its own


async def test_a_message_id_repeated_for_another_message_is_refused() -> None:
    """A MessageSid repeated with another Body was answered 200 as a redelivery and the second
    text was lost unseen (CTI, WeChat and Open311 answer such a reuse 409). A redelivery - the
    same words from the same sender, received later - is still a repeat."""
    store = MemoryEventStore()
    first = contact("SM9").contact
    await receive_sms(ReceiveSms(first), store=store)
    later = replace(first, received_at=T0 + timedelta(seconds=30))
    assert (await receive_sms(ReceiveSms(later), store=store)).duplicate
    for other in (replace(first, text="又停电了"),
                  replace(first, caller=CallerInfo(phone="+8613900001111")),
                  replace(first, extra={"media": ["https://api.twilio.com/m/ME1"]})):
        with pytest.raises(KeyReused):
            await receive_sms(ReceiveSms(other), store=store)
    assert len(await store.read_stream(sms_stream(first))) == 1


async def test_an_sms_telling_of_a_danger_opens_a_priority_one_case() -> None:
    from dispatch.cases.state import load_case

    store, clock = MemoryEventStore(), FakeClock()
    danger = contact("SM9")
    danger = replace(danger, contact=replace(danger.contact, text="变压器冒烟，有焦味，在人民路"))
    taken = await take_in_sms(danger, store=store, clock=clock, pool=StaleReadModel())
    case = await load_case(store, taken.case_id)
    assert (case.category, case.priority) == ("power_fault", 1)
    plain = await take_in_sms(contact("SM10", phone="13900000000"), store=store, clock=clock,
                              pool=StaleReadModel())
    assert (await load_case(store, plain.case_id)).priority == 2  # 停电了: a power fault's default


async def test_an_empty_sms_opens_a_case_with_no_words_put_in_its_mouth() -> None:
    """An SMS with no text opened a case described "(empty SMS)": English put in the citizen's
    mouth on a Chinese board. Its description is empty (the console names that in its language)."""
    from channels.twilio import parse_sms
    from dispatch.cases.state import load_case

    store, clock, pool = MemoryEventStore(), FakeClock(), StaleReadModel()
    form = {"MessageSid": ["SM0"], "From": ["+8613911113333"], "Body": [""]}
    opened = await take_in_sms(TakeInSms(parse_sms(form, T0).contact, "sms-twilio:sms:SM0"),
                               store=store, clock=clock, pool=pool)
    assert opened.opened and (await load_case(store, opened.case_id)).description == ""


async def test_an_mms_photo_reaches_the_case_it_opens_or_joins() -> None:
    """An MMS (Twilio: `NumMedia`, `MediaUrl0..`) is a photo of the fault: its media URLs are in
    the case's description or the message it adds, not only in the raw form (an MMS with an
    empty `Body` opened a case reading "(empty SMS)" and joined one as an empty message)."""
    from channels.twilio import parse_sms
    from dispatch.cases.state import load_case

    store, clock, pool = MemoryEventStore(), FakeClock(), StaleReadModel()
    photo = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    form = {"MessageSid": ["MM1"], "From": ["+8613911112222"], "Body": [""], "NumMedia": ["1"],
            "MediaUrl0": [photo], "MediaContentType0": ["image/jpeg"]}
    opened = await take_in_sms(TakeInSms(parse_sms(form, T0).contact, "sms-twilio:sms:MM1"),
                               store=store, clock=clock, pool=pool)
    assert photo in (await load_case(store, opened.case_id)).description
    second = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM2/Media/ME2"
    form = {**form, "MessageSid": ["MM2"], "Body": ["现场照片"], "NumMedia": ["2"], "MediaUrl1": [second]}
    joined = await take_in_sms(TakeInSms(parse_sms(form, T0).contact, "sms-twilio:sms:MM2"),
                               store=store, clock=clock, pool=pool)
    assert joined.case_id == opened.case_id and not joined.opened
    [message] = [r for r in await store.read_stream(f"case-{opened.case_id}")
                 if r.type == "CaseMessageReceived"]
    assert message.data["text"] == f"现场照片\n{photo}\n{second}"
