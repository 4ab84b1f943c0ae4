"""Missed-call redistribution: the policy, the command handlers and fair assignment.

- `MissedCallPolicy` (a reactor over calls only) opens or raises a caller's
  call-back task on `CallAbandoned` and closes it on an answered call;
  `GotThroughPolicy` (over cases) closes it when the caller gets through on
  another channel (an SMS, a case registered with the same phone). They run
  independently; the caller's stream records contacts, so order does not matter.
- `plan_assignments` (pure) spreads open tasks round-robin over present agents,
  least-loaded first, keeping max - min <= 1 among unpinned tasks.
- `Assigner` (a worker) applies the plan; with presence unknown (Redis down)
  it does nothing, so tasks wait unassigned in PostgreSQL until presence returns.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from weakref import WeakKeyDictionary

import asyncpg
import structlog

from dispatch.cases.events import CallerPhoneGiven, CaseRegistered
from dispatch.core.bus import Handler, Send
from dispatch.core.capability import Deps
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, NotAllowed
from dispatch.core.messages import Command, Event, from_recorded, metadata, to_new_event
from dispatch.core.personal import phone_subject
from dispatch.intake.sms import CaseMessageReceived, callable_number, sender_key
from dispatch.missed_calls.read_model import open_tasks, pending_assignments
from dispatch.missed_calls.task import (
    CallbackState,
    callback_stream,
    decide_assign,
    decide_got_through,
    decide_missed,
    decide_outcome,
    fold_onto,
    stream_of_task,
)
from eventstore import EventStore, RecordedEvent, WrongExpectedVersion
from eventstore.subscriptions import Reactor

log = structlog.get_logger(__name__)

_ASSIGN_LOCK = 0x1A7A_CA11


@dataclass(frozen=True, slots=True)
class RecordMissedCall(Command):
    """A caller missed a call: open their task or count the miss on it."""

    caller: str
    call_id: str
    queue: str | None
    at: datetime
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class CloseOnContact(Command):
    """The caller got through at `at` (via a channel): their open task closes."""

    caller: str
    at: datetime
    via: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class AssignCallbackTask(Command):
    """Give a task to an agent (`expected`: only if it is still that agent's)."""

    task_id: str
    agent_id: str
    reason: str = "manual"
    expected: object = ...
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class RecordCallbackOutcome(Command):
    """An agent's call-back try: reached, no_answer or wrong_number."""

    task_id: str
    outcome: str
    agent_id: str | None = None
    note: str | None = None
    actor: str | None = None


Decide = Callable[[CallbackState], list[Event]]
Handle = Send


class KnownStates:
    """The newest folded state of the call-back streams used lately, for one store.

    A caller's stream grows by an event at each contact (`CallerGotThrough`), so
    folding it whole at every contact would cost more each time. Streams only
    grow, so a known state moved on by the events after its version is the
    stream's state: each load reads just those. At most `size` streams are kept
    (the least recently used go). A kept state is never changed: each load folds
    a copy, so loads of one stream at the same time cannot disturb each other.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._states: OrderedDict[str, CallbackState] = OrderedDict()

    async def load(self, store: EventStore, stream: str, caller: str) -> CallbackState:
        """The stream's state now: the kept one moved on by the events written since."""
        known = self._states.get(stream) or CallbackState(caller)
        state = fold_onto(known, await store.read_stream(stream, after_version=known.version))
        newest = self._states.get(stream)
        if newest is None or newest.version <= state.version:
            self._states[stream] = state
        self._states.move_to_end(stream)
        while len(self._states) > self._size:
            self._states.popitem(last=False)
        return state


_KNOWN: WeakKeyDictionary[EventStore, KnownStates] = WeakKeyDictionary()


def known_states(store: EventStore) -> KnownStates:
    """The call-back states kept for `store` (one set per store: its log is theirs)."""
    known = _KNOWN.get(store)
    if known is None:
        known = _KNOWN[store] = KnownStates()
    return known


async def _decide_and_append(
    store: EventStore, stream: str, caller: str, decide: Decide, *, key: str | None, actor: str
) -> list[Event]:
    """Load, decide, append with the loaded version; retry when someone wrote first."""
    for _ in range(10):
        state = await known_states(store).load(store, stream, caller)
        events = decide(state)
        if not events:
            return []
        meta = metadata(actor=actor, correlation_id=stream)
        try:
            result = await store.append(
                stream, [to_new_event(e, meta, subject=phone_subject(state.caller)) for e in events],
                state.version, idempotency_key=key
            )
        except WrongExpectedVersion:
            continue
        return [] if result.duplicate else events
    raise InvalidCommand(f"{stream} changed concurrently, try again")


async def record_missed_call(cmd: RecordMissedCall, *, store: EventStore) -> list[Event]:
    """Open or raise the caller's task."""
    return await _decide_and_append(
        store, callback_stream(cmd.caller), cmd.caller,
        lambda s: decide_missed(s, cmd.call_id, cmd.queue, cmd.at),
        key=cmd.idempotency_key, actor="policy:missed-calls",
    )


async def close_on_contact(cmd: CloseOnContact, *, store: EventStore) -> list[Event]:
    """Close the caller's open task if they got through after their last miss."""
    return await _decide_and_append(
        store, callback_stream(cmd.caller), cmd.caller,
        lambda s: decide_got_through(s, cmd.at, cmd.via),
        key=cmd.idempotency_key, actor="policy:missed-calls",
    )


def _task_caller(task_id: str) -> tuple[str, str]:
    """The stream of a task and, until its events are folded, no caller (the number is in them)."""
    return stream_of_task(task_id), ""


async def assign_task(cmd: AssignCallbackTask, *, store: EventStore, clock: Clock) -> list[Event]:
    """Assign (or reassign) a task; answers the events written (none if nothing changed)."""
    stream, caller = _task_caller(cmd.task_id)
    return await _decide_and_append(
        store, stream, caller,
        lambda s: decide_assign(s, cmd.task_id, cmd.agent_id, cmd.reason, clock.now(), cmd.expected),
        key=None, actor=cmd.actor or "policy:missed-calls",
    )


async def record_outcome(cmd: RecordCallbackOutcome, *, store: EventStore, clock: Clock) -> list[Event]:
    """Record a call-back try and close the task when it is settled."""
    stream, caller = _task_caller(cmd.task_id)
    return await _decide_and_append(
        store, stream, caller,
        lambda s: decide_outcome(s, cmd.task_id, cmd.outcome, cmd.agent_id, clock.now(), cmd.note),
        key=None, actor=cmd.actor or "api",
    )


HANDLERS: dict[type[Command], Handler] = {
    RecordMissedCall: record_missed_call,
    CloseOnContact: close_on_contact,
    AssignCallbackTask: assign_task,
    RecordCallbackOutcome: record_outcome,
}


def _answered_call(event: RecordedEvent) -> tuple[str | None, datetime | None]:
    """(phone, when) of a call event that shows the caller got through, else (None, None)."""
    if event.type in ("CallAnswered", "CallEnded") and event.data.get("answered"):
        contact = event.data["contact"]
        return contact["caller"]["phone"], datetime.fromisoformat(contact["occurred_at"])
    return None, None


def _case_contact(event: RecordedEvent) -> tuple[str | None, datetime | None, str]:
    """(phone, when, channel) of a case event that shows the caller got through."""
    if event.type not in ("CaseRegistered", "CaseMessageReceived", "CallerPhoneGiven"):
        return None, None, ""
    evt = from_recorded(event)
    if isinstance(evt, CaseRegistered):
        return evt.caller.phone, evt.accepted_at, evt.channel
    if isinstance(evt, CallerPhoneGiven):  # a WeChat follower's number, given later
        return evt.phone, evt.at, evt.channel
    if isinstance(evt, CaseMessageReceived):
        return evt.phone, evt.contact.occurred_at, evt.channel
    return None, None, ""


async def _close_on_contact(handle: Handle, key: str, raw_phone: str | None, at: datetime | None,
                            via: str) -> None:
    phone = callable_number(raw_phone)
    if phone is not None and at is not None:
        await handle(CloseOnContact(phone, at, via, key))


class MissedCallPolicy:
    """Reacts to call events only: a miss opens or raises a task, an answered call closes it.

    It reads nothing but the `call` streams, so case traffic never delays a
    call-back task; contacts on other channels are `GotThroughPolicy`'s.
    Keyed by caller (`eventstore.subscriptions.Keyed`): one caller's calls, on
    streams of their own, are handled in log order (in one partition), so a
    miss and the answered call after it are never decided the other way round.
    """

    name = "missed-calls"
    categories: frozenset[str] | None = frozenset({"call"})
    types = frozenset({"CallAbandoned", "CallAnswered", "CallEnded"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    def key(self, event: RecordedEvent) -> str:
        """The caller's number as `RecordMissedCall` names their task stream; else the call."""
        return sender_key(event)

    async def react(self, event: RecordedEvent) -> None:
        """Send the command this event calls for (idempotent on the event's position)."""
        key = f"{self.name}:{event.position}"
        if event.type != "CallAbandoned":
            await _close_on_contact(self._handle, key, *_answered_call(event), "phone")
            return
        contact = event.data["contact"]
        phone = callable_number(contact["caller"]["phone"])
        if phone is None:
            log.info("missed_call_without_number", call_id=event.data["call_id"])
            return
        missed_at = datetime.fromisoformat(contact["occurred_at"])
        await self._handle(RecordMissedCall(phone, event.data["call_id"], event.data.get("queue"),
                                            missed_at, key))


class GotThroughPolicy:
    """Closes a caller's task when they reach us on another channel (a case or a message).

    Runs apart from `MissedCallPolicy`; the `CallerGotThrough` record on the
    caller's stream keeps the outcome independent of which of the two runs first.
    Keyed by caller (`eventstore.subscriptions.Keyed`): different callers'
    contacts are looked at together, one caller's in log order.
    """

    name = "missed-calls-contacts"
    categories: frozenset[str] | None = frozenset({"case"})
    types = frozenset({"CaseRegistered", "CaseMessageReceived", "CallerPhoneGiven"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    def key(self, event: RecordedEvent) -> str:
        """The caller's number as `CloseOnContact` names their task stream; else the case."""
        data = event.data
        caller = data.get("caller")
        raw = data.get("phone") or (caller.get("phone") if isinstance(caller, dict) else None)
        return callable_number(raw if isinstance(raw, str) else None) or event.stream

    async def react(self, event: RecordedEvent) -> None:
        """Send `CloseOnContact` for a contact event (idempotent on the event's position)."""
        await _close_on_contact(self._handle, f"{self.name}:{event.position}", *_case_contact(event))


def reactors(deps: Deps) -> list[Reactor]:
    """The missed-call policies."""
    return [MissedCallPolicy(deps.bus.handle), GotThroughPolicy(deps.bus.handle)]


@dataclass(frozen=True, slots=True)
class Move:
    """One assignment decision: the task goes from `previous` to `agent_id`."""

    task_id: str
    agent_id: str
    previous: str | None
    reason: str


def choose_agent(present: Sequence[str], loads: dict[str, int], after: str | None) -> str:
    """The least-loaded present agent, round-robin (next id after `after`) among equals.

    `loads` names every present agent (0 when it has no task)."""
    low = min(loads[a] for a in present)
    ring = sorted(a for a in present if loads[a] == low)
    return next((a for a in ring if after is None or a > after), ring[0])


@dataclass(slots=True)
class _Board:
    """A plan being made: each present agent's load, its unpinned tasks from before, the moves.

    A task moves at most once, so a move needs no merging with an earlier one and only
    tasks from before the plan are `movable`: dealing gives to the least loaded and
    rebalancing to the idlest, so an agent that received a task is never the busiest by
    more than one afterwards, and never gives one away.
    """

    loads: dict[str, int]
    movable: dict[str, list[str]] = field(default_factory=dict)
    moves: dict[str, Move] = field(default_factory=dict)

    def give(self, task_id: str, agent: str, previous: str | None, reason: str) -> None:
        self.loads[agent] += 1
        self.moves[task_id] = Move(task_id, agent, previous, reason)

    def rebalance(self) -> None:
        while True:
            high = max(self.loads, key=lambda a: (self.loads[a], a))
            low = min(self.loads, key=lambda a: (self.loads[a], a))
            if self.loads[high] - self.loads[low] <= 1 or not self.movable.get(high):
                return
            task_id = self.movable[high].pop()
            self.loads[high] -= 1
            self.give(task_id, low, high, "rebalance")


def plan_assignments(
    tasks: Sequence[tuple[str, str | None, bool]], present: Collection[str], after: str | None = None
) -> tuple[list[Move], str | None]:
    """Assign open tasks `(task_id, assigned_to, pinned)` (oldest first) over present agents.

    Tasks of absent agents and unassigned ones are dealt out least-loaded first,
    round-robin among equals; then unpinned tasks move from the busiest agent to
    the idlest until max - min <= 1. Answers the moves and the new round-robin cursor.
    """
    agents = sorted(set(present))
    if not agents:
        return [], after
    board = _Board({a: 0 for a in agents})
    waiting: list[tuple[str, str | None]] = []
    for task_id, agent, pinned in tasks:
        if agent in board.loads:
            board.loads[agent] += 1
            if not pinned:
                board.movable.setdefault(agent, []).append(task_id)
        else:
            waiting.append((task_id, agent))
    for task_id, previous in waiting:
        agent = choose_agent(agents, board.loads, after)
        after = agent
        board.give(task_id, agent, previous, "agent_offline" if previous else "new")
    board.rebalance()
    return list(board.moves.values()), after


Presence = Callable[[], Awaitable[set[str] | None]]

class Assigner:
    """The worker that keeps open tasks fairly assigned to present agents.

    One cycle at a time across processes (a transaction advisory lock; a process
    finding another's cycle running skips its turn rather than queue behind it,
    which under load ran into the statement timeout); a cycle waits until the read
    model shows its own assignments before the next one.
    """

    def __init__(
        self, pool: asyncpg.Pool, handle: Send, presence: Presence,
        *, interval: float = 0.2, settle_timeout: float = 2.0,
    ) -> None:
        self._pool = pool
        self._handle = handle
        self._presence = presence
        self._interval = interval
        self._settle_timeout = settle_timeout
        self._after: str | None = None

    async def run(self) -> None:
        """Cycle forever (cancel to stop)."""
        while True:
            await self.cycle()
            await asyncio.sleep(self._interval)

    async def cycle(self) -> int:
        """Plan and apply one round of assignments; answers how many tasks moved."""
        present = await self._presence()
        if present is None:
            return 0
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _ASSIGN_LOCK):
                return 0  # another process's cycle is running: it sees these tasks too
            moves, self._after = plan_assignments(await open_tasks(conn), present, self._after)
            done = [m for m in moves if await self._apply(m)]
            await self._settle(conn, done)
        if done:
            log.info("callbacks_assigned", moved=len(done), agents=len(present))
        return len(done)

    async def _apply(self, move: Move) -> bool:
        try:
            written = await self._handle(
                AssignCallbackTask(move.task_id, move.agent_id, move.reason, move.previous)
            )
        except NotAllowed as exc:
            # Planned from the read model, which lags the log: the task closed meanwhile
            # (the caller got through, or the last try was recorded). Nothing to move.
            log.info("callback_assignment_skipped", task_id=move.task_id, reason=str(exc))
            return False
        return bool(written)

    async def _settle(self, conn: asyncpg.Connection, done: list[Move]) -> None:
        if not done:
            return
        ids, agents = [m.task_id for m in done], [m.agent_id for m in done]
        deadline = asyncio.get_running_loop().time() + self._settle_timeout
        while await pending_assignments(conn, ids, agents):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("assignments_not_yet_projected", count=len(done))
                return
            await asyncio.sleep(0.01)
