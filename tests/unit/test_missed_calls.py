"""Call-back tasks: the aggregate, the policy on the in-memory store, fair assignment."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.cti import parse_event
from dispatch.cases.events import CallerInfo, CallerPhoneGiven
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import FakeClock
from dispatch.core.errors import InvalidCommand, NotAllowed
from dispatch.core.messages import to_new_event
from dispatch.core.personal import pseudonym
from dispatch.intake.calls import RecordCall
from dispatch.intake.contact import InboundContact
from dispatch.intake.sms import CaseMessageReceived, callable_number
from dispatch.missed_calls.policy import (
    AssignCallbackTask,
    CloseOnContact,
    GotThroughPolicy,
    KnownStates,
    MissedCallPolicy,
    Move,
    RecordCallbackOutcome,
    RecordMissedCall,
    choose_agent,
    known_states,
    plan_assignments,
)
from dispatch.missed_calls.task import (
    CallbackState,
    CallbackTaskOpened,
    CallerGotThrough,
    callback_stream,
    decide_got_through,
    decide_missed,
    decide_outcome,
    fold,
    stream_of_task,
)
from eventstore import NewEvent, RecordedEvent
from eventstore.memory import MemoryEventStore
from eventstore.partitions import PARTITIONS, partition_of
from eventstore.subscriptions import Keyed, ReactorRunner
from gateway.bootstrap import DOMAIN

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
P = pseudonym("13912345678")
"""The number's pseudonym: its tasks' ids and stream name."""


def test_plus_numbers_map_to_a_valid_stream() -> None:
    stream = callback_stream("+14155550100")
    assert stream.startswith("callback-") and "4155550100" not in stream  # a pseudonym, not the number
    assert stream_of_task(f"{stream.removeprefix('callback-')}.2") == stream
    with pytest.raises(InvalidCommand):
        stream_of_task("nonsense")


def test_repeat_misses_raise_attempts_once_per_call() -> None:
    state = CallbackState("13912345678")
    opened = decide_missed(state, "c1", "q", T0)
    state.apply(opened[0])
    assert state.task_id == f"{P}.1" and state.attempts == 1
    again = decide_missed(state, "c2", "q", T0 + timedelta(minutes=1))
    state.apply(again[0])
    assert state.attempts == 2
    assert decide_missed(state, "c2", "q", T0) == []


def test_contact_after_last_miss_closes_but_earlier_does_not() -> None:
    state = CallbackState("13912345678")
    state.apply(decide_missed(state, "c1", "q", T0)[0])
    assert decide_got_through(state, T0 - timedelta(seconds=1), "phone") == []
    closed = decide_got_through(state, T0 + timedelta(seconds=1), "sms")
    assert closed and closed[0].reason == "got_through"  # type: ignore[attr-defined]


def test_three_unanswered_tries_close_as_unreachable() -> None:
    state = CallbackState("13912345678")
    state.apply(decide_missed(state, "c1", "q", T0)[0])
    first = decide_outcome(state, f"{P}.1", "no_answer", "A001", T0)
    assert first[0].due_at == T0 + timedelta(minutes=15)  # type: ignore[attr-defined]
    state.apply(first[0])
    second = decide_outcome(state, f"{P}.1", "no_answer", "A001", T0)
    assert second[0].due_at == T0 + timedelta(minutes=60)  # type: ignore[attr-defined]
    state.apply(second[0])
    third = decide_outcome(state, f"{P}.1", "no_answer", "A001", T0)
    assert [type(e).__name__ for e in third] == ["CallbackAttemptRecorded", "CallbackTaskClosed"]
    assert third[1].reason == "unreachable"  # type: ignore[attr-defined]
    for evt in third:
        state.apply(evt)
    with pytest.raises(NotAllowed):
        decide_outcome(state, f"{P}.1", "reached", "A001", T0)
    with pytest.raises(InvalidCommand):
        decide_outcome(CallbackState("x", tasks=1, task_id="x.1", open=True), "x.1", "maybe", None, T0)


def test_choose_agent_is_round_robin_among_least_loaded() -> None:
    loads = {"A": 1, "B": 0, "C": 0}
    assert choose_agent(["A", "B", "C"], loads, None) == "B"
    assert choose_agent(["A", "B", "C"], loads, "B") == "C"
    assert choose_agent(["A", "B", "C"], loads, "C") == "B"


def test_moves_name_the_agent_before_and_why_and_the_plan_answers_its_cursor() -> None:
    rows = [("t1", None, False), ("t2", "X", False), *((f"a{i}", "A", False) for i in range(4))]
    moves, cursor = plan_assignments(rows, {"A", "B"})
    assert moves == [Move("t1", "B", None, "new"), Move("t2", "B", "X", "agent_offline"),
                     Move("a3", "B", "A", "rebalance")]
    assert cursor == "B"  # the last agent a task was dealt to (not moved to)


def test_a_plan_moves_nothing_when_loads_differ_by_one_at_most() -> None:
    """Every move disturbs an agent's list: balanced enough is left alone."""
    rows = [("a1", "A", False), ("a2", "A", False), ("b1", "B", False)]
    assert plan_assignments(rows, {"A", "B"}) == ([], None)


def test_dealing_goes_round_the_agents_from_the_cursor_of_the_plan_before() -> None:
    moves, cursor = plan_assignments([("t1", None, False), ("t2", None, False)], {"A", "B", "C", "D"}, "A")
    assert [(m.task_id, m.agent_id) for m in moves] == [("t1", "B"), ("t2", "C")]
    assert cursor == "C"


tasks_strategy = st.lists(
    st.tuples(st.sampled_from(["A", "B", "C", "D", "E", None]), st.booleans()), max_size=60
)


@settings(max_examples=200, deadline=None)
@given(tasks=tasks_strategy, present=st.sets(st.sampled_from(["A", "B", "C", "D", "F"]), min_size=1))
def test_plan_is_fair_and_keeps_every_task(tasks: list[tuple[str | None, bool]], present: set[str]) -> None:
    rows = [(f"t{i}", agent, False) for i, (agent, _) in enumerate(tasks)]
    moves, _ = plan_assignments(rows, present)
    owner = {task_id: agent for task_id, agent, _ in rows}
    for move in moves:
        assert owner[move.task_id] == move.previous
        owner[move.task_id] = move.agent_id
    assert set(owner.values()) <= present  # nobody absent keeps a task, none is lost
    loads = Counter(owner.values())
    counts = [loads.get(a, 0) for a in present]
    assert max(counts) - min(counts) <= 1
    assert len({m.task_id for m in moves}) == len(moves)


@settings(max_examples=100, deadline=None)
@given(tasks=tasks_strategy, present=st.sets(st.sampled_from(["A", "B", "C"]), min_size=1))
def test_pinned_tasks_stay_put(tasks: list[tuple[str | None, bool]], present: set[str]) -> None:
    rows = [(f"t{i}", agent, pinned) for i, (agent, pinned) in enumerate(tasks)]
    moves, _ = plan_assignments(rows, present)
    pinned_here = {t for t, agent, pinned in rows if pinned and agent in present}
    assert not pinned_here & {m.task_id for m in moves}


def test_no_present_agent_means_no_moves() -> None:
    assert plan_assignments([("t1", None, False)], set()) == ([], None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["abandoned", "answered"])),
                min_size=1, max_size=40))
async def test_policy_keeps_one_task_per_caller(calls: list[tuple[int, str]]) -> None:
    store = MemoryEventStore()
    clock = FakeClock(T0)
    bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": clock, "pool": None})
    runner = ReactorRunner(store, MissedCallPolicy(bus.handle))
    waiting: set[int] = set()
    for i, (caller, kind) in enumerate(calls):
        body = {"event_id": f"e{i}", "type": kind, "call_id": f"c{i}", "caller": f"1391234{caller:04d}",
                "queue": "95598", "at": (T0 + timedelta(seconds=i)).isoformat()}
        await bus.handle(parse_event(body, T0))
        await bus.handle(parse_event(body, T0))  # a repeated delivery changes nothing
        (waiting.add if kind == "abandoned" else waiting.discard)(caller)
    await runner.run_until_caught_up()
    await runner.run_until_caught_up()
    for caller in range(10):
        state = fold("x", await store.read_stream(callback_stream(f"1391234{caller:04d}")))
        assert state.open == (caller in waiting)
        if state.open:
            missed = [c for c, k in calls if c == caller]
            assert state.attempts <= len(missed)


async def test_assign_and_outcome_handlers() -> None:
    store = MemoryEventStore()
    bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": FakeClock(T0), "pool": None})
    body = {"event_id": "e1", "type": "abandoned", "call_id": "c1", "caller": "+8613912345678",
            "queue": "q", "at": T0.isoformat()}
    await bus.handle(parse_event(body, T0))
    assert isinstance(parse_event(body, T0), RecordCall)
    await ReactorRunner(store, MissedCallPolicy(bus.handle)).run_until_caught_up()
    assert await bus.handle(AssignCallbackTask(f"{P}.1", "A001", "new", expected=None))
    assert await bus.handle(AssignCallbackTask(f"{P}.1", "A002", "new", expected=None)) == []
    written = await bus.handle(RecordCallbackOutcome(f"{P}.1", "reached", "A001"))
    assert [type(e).__name__ for e in written] == ["CallbackAttemptRecorded", "CallbackTaskClosed"]


def _contact(phone: str, at: datetime) -> InboundContact:
    return InboundContact(channel="sms", kind="sms", idempotency_key=f"t:{at.isoformat()}",
                          caller=CallerInfo(phone=phone), occurred_at=at, received_at=at, text="hi")


@settings(max_examples=80, deadline=None)
@given(data=st.data(), kinds=st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1,
                                      max_size=12))
async def test_call_and_contact_policies_agree_in_any_interleaving(
    data: st.DataObject, kinds: list[tuple[int, bool]]
) -> None:
    """The two policies run apart; whoever goes first, a task stays open iff a miss is the newest."""
    store = MemoryEventStore()
    bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": FakeClock(T0), "pool": None})
    order = data.draw(st.permutations(range(len(kinds))))  # log order differs from time order
    for i in order:
        caller, missed = kinds[i]
        phone, at = f"1391234{caller:04d}", T0 + timedelta(seconds=i)
        if missed:
            body = {"event_id": f"e{i}", "type": "abandoned", "call_id": f"c{i}", "caller": phone,
                    "queue": "q", "at": at.isoformat()}
            await bus.handle(parse_event(body, T0))
        else:
            evt = CaseMessageReceived(f"C{i}", "sms", phone, "hi", _contact(phone, at))
            await store.append(f"case-C{i}", [to_new_event(evt)], -1)
    contacts_batch = data.draw(st.sampled_from([1, 50]))  # 50: callers' contacts concurrently
    runners = [ReactorRunner(store, MissedCallPolicy(bus.handle), batch_size=1),
               ReactorRunner(store, GotThroughPolicy(bus.handle), batch_size=contacts_batch)]
    for pick in data.draw(st.lists(st.integers(0, 1), max_size=2 * len(kinds))):
        await runners[pick].step()
    for runner in runners:
        await runner.run_until_caught_up()
    for caller in range(3):
        misses = [i for i, (c, m) in enumerate(kinds) if c == caller and m]
        contacts = [i for i, (c, m) in enumerate(kinds) if c == caller and not m]
        waiting = bool(misses) and max(misses) > max(contacts, default=-1)
        state = fold("x", await store.read_stream(callback_stream(f"1391234{caller:04d}")))
        assert state.open == waiting


class _ReadsSpy(MemoryEventStore):
    """Notes each read of a stream (`after_version`, events returned) and yields meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, int, int]] = []

    async def read_stream(
        self, stream: str, *, after_version: int = -1, limit: int | None = None
    ) -> list[RecordedEvent]:
        await asyncio.sleep(0)  # lets concurrent commands interleave here
        records = await super().read_stream(stream, after_version=after_version, limit=limit)
        self.reads.append((stream, after_version, len(records)))
        return records


async def test_a_callers_stream_is_read_whole_once_then_only_what_is_new() -> None:
    """Each contact adds an event to the caller's stream; a contact must not read them all again."""
    store = _ReadsSpy()
    bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": FakeClock(T0), "pool": None})
    phone = "13912345678"
    for i in range(40):
        at = T0 + timedelta(minutes=i)
        if i % 10 == 3:
            await bus.handle(RecordMissedCall(phone, f"c{i}", "q", at, f"miss:{i}"))
        else:
            await bus.handle(CloseOnContact(phone, at, "sms", f"contact:{i}"))
    stream = callback_stream(phone)
    records = await store.read_stream(stream)
    assert len(records) == 40  # every contact and miss left its event
    reads = [(after, count) for s, after, count in store.reads if s == stream][:-1]
    # Each command reads from where the one before it had read: just that one's own event.
    assert reads == [(-1, 0)] + [(after, 1) for after in range(-1, 38)]
    state = await known_states(store).load(store, stream, phone)
    assert state == fold(phone, records)
    assert state.tasks == 4 and not state.open and state.reached_at == T0 + timedelta(minutes=39)


async def test_what_others_wrote_since_is_read_and_folded() -> None:
    store = _ReadsSpy()
    bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": FakeClock(T0), "pool": None})
    phone, stream = "13912345678", callback_stream("13912345678")
    await bus.handle(RecordMissedCall(phone, "c1", "q", T0, "miss:1"))
    # Another process (a second worker, the API) closes the task meanwhile.
    elsewhere = fold(phone, await store.read_stream(stream))
    [closed] = decide_got_through(elsewhere, T0 + timedelta(minutes=1), "web")
    await store.append(stream, [to_new_event(closed)], elsewhere.version)
    await bus.handle(RecordMissedCall(phone, "c2", "q", T0 + timedelta(minutes=2), "miss:2"))
    state = fold(phone, await store.read_stream(stream))
    assert state.open and state.task_id == f"{pseudonym(phone)}.2"  # a new task, not the closed one raised
    assert state.attempts == 1


async def test_concurrent_commands_on_one_caller_agree_with_a_fresh_fold() -> None:
    store = _ReadsSpy()
    bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": FakeClock(T0), "pool": None})
    phone, stream = "13912345678", callback_stream("13912345678")
    await bus.handle(CloseOnContact(phone, T0 - timedelta(seconds=1), "sms", "contact:first"))
    # Every command below starts from the same kept state and reads what the others wrote.
    await asyncio.gather(*(
        bus.handle(RecordMissedCall(phone, f"c{i}", "q", T0 + timedelta(seconds=i), f"miss:{i}"))
        if i % 3 else bus.handle(CloseOnContact(phone, T0 + timedelta(seconds=i), "sms", f"contact:{i}"))
        for i in range(30)))
    records = await store.read_stream(stream)
    assert await known_states(store).load(store, stream, phone) == fold(phone, records)
    assert len({r.data.get("call_id") for r in records if r.type == "CallbackMissedAgain"}) == sum(
        1 for r in records if r.type == "CallbackMissedAgain")  # no miss counted twice


async def test_states_are_kept_per_store_and_bounded() -> None:
    """Two logs with the same caller (two tenants, two tests) never share a state."""
    busy, quiet = MemoryEventStore(), MemoryEventStore()
    phone = "13912345678"
    for store in (busy, quiet):
        bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": FakeClock(T0), "pool": None})
        if store is busy:
            await bus.handle(RecordMissedCall(phone, "c1", "q", T0, "miss:1"))
        await bus.handle(CloseOnContact(phone, T0 + timedelta(minutes=1), "sms", "contact:1"))
    assert [r.type for r in await busy.read_stream(callback_stream(phone))] == [
        "CallbackTaskOpened", "CallbackTaskClosed"]
    assert [r.type for r in await quiet.read_stream(callback_stream(phone))] == ["CallerGotThrough"]

    spy = _ReadsSpy()
    for n in range(3):
        await spy.append(callback_stream(f"1391234000{n}"), [to_new_event(CallerGotThrough(T0, "sms"))], -1)
    kept = KnownStates(size=2)
    for n in (0, 1, 2, 0):
        await kept.load(spy, callback_stream(f"1391234000{n}"), f"1391234000{n}")
    # Stream 0 was the least recently used when stream 2 came: it was read whole again.
    first = callback_stream("13912340000")
    assert [(after, count) for s, after, count in spy.reads if s == first] == [(-1, 1), (-1, 1)]


def test_a_contact_before_a_late_miss_keeps_the_task_from_opening() -> None:
    state = CallbackState("13912345678")
    [reached] = decide_got_through(state, T0, "sms")
    assert isinstance(reached, CallerGotThrough)
    state.apply(reached)
    assert decide_missed(state, "c1", "q", T0 - timedelta(seconds=1)) == []
    assert decide_got_through(state, T0 - timedelta(seconds=5), "web") == []  # nothing newer to record
    assert isinstance(decide_missed(state, "c2", "q", T0 + timedelta(seconds=1))[0], CallbackTaskOpened)


async def test_contacts_are_keyed_by_the_callers_number() -> None:
    store = MemoryEventStore()
    clock = FakeClock(T0)
    await register_case(
        RegisterCase(category="power_fault", channel="phone", description="停电",
                     caller=CallerInfo(phone="139 1234 0001")), store=store, clock=clock)
    message = CaseMessageReceived("C9", "sms", "13912340001", "hi", _contact("13912340001", T0))
    await store.append("case-C9", [to_new_event(message)], -1)
    await store.append("case-C9", [NewEvent("CaseNoted", {"case_id": "C9"})], 0)
    policy = GotThroughPolicy(MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": clock}).handle)
    assert isinstance(policy, Keyed)

    keys = [policy.key(e) for _, e in await store.read_all(await store.load_checkpoint("x"))]
    assert keys == [callable_number("13912340001")] * 2 + ["case-C9"]


async def test_a_phone_number_given_on_wechat_closes_that_callers_task() -> None:
    """A follower who missed us on the phone and then gives the number on WeChat got through."""
    store = MemoryEventStore()
    bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": FakeClock(T0), "pool": None})
    phone = "13912340002"
    await bus.handle(parse_event({"event_id": "e1", "type": "abandoned", "call_id": "c1", "caller": phone,
                                  "queue": "q", "at": T0.isoformat()}, T0))
    given = CallerPhoneGiven("C7", phone, "wechat", T0 + timedelta(minutes=5))
    await store.append("case-C7", [to_new_event(given)], -1)
    for policy in (MissedCallPolicy(bus.handle), GotThroughPolicy(bus.handle)):
        await ReactorRunner(store, policy).run_until_caught_up()
    state = fold("x", await store.read_stream(callback_stream(phone)))
    assert not state.open and state.attempts == 1


def test_call_policy_reads_calls_only() -> None:
    assert MissedCallPolicy.categories == frozenset({"call"})
    assert GotThroughPolicy.categories == frozenset({"case"})


async def test_calls_are_keyed_by_the_callers_number_so_one_callers_calls_share_a_partition() -> None:
    """Two calls of one caller are two streams: keyed by caller, they stay in log order."""
    store = MemoryEventStore()
    bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": FakeClock(T0), "pool": None})
    for n, caller in enumerate(("13912340003", "+86 139 1234 0003", "13912340004")):
        await bus.handle(parse_event({"event_id": f"e{n}", "type": "abandoned", "call_id": f"c{n}",
                                      "caller": caller, "queue": "q", "at": T0.isoformat()}, T0))
    await store.append("call-c9", [NewEvent("CallNoted", {"call_id": "c9"})], -1)
    policy = MissedCallPolicy(bus.handle)
    assert isinstance(policy, Keyed)
    events = [e for _, e in await store.read_all(await store.load_checkpoint("x"))]
    keys = [policy.key(e) for e in events]
    assert keys[0] == keys[1] == callable_number("13912340003") != keys[2]
    assert keys[3] == "call-c9" and len({e.stream for e in events[:2]}) == 2
    assert partition_of(keys[0], PARTITIONS) == partition_of(keys[1], PARTITIONS)
