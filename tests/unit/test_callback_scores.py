"""Call-back scores: the citizen's 1-5 for the case and for the handling unit, on the event and
the state; anything else refused with `bad_score`; call-backs recorded before scores replay."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatch.cases.actions import CompleteCase, DispatchCase, InvalidScore, RecordCallback
from dispatch.cases.events import CallbackRecorded
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import fold, load_case
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import FakeClock
from dispatch.core.messages import from_data, to_new_event
from eventstore import RecordedEvent
from eventstore.memory import MemoryEventStore
from tests.unit.test_lifecycle import DOMAIN, U1, new_case, store_of

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def bus(clock: FakeClock) -> MessageBus:
    store = MemoryEventStore(clock.now)
    return MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": clock, "sla": SlaConfig()})


async def completed(bus: MessageBus) -> str:
    case_id = await new_case(bus)
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    await bus.handle(CompleteCase(case_id=case_id, expected_version=1, actor=U1))
    return case_id


async def test_scores_are_recorded_with_the_outcome(bus: MessageBus) -> None:
    case_id = await completed(bus)
    s = await bus.handle(RecordCallback(case_id=case_id, expected_version=2, outcome="unsatisfied",
                                        case_score=2, unit_score=1, actor="agent:A001"))
    assert (s.callback_outcome, s.callback_case_score, s.callback_unit_score) == ("unsatisfied", 2, 1)
    last = (await store_of(bus).read_stream(f"case-{case_id}"))[-1]
    assert (last.type, last.data["case_score"], last.data["unit_score"], last.data["handler"]) == (
        "CallbackRecorded", 2, 1, "U001")
    again = await load_case(store_of(bus), case_id)
    assert (again.callback_case_score, again.callback_unit_score) == (2, 1)


async def test_scores_are_optional_each(bus: MessageBus) -> None:
    case_id = await completed(bus)
    s = await bus.handle(RecordCallback(case_id=case_id, expected_version=2, outcome="not_confirmed",
                                        unit_score=5))
    assert (s.callback_case_score, s.callback_unit_score) == (None, 5)


@pytest.mark.parametrize("field", ["case_score", "unit_score"])
@pytest.mark.parametrize("bad", [0, 6, -1, 4.5, True, "5"])
async def test_a_score_outside_1_to_5_is_refused_and_nothing_is_written(
    bus: MessageBus, field: str, bad: object
) -> None:
    case_id = await completed(bus)
    with pytest.raises(InvalidScore) as refused:
        await bus.handle(RecordCallback(case_id=case_id, expected_version=2, outcome="satisfied",
                                        **{field: bad}))  # type: ignore[arg-type]
    assert (refused.value.code, refused.value.field) == ("bad_score", field)
    assert len(await store_of(bus).read_stream(f"case-{case_id}")) == 3
    assert (await load_case(store_of(bus), case_id)).callback_outcome is None
    s = await bus.handle(RecordCallback(case_id=case_id, expected_version=2, outcome="satisfied",
                                        **{field: 1}))  # type: ignore[arg-type]
    assert getattr(s, f"callback_{field}") == 1


def test_a_call_back_recorded_before_scores_replays_without_them() -> None:
    old = {"case_id": "C1", "outcome": "satisfied", "at": T0.isoformat(), "handler": "U001", "note": None,
           "by": "agent:A001"}
    evt = from_data(CallbackRecorded, old)
    assert (evt.case_score, evt.unit_score, evt.outcome) == (None, None, "satisfied")
    new = to_new_event(CallbackRecorded("C1", "satisfied", T0, case_score=4, unit_score=3))
    assert (new.data["case_score"], new.data["unit_score"]) == (4, 3)
    record = RecordedEvent(1, "case-C1", 0, "CallbackRecorded", 1, old, {}, T0)
    assert fold("C1", [record]).callback_case_score is None
