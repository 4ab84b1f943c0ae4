"""Registering a case is idempotent on the channel's key, also across midnight."""

from __future__ import annotations

from dispatch.cases.events import CallerInfo
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.core.clock import FakeClock
from eventstore.memory import MemoryEventStore


def command() -> RegisterCase:
    return RegisterCase(category="consultation", channel="web", description="电费怎么交",
                        caller=CallerInfo(phone="13800000000"), idempotency_key="web:req-1")


async def test_redelivery_answers_the_first_case_even_on_another_day() -> None:
    store, clock = MemoryEventStore(), FakeClock()
    first = await register_case(command(), store=store, clock=clock)
    same_day = await register_case(command(), store=store, clock=clock)
    clock.advance(86_400)
    next_day = await register_case(command(), store=store, clock=clock)
    assert not first.duplicate
    assert same_day.duplicate and next_day.duplicate
    assert first.case_id == same_day.case_id == next_day.case_id
    assert len(await store.read_all(await store.load_checkpoint("x"))) == 1
