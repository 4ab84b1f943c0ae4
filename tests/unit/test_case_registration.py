"""Registering a case: idempotent on the channel's key (also across midnight), lenient unless strict."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from dispatch.cases.events import CallerInfo
from dispatch.cases.registration import CASE_ID, RegisterCase, decide_registration, new_case_id, register_case
from dispatch.core.clock import FakeClock
from dispatch.core.errors import InvalidCommand
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



def test_names_are_kept_as_given_and_only_a_strict_registration_refuses_missing_fields() -> None:
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    name = "Bartholomew Fitzgerald-Smythe of Little Snoring"
    lenient = RegisterCase(category="power_fault", channel="web", description="停电",
                           caller=CallerInfo(name=name, phone="+44 20 7946 0958"))
    evt = decide_registration(lenient, "C1", now)
    assert evt.caller.name == name and evt.caller.phone == "+442079460958"
    assert evt.missing_fields == ("account_number", "fault.type", "fault.began_at", "fault.scope", "address")
    with pytest.raises(InvalidCommand, match="account_number"):
        decide_registration(replace(lenient, strict=True), "C1", now)


def test_every_case_number_handed_out_has_the_shape_read_your_writes_looks_for() -> None:
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert all(CASE_ID.match(new_case_id(now, seed)) for seed in (None, "a", "b", "web:req-1#2"))
    assert not CASE_ID.match("C0000") and not CASE_ID.match("../case")


def test_the_case_number_carries_the_beijing_date() -> None:
    """The case number's date is the day of acceptance in Beijing time: a case accepted at
    07:00 on 8 December in Beijing (23:00 UTC on the 7th) is numbered C20261208..., not C20261207."""
    assert new_case_id(datetime(2026, 12, 7, 23, 0, tzinfo=UTC), "a").startswith("C20261208")
    assert new_case_id(datetime(2026, 12, 7, 15, 30, tzinfo=UTC), "a").startswith("C20261207")

