"""The call-back task's decisions as exact events: outcomes, assignment, ids and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.core.errors import InvalidCommand, NotAllowed, NotFound
from dispatch.core.messages import Event, to_new_event
from dispatch.core.personal import pseudonym
from dispatch.missed_calls.task import (
    CallbackAttemptRecorded,
    CallbackMissedAgain,
    CallbackState,
    CallbackTaskAssigned,
    CallbackTaskClosed,
    CallbackTaskOpened,
    CallerGotThrough,
    decide_assign,
    decide_got_through,
    decide_missed,
    decide_outcome,
    fold,
    fold_onto,
    stream_of_task,
)
from eventstore import RecordedEvent

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TASK = f"{pseudonym('13912345678')}.1"


def open_task(assigned_to: str | None = None) -> CallbackState:
    state = CallbackState("13912345678")
    state.apply(decide_missed(state, "c1", "q", T0)[0])
    if assigned_to:
        state.apply(decide_assign(state, TASK, assigned_to, "new", T0)[0])
    return state


@pytest.mark.parametrize("outcome", ["reached", "wrong_number"])
def test_a_reached_or_wrong_number_try_closes_the_task_at_once(outcome: str) -> None:
    events = decide_outcome(open_task(), TASK, outcome, "A001", T0, "note")
    assert events == [CallbackAttemptRecorded(TASK, outcome, "A001", 1, T0, None, "note"),
                      CallbackTaskClosed(TASK, outcome, T0)]


def test_unanswered_tries_are_due_again_after_15_then_60_minutes() -> None:
    state = open_task()
    first = decide_outcome(state, TASK, "no_answer", None, T0, "busy")
    due = T0 + timedelta(minutes=15)
    assert first == [CallbackAttemptRecorded(TASK, "no_answer", None, 1, T0, due, "busy")]
    state.apply(first[0])
    later = T0 + timedelta(minutes=20)
    second = decide_outcome(state, TASK, "no_answer", "A002", later)
    due = later + timedelta(minutes=60)
    assert second == [CallbackAttemptRecorded(TASK, "no_answer", "A002", 2, later, due)]
    state.apply(second[0])
    third = decide_outcome(state, TASK, "no_answer", "A002", later)
    assert third == [CallbackAttemptRecorded(TASK, "no_answer", "A002", 3, later, None, None),
                     CallbackTaskClosed(TASK, "unreachable", later)]


def test_a_bad_outcome_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidCommand) as refused:
        decide_outcome(open_task(), TASK, "maybe", None, T0)
    assert refused.value.field == "outcome"
    assert str(refused.value) == "outcome must be one of reached, no_answer, wrong_number"


def test_outcomes_and_assignments_need_the_open_task() -> None:
    state = open_task()
    for decide in (lambda s, t: decide_outcome(s, t, "reached", None, T0),
                   lambda s, t: decide_assign(s, t, "A001", "new", T0)):
        with pytest.raises(NotFound) as missing:  # 404: never opened
            decide(state, f"{pseudonym('13912345678')}.2")
        assert str(missing.value) == f"call-back task {pseudonym('13912345678')}.2 not found"
        with pytest.raises(NotFound) as never:
            decide(CallbackState("13912345678"), TASK)
        assert str(never.value) == f"call-back task {TASK} not found"
    state.apply(decide_outcome(state, TASK, "reached", None, T0)[1])
    with pytest.raises(NotAllowed) as closed:
        decide_assign(state, TASK, "A001", "new", T0)
    assert str(closed.value) == f"call-back task {TASK} is closed"


def test_assignment_names_the_previous_agent_and_the_reason() -> None:
    state = open_task("A001")
    assert decide_assign(state, TASK, "A002", "rebalance", T0) == [
        CallbackTaskAssigned(TASK, "A002", "A001", "rebalance", T0)]
    assert decide_assign(state, TASK, "A001", "new", T0) == []  # already theirs
    assert decide_assign(state, TASK, "A002", "x", T0, expected="A003") == []  # moved meanwhile
    assert decide_assign(state, TASK, "A002", "x", T0, expected="A001") != []


@pytest.mark.parametrize("task_id", ["", ".1", "139.", "139.x", "139", "139.1a"])
def test_a_malformed_task_id_is_refused(task_id: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        stream_of_task(task_id)
    assert refused.value.field == "task_id"
    assert str(refused.value) == f"{task_id!r} is not a call-back task id"


def test_the_stream_of_a_task_id_with_dots_in_the_caller_key() -> None:
    assert stream_of_task("a.b.3") == "callback-a.b"


def test_a_first_and_a_repeat_miss_as_exact_events() -> None:
    assert decide_missed(CallbackState("13912345678"), "c1", "q", T0) == [
        CallbackTaskOpened(TASK, "13912345678", "c1", "q", T0)]
    later = T0 + timedelta(minutes=5)
    assert decide_missed(open_task(), "c2", "q2", later) == [CallbackMissedAgain(TASK, "c2", "q2", later)]


def test_a_contact_at_the_instant_of_the_last_miss_closes_the_task_one_before_does_not() -> None:
    """Times come from the CTI in whole seconds: a contact in the same second as the miss is after it."""
    assert decide_got_through(open_task(), T0, "sms") == [CallbackTaskClosed(TASK, "got_through", T0, "sms")]
    assert decide_got_through(open_task(), T0 - timedelta(seconds=1), "sms") == []


def test_after_a_closed_task_a_contact_is_recorded_once_and_misses_until_then_open_nothing() -> None:
    state = open_task()
    for evt in decide_outcome(state, TASK, "reached", "A001", T0):
        state.apply(evt)
    contact = T0 + timedelta(minutes=10)
    assert decide_got_through(state, contact, "wechat") == [CallerGotThrough(contact, "wechat")]
    state.apply(CallerGotThrough(contact, "wechat"))
    assert decide_got_through(state, contact, "wechat") == []  # the same contact again
    assert decide_missed(state, "c9", None, contact) == []  # a miss in the second the caller got through
    after = contact + timedelta(seconds=1)
    assert decide_missed(state, "c9", None, after) == [
        CallbackTaskOpened(f"{pseudonym('13912345678')}.2", "13912345678", "c9", None, after)]


def test_folding_on_leaves_the_state_it_started_from_as_it_was() -> None:
    """A kept state (`KnownStates`) is the start of every later load: folding must copy it."""
    first = fold("13912345678", [_recorded(CallbackTaskOpened(TASK, "13912345678", "c1", "q", T0), 0)])
    later = fold_onto(first, [_recorded(CallbackMissedAgain(TASK, "c2", "q", T0), 1)])
    assert (first.call_ids, first.attempts, first.version) == ({"c1"}, 1, 0)
    assert (later.call_ids, later.attempts, later.version) == ({"c1", "c2"}, 2, 1)


def _recorded(evt: Event, version: int) -> RecordedEvent:
    new = to_new_event(evt)
    return RecordedEvent(version, f"callback-{pseudonym('13912345678')}", version, new.type,
                         new.schema_version, new.data, new.metadata, T0)


def test_a_miss_from_before_the_contact_that_closed_the_task_opens_nothing() -> None:
    """The two policies run apart: a miss may be processed after the contact that came later."""
    state = open_task()
    contact = T0 + timedelta(minutes=5)
    for evt in decide_got_through(state, contact, "sms"):
        state.apply(evt)
    assert decide_missed(state, "c7", None, contact - timedelta(minutes=1)) == []
    after = contact + timedelta(seconds=1)
    assert decide_missed(state, "c8", None, after) == [
        CallbackTaskOpened(f"{pseudonym('13912345678')}.2", "13912345678", "c8", None, after)]


def test_a_late_processed_earlier_miss_keeps_the_latest_miss_as_the_one_to_get_past() -> None:
    state = open_task()
    for evt in decide_missed(state, "c2", "q", T0 - timedelta(minutes=10)):
        state.apply(evt)
    assert decide_got_through(state, T0 - timedelta(minutes=5), "sms") == []  # before the miss at T0
