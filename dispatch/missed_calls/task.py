"""The call-back task aggregate: one stream `callback-<caller>` per caller number.

At most one task per caller is open: repeat misses raise its `attempts`; a
contact that gets through closes it; agents record outcomes (reached, no
answer, wrong number) up to `MAX_CALLBACK_ATTEMPTS` tries on a schedule.
Pure: decisions take the time as an argument and do no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from dispatch.core.errors import InvalidCommand, NotAllowed, NotFound
from dispatch.core.messages import Event, event, from_recorded
from dispatch.core.personal import PERSONAL, phone_subject, pseudonym
from eventstore import RecordedEvent

OUTCOMES: tuple[str, ...] = ("reached", "no_answer", "wrong_number")
MAX_CALLBACK_ATTEMPTS = 3
RETRY_SCHEDULE: tuple[timedelta, ...] = (timedelta(minutes=15), timedelta(minutes=60))
"""How long after the 1st and 2nd unanswered call-back the next one is due."""


def callback_stream(phone: str) -> str:
    """The stream of a caller's call-back tasks."""
    return f"callback-{pseudonym(phone)}"


def stream_of_task(task_id: str) -> str:
    """The stream a task id belongs to (`<pseudonym of the number>.<n>`)."""
    key, sep, seq = task_id.rpartition(".")
    if not sep or not key or not seq.isdigit():
        raise InvalidCommand(f"{task_id!r} is not a call-back task id", field="task_id")
    return f"callback-{key}"


@event
@dataclass(frozen=True, slots=True)
class CallbackTaskOpened(Event):
    """A caller missed a call and has no open task: one is opened."""

    task_id: str
    caller: str = field(metadata=PERSONAL)
    call_id: str
    queue: str | None
    missed_at: datetime

    def data_subject(self) -> str | None:
        """The caller's."""
        return phone_subject(self.caller)


@event
@dataclass(frozen=True, slots=True)
class CallbackMissedAgain(Event):
    """The caller of an open task missed another call: the task's attempts rise."""

    task_id: str
    call_id: str
    queue: str | None
    missed_at: datetime


@event
@dataclass(frozen=True, slots=True)
class CallbackTaskAssigned(Event):
    """The task is now an agent's to call back."""

    task_id: str
    agent_id: str
    previous: str | None
    reason: str
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class CallbackAttemptRecorded(Event):
    """An agent tried to call back; `due_at` is when the next try is due, if any."""

    task_id: str
    outcome: str
    agent_id: str | None
    attempt: int
    at: datetime
    due_at: datetime | None = None
    note: str | None = field(default=None, metadata=PERSONAL)


@event
@dataclass(frozen=True, slots=True)
class CallbackTaskClosed(Event):
    """The task is done: reached, wrong number, unreachable, or the caller got through."""

    task_id: str
    reason: str
    at: datetime
    via: str | None = None


@event
@dataclass(frozen=True, slots=True)
class CallerGotThrough(Event):
    """The caller reached us at `at` while no task of theirs was waiting for it.

    Kept so that a miss from before `at` that is processed later opens no task:
    the policies for calls and for other contacts run independently.
    """

    at: datetime
    via: str


@dataclass(slots=True)
class CallbackState:
    """A caller's call-back history folded from its stream; `task_id` is the newest task.

    `reached_at`: when the caller last got through. The decisions record only later
    contacts (a task's closing contact is after its misses, which are after the one before).
    """

    caller: str
    version: int = -1
    tasks: int = 0
    task_id: str | None = None
    open: bool = False
    attempts: int = 0
    callback_attempts: int = 0
    assigned_to: str | None = None
    first_missed_at: datetime | None = None
    last_missed_at: datetime | None = None
    reached_at: datetime | None = None
    call_ids: set[str] = field(default_factory=set)

    def apply(self, evt: Event) -> None:
        """Fold one event."""
        if isinstance(evt, CallbackTaskOpened):
            self.caller = evt.caller  # a task id names the stream, not the number
            self.tasks += 1
            self.task_id, self.open, self.attempts, self.callback_attempts = evt.task_id, True, 1, 0
            self.assigned_to = None
            self.first_missed_at = self.last_missed_at = evt.missed_at
            self.call_ids = {evt.call_id}
        elif isinstance(evt, CallbackMissedAgain):
            self.attempts += 1
            self.last_missed_at = max(evt.missed_at, self.last_missed_at or evt.missed_at)
            self.call_ids.add(evt.call_id)
        elif isinstance(evt, CallbackTaskAssigned):
            self.assigned_to = evt.agent_id
        elif isinstance(evt, CallbackAttemptRecorded):
            self.callback_attempts = evt.attempt
        elif isinstance(evt, CallbackTaskClosed):
            self.open = False
            if evt.reason == "got_through":
                self.reached_at = evt.at
        elif isinstance(evt, CallerGotThrough):
            self.reached_at = evt.at


def fold(caller: str, records: list[RecordedEvent]) -> CallbackState:
    """The state of a caller's call-back stream."""
    return fold_onto(CallbackState(caller), records)


def fold_onto(state: CallbackState, records: list[RecordedEvent]) -> CallbackState:
    """`state` moved on by the stream's next `records`, as a new state; `state` is left as it was."""
    state = replace(state, call_ids=set(state.call_ids))
    for record in records:
        evt = from_recorded(record)
        if evt is not None:
            state.apply(evt)
        state.version = record.version
    return state


def decide_missed(state: CallbackState, call_id: str, queue: str | None, at: datetime) -> list[Event]:
    """A missed call: open a task, or count it on the open one (once per call).

    A miss from before the caller last got through opens nothing: they reached us since.
    """
    if state.open and state.task_id is not None:
        if call_id in state.call_ids:
            return []
        return [CallbackMissedAgain(state.task_id, call_id, queue, at)]
    if state.reached_at is not None and at <= state.reached_at:
        return []
    task_id = f"{pseudonym(state.caller)}.{state.tasks + 1}"
    return [CallbackTaskOpened(task_id, state.caller, call_id, queue, at)]


def decide_got_through(state: CallbackState, at: datetime, via: str) -> list[Event]:
    """The caller reached us on some channel at `at`: an open task missed before closes.

    Without an open task, a contact newer than any known is recorded
    (`CallerGotThrough`), so that a miss from before it, processed later, opens no task.
    """
    if state.open and state.task_id is not None and state.last_missed_at is not None:
        if at < state.last_missed_at:
            return []
        return [CallbackTaskClosed(state.task_id, "got_through", at, via)]
    if state.reached_at is not None and at <= state.reached_at:
        return []
    return [CallerGotThrough(at, via)]


def _open_task(state: CallbackState, task_id: str) -> str:
    """The task, if it is the caller's open one; a task that never was is not found (404), an
    earlier or closed one is closed (409). Ids are the caller's stream key and a count."""
    number = task_id.rpartition(".")[2]
    if not number.isdigit() or not 1 <= int(number) <= state.tasks:
        raise NotFound(f"call-back task {task_id} not found")
    if state.task_id != task_id or not state.open:
        raise NotAllowed(f"call-back task {task_id} is closed")
    return task_id


def decide_assign(
    state: CallbackState, task_id: str, agent_id: str, reason: str, at: datetime,
    expected: object = ...,
) -> list[Event]:
    """Give the task to an agent; with `expected`, only if it is still that agent's (or nobody's)."""
    _open_task(state, task_id)
    if expected is not ... and state.assigned_to != expected:
        return []
    if state.assigned_to == agent_id:
        return []
    return [CallbackTaskAssigned(task_id, agent_id, state.assigned_to, reason, at)]


def decide_outcome(
    state: CallbackState, task_id: str, outcome: str, agent_id: str | None, at: datetime,
    note: str | None = None,
) -> list[Event]:
    """Record a call-back try; reached / wrong number / the last unanswered try close the task."""
    if outcome not in OUTCOMES:  # bad input whatever the task's state: 400, not 409
        raise InvalidCommand(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    _open_task(state, task_id)
    attempt = state.callback_attempts + 1
    if outcome == "no_answer" and attempt < MAX_CALLBACK_ATTEMPTS:
        due = at + RETRY_SCHEDULE[min(attempt, len(RETRY_SCHEDULE)) - 1]
        return [CallbackAttemptRecorded(task_id, outcome, agent_id, attempt, at, due, note)]
    reason = "unreachable" if outcome == "no_answer" else outcome
    return [
        CallbackAttemptRecorded(task_id, outcome, agent_id, attempt, at, None, note),
        CallbackTaskClosed(task_id, reason, at),
    ]
