"""The call-back task's decisions as exact events: outcomes, assignment, ids and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.core.errors import InvalidCommand, NotAllowed
from dispatch.missed_calls.task import (
    CallbackAttemptRecorded,
    CallbackState,
    CallbackTaskAssigned,
    CallbackTaskClosed,
    decide_assign,
    decide_missed,
    decide_outcome,
    stream_of_task,
)

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TASK = "13912345678.1"


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
        with pytest.raises(NotAllowed) as missing:
            decide(state, "13912345678.2")
        assert str(missing.value) == "call-back task 13912345678.2 not found"
        with pytest.raises(NotAllowed) as never:
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
