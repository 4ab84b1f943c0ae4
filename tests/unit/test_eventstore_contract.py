"""The event store contract: one suite, run against the in-memory twin and PostgreSQL.

The `postgres` runs use a real server (the `pg_store` fixture of tests/conftest.py),
once plain and once with group commit on (`eventstore/group.py`).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    Checkpoint,
    EventStore,
    EventStoreError,
    IdempotencyConflict,
    NewEvent,
    Personal,
    RecordedEvent,
    WrongExpectedVersion,
)
from eventstore.errors import InvalidIdempotencyKey, InvalidStreamName, InvalidSubject
from eventstore.memory import MemoryEventStore
from eventstore.postgres import PostgresEventStore
from eventstore.records import MAX_KEY_LENGTH
from eventstore.subscriptions import ReactorRunner
from tests.steps import CountedReactorRunner


@pytest.fixture
async def pg_group_store(pg_pool: asyncpg.Pool) -> AsyncIterator[PostgresEventStore]:
    """The PostgreSQL store with group commit on."""
    store = PostgresEventStore(pg_pool, group_commit=True)
    yield store
    await store.close()


@pytest.fixture(params=["memory", "postgres", "postgres+group"])
def store(request: pytest.FixtureRequest) -> EventStore:
    """Each store implementation in turn."""
    if request.param == "memory":
        return MemoryEventStore()
    name = "pg_group_store" if request.param == "postgres+group" else "pg_store"
    pg: EventStore = request.getfixturevalue(name)
    return pg


def ev(kind: str = "Happened", **data: Any) -> NewEvent:
    """A small test event."""
    return NewEvent(kind, dict(data), metadata={"actor": "test", "channel": "unit"})


async def test_append_numbers_versions_from_zero(store: EventStore) -> None:
    first = await store.append("case-1", [ev(n=1), ev(n=2)], NO_STREAM)
    second = await store.append("case-1", [ev(n=3)], 1)
    assert (first.first_version, first.last_version) == (0, 1)
    assert (second.first_version, second.last_version) == (2, 2)
    assert len(first.positions) == 2
    assert first.positions[0] < first.positions[1] < second.positions[0]
    assert not first.duplicate
    events = await store.read_stream("case-1")
    assert [e.version for e in events] == [0, 1, 2]
    assert [e.data["n"] for e in events] == [1, 2, 3]
    assert events[0].metadata["actor"] == "test"
    assert events[0].category == "case"
    assert await store.stream_version("case-1") == 2
    assert await store.stream_version("case-2") == NO_STREAM


async def test_read_stream_after_version_and_limit(store: EventStore) -> None:
    await store.append("case-1", [ev(n=i) for i in range(5)], NO_STREAM)
    assert [e.version for e in await store.read_stream("case-1", after_version=2)] == [3, 4]
    assert [e.version for e in await store.read_stream("case-1", limit=2)] == [0, 1]
    assert await store.read_stream("case-9") == []


async def test_read_streams_answers_each_stream_in_version_order_at_once(store: EventStore) -> None:
    await store.append("case-1", [ev(n=i) for i in range(3)], NO_STREAM)
    await store.append("case-2", [ev(n=9)], NO_STREAM)
    await store.append("case-1", [ev(n=3)], 2)
    found = await store.read_streams(["case-2", "case-1", "case-9"])
    assert {k: [(e.version, e.data["n"]) for e in v] for k, v in found.items()} == {
        "case-1": [(0, 0), (1, 1), (2, 2), (3, 3)], "case-2": [(0, 9)], "case-9": []}
    assert await store.read_streams([]) == {}


@pytest.mark.parametrize(
    ("expected", "actual_before"),
    [(NO_STREAM, 0), (0, 1), (5, 1), (STREAM_EXISTS, NO_STREAM)],
)
async def test_wrong_expected_version_carries_actual(
    store: EventStore, expected: int, actual_before: int
) -> None:
    stream = "case-x"
    if actual_before >= 0:
        await store.append(stream, [ev() for _ in range(actual_before + 1)], NO_STREAM)
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append(stream, [ev()], expected)
    assert caught.value.actual == actual_before
    assert caught.value.expected == expected
    assert isinstance(caught.value, EventStoreError)
    assert await store.stream_version(stream) == actual_before


async def test_stream_exists_and_any(store: EventStore) -> None:
    await store.append("call-1", [ev()], ANY)
    await store.append("call-1", [ev()], STREAM_EXISTS)
    await store.append("call-1", [ev()], ANY)
    assert await store.stream_version("call-1") == 2


async def test_failed_multi_event_append_writes_nothing(store: EventStore) -> None:
    await store.append("case-1", [ev()], NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append("case-1", [ev(), ev(), ev()], NO_STREAM, idempotency_key="k-fail")
    assert await store.stream_version("case-1") == 0
    assert len(await store.read_all(Checkpoint())) == 1
    assert await store.find_by_idempotency_key("k-fail") is None


async def test_idempotent_append_returns_original_and_writes_nothing(store: EventStore) -> None:
    first = await store.append("case-1", [ev(), ev()], NO_STREAM, idempotency_key="sms-SM1")
    again = await store.append("case-1", [ev(), ev()], NO_STREAM, idempotency_key="sms-SM1")
    assert again.duplicate
    assert (again.positions, again.first_version, again.last_version) == (
        first.positions, first.first_version, first.last_version
    )
    assert await store.stream_version("case-1") == 1
    found = await store.find_by_idempotency_key("sms-SM1")
    assert found is not None
    assert found.positions == first.positions
    events = await store.read_stream("case-1")
    assert {e.metadata["idempotency_key"] for e in events} == {"sms-SM1"}
    assert await store.find_by_idempotency_key("nope") is None


async def test_idempotency_key_on_another_stream_conflicts(store: EventStore) -> None:
    await store.append("case-1", [ev()], NO_STREAM, idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):
        await store.append("case-2", [ev()], NO_STREAM, idempotency_key="k1")
    assert await store.stream_version("case-2") == NO_STREAM


async def test_concurrent_duplicates_store_one_event(store: EventStore) -> None:
    results = await asyncio.gather(
        *(store.append("alarm-1", [ev(n=i)], ANY, idempotency_key="sia-42") for i in range(12))
    )
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.positions for r in results}) == 1
    assert len(await store.read_stream("alarm-1")) == 1


async def test_invalid_stream_names_are_refused(store: EventStore) -> None:
    for name in ("nodash", "-x", "Case-1", "case-"):
        with pytest.raises(InvalidStreamName):
            await store.append(name, [ev()], ANY)


async def test_idempotency_keys_up_to_the_longest_are_kept_and_longer_ones_refused(store: EventStore) -> None:
    """A channel's key built from a long client field (3,000 random characters) failed the append
    at PostgreSQL's index (a 500): every store takes keys up to `MAX_KEY_LENGTH` characters, any
    (random CJK: incompressible, 3 bytes each), and refuses a longer one before writing anything."""
    chars = random.Random(11)
    longest = "".join(chr(chars.randint(0x4E00, 0x9FFF)) for _ in range(MAX_KEY_LENGTH))
    first = await store.append("case-1", [ev()], NO_STREAM, idempotency_key=longest)
    again = await store.append("case-1", [ev()], NO_STREAM, idempotency_key=longest)
    assert (first.duplicate, again.duplicate, again.positions) == (False, True, first.positions)
    with pytest.raises(InvalidIdempotencyKey):
        await store.append("case-2", [ev()], NO_STREAM, idempotency_key=longest + "x")
    assert await store.stream_version("case-2") == NO_STREAM


async def test_data_subjects_up_to_the_longest_are_kept_and_longer_ones_refused(store: EventStore) -> None:
    """An e-mail of a few KB as a reporter's data subject failed at PostgreSQL's index on the
    subjects' keys, with every other append of its group commit: a subject up to `MAX_KEY_LENGTH`
    characters seals as any, a longer one is refused before anything is written."""
    chars = random.Random(12)
    longest = "".join(chr(chars.randint(0x4E00, 0x9FFF)) for _ in range(MAX_KEY_LENGTH))
    sealed = NewEvent("Said", {"name": "王五"}, personal=Personal(longest, (("name",),)))
    await store.append("case-1", [sealed], NO_STREAM)
    assert (await store.read_stream("case-1"))[0].data == {"name": "王五"}
    too_long = NewEvent("Said", {"name": "王五"}, personal=Personal(longest + "x", (("name",),)))
    with pytest.raises(InvalidSubject):
        await store.append("case-2", [too_long], NO_STREAM)
    assert await store.stream_version("case-2") == NO_STREAM


async def test_bad_append_arguments_are_refused_and_write_nothing(store: EventStore) -> None:
    with pytest.raises(ValueError, match="expected version -4"):
        await store.append("case-1", [ev()], -4)
    refusal = "expected version -9 is not a version (>= 0), NO_STREAM (-1), STREAM_EXISTS (-2) or ANY (-3)"
    with pytest.raises(ValueError, match=f"^{re.escape(refusal)}$"):
        await store.append("case-1", [ev(), ev()], -9)
    with pytest.raises(ValueError, match=r"^append needs at least one event$"):
        await store.append("case-1", [], ANY)
    assert await store.read_stream("case-1") == []
    assert await store.read_all(Checkpoint()) == []


async def test_read_all_in_order_with_checkpoints_and_categories(store: EventStore) -> None:
    await store.append("case-1", [ev(n=1), ev(n=2)], NO_STREAM)
    await store.append("call-1", [ev(n=3)], NO_STREAM)
    await store.append("case-2", [ev(n=4)], NO_STREAM)
    everything = await store.read_all(Checkpoint())
    assert [e.data["n"] for _, e in everything] == [1, 2, 3, 4]
    assert [c.position for c, e in everything] == [e.position for _, e in everything]
    page = await store.read_all(Checkpoint(), limit=2)
    rest = await store.read_all(page[-1][0])
    assert [e.data["n"] for _, e in page + rest] == [1, 2, 3, 4]
    cases = await store.read_all(Checkpoint(), categories=frozenset({"case"}))
    assert [e.data["n"] for _, e in cases] == [1, 2, 4]
    two = await store.read_all(Checkpoint(), categories=frozenset({"case", "call"}))
    assert len(two) == 4
    resume = await store.checkpoint_at(everything[1][1].position)
    assert [e.data["n"] for _, e in await store.read_all(resume)] == [3, 4]
    batch = await store.read_batch(Checkpoint(), limit=10)
    assert [e for _, e in batch.events] == [e for _, e in everything]
    assert not batch.pending


async def test_checkpoints_are_stored_by_name(store: EventStore) -> None:
    await store.append("case-1", [ev(), ev()], NO_STREAM)
    assert await store.load_checkpoint("cases") == Checkpoint()
    events = await store.read_all(Checkpoint())
    await store.save_checkpoint("cases", events[0][0])
    await store.save_checkpoint("cases", events[1][0])
    assert await store.load_checkpoint("cases") == events[1][0]


async def test_every_wakeup_is_set_by_an_append(store: EventStore) -> None:
    first, second = store.wakeup(), store.wakeup()
    assert not first.is_set()
    waiting = asyncio.gather(first.wait(5), second.wait(5), store.wait_for_events(5))
    await asyncio.sleep(0.01)
    await store.append("case-1", [ev()], NO_STREAM)
    assert list(await asyncio.wait_for(waiting, 2)) == [True, True, None]
    first.clear()
    assert not first.is_set()
    assert second.is_set()


async def test_a_wakeup_for_some_categories_is_set_only_by_appends_to_them(store: EventStore) -> None:
    calls, everything = store.wakeup(frozenset({"call"})), store.wakeup()
    await store.append("sms-1", [ev()], NO_STREAM)
    assert everything.is_set()
    assert not calls.is_set()
    await store.append("call-1", [ev()], NO_STREAM)
    assert calls.is_set()


async def test_refusals_name_the_stream_the_key_and_the_stream_that_holds_it(store: EventStore) -> None:
    await store.append("case-1", [ev()], NO_STREAM, idempotency_key="k1")
    with pytest.raises(WrongExpectedVersion) as stale:
        await store.append("case-1", [ev()], NO_STREAM)
    with pytest.raises(WrongExpectedVersion) as missing:
        await store.append("case-2", [ev()], STREAM_EXISTS)
    with pytest.raises(WrongExpectedVersion) as several:
        await store.append("case-1", [ev(), ev()], 5)
    assert (several.value.stream, several.value.expected, several.value.actual) == ("case-1", 5, 0)
    with pytest.raises(IdempotencyConflict) as taken:
        await store.append("case-3", [ev()], ANY, idempotency_key="k1")
    assert (stale.value.stream, stale.value.expected, stale.value.actual) == ("case-1", NO_STREAM, 0)
    assert (missing.value.stream, missing.value.expected, missing.value.actual) == (
        "case-2", STREAM_EXISTS, NO_STREAM)
    assert (taken.value.key, taken.value.stream, taken.value.stored_stream) == ("k1", "case-3", "case-1")


async def test_a_repeat_and_a_lookup_of_a_key_answer_what_the_first_append_wrote(store: EventStore) -> None:
    first = await store.append("case-1", [ev(), ev()], NO_STREAM, idempotency_key="k1")
    written = AppendResult("case-1", first.positions, 0, 1, duplicate=True)
    assert await store.append("case-1", [ev()], ANY, idempotency_key="k1") == written
    assert await store.find_by_idempotency_key("k1") == written


async def test_a_stored_event_keeps_its_type_and_schema_version_and_is_timed(store: EventStore) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)  # the database server's clock may differ a little
    await store.append("case-1", [NewEvent("Moved", {"n": 1}, 3, {"actor": "test"})], NO_STREAM)
    [stored] = await store.read_stream("case-1")
    assert (stored.type, stored.schema_version, stored.data) == ("Moved", 3, {"n": 1})
    assert stored.metadata == {"actor": "test"}  # no idempotency key named when none was given
    assert before <= stored.recorded_at <= datetime.now(UTC) + timedelta(minutes=1)


async def test_a_page_holds_its_limit_and_by_default_a_thousand(store: EventStore) -> None:
    await store.append("case-1", [ev(n=n) for n in range(1001)], NO_STREAM)
    async with asyncio.timeout(10):  # on a shared server another transaction may hold the horizon
        while (await store.read_batch(Checkpoint(), limit=1)).pending:  # noqa: ASYNC110 (the server's)
            await asyncio.sleep(0.01)
    assert len(await store.read_all(Checkpoint())) == 1000
    assert len((await store.read_batch(Checkpoint())).events) == 1000
    assert [e.data["n"] for _, e in await store.read_all(Checkpoint(), limit=3)] == [0, 1, 2]
    assert [e.data["n"] for _, e in (await store.read_batch(Checkpoint(), limit=3)).events] == [0, 1, 2]


async def test_wake_sets_the_wakeups_of_the_categories_it_names_or_of_all(store: EventStore) -> None:
    calls, cases = store.wakeup(frozenset({"call"})), store.wakeup(frozenset({"case"}))
    everything = store.wakeup()
    store.wake(["call"])
    assert (calls.is_set(), cases.is_set(), everything.is_set()) == (True, False, True)
    store.wake()
    assert cases.is_set()


async def test_waiting_for_events_ends_after_its_timeout_and_the_start_has_the_first_checkpoint(
    store: EventStore,
) -> None:
    await asyncio.wait_for(store.wait_for_events(0.01), 5)
    assert await store.checkpoint_at(0) == Checkpoint()


class Recorder:
    """A reactor that remembers what it saw and can fail once on a chosen event."""

    def __init__(self, name: str, categories: frozenset[str] | None, fail_on: int = 0) -> None:
        self.name = name
        self.categories = categories
        self.seen: list[RecordedEvent] = []
        self.got = asyncio.Event()
        self._fail_on = fail_on

    async def react(self, event: RecordedEvent) -> None:
        """Record the event (failing once on the chosen data value)."""
        if event.data.get("n") == self._fail_on:
            self._fail_on = 0
            raise RuntimeError("boom")
        self.seen.append(event)
        self.got.set()


async def test_reactor_runner_resumes_from_its_checkpoint(store: EventStore) -> None:
    for i in range(1, 6):
        await store.append(f"case-{i}", [ev(n=i)], NO_STREAM)
    await store.append("call-1", [ev(n=99)], NO_STREAM)
    recorder = Recorder("r1", frozenset({"case"}), fail_on=4)
    runner = ReactorRunner(store, recorder, batch_size=2)
    with pytest.raises(RuntimeError):
        await runner.run_until_caught_up()
    assert [e.data["n"] for e in recorder.seen] == [1, 2, 3]
    again = ReactorRunner(store, recorder, batch_size=2)
    assert await again.run_until_caught_up() == 2
    assert [e.data["n"] for e in recorder.seen] == [1, 2, 3, 4, 5]


async def test_reactor_runner_follows_live(store: EventStore) -> None:
    recorders = [Recorder(f"live{i}", None) for i in range(3)]
    runners = [CountedReactorRunner(store, r, poll_interval=30) for r in recorders]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        await asyncio.gather(*(r.steps.wait_for(1) for r in runners))  # caught up, now following
        await store.append("case-1", [ev(n=1)], NO_STREAM)
        await asyncio.wait_for(asyncio.gather(*(r.got.wait() for r in recorders)), 2)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert all([e.data["n"] for e in r.seen] == [1] for r in recorders)


async def test_a_read_of_some_types_returns_only_them_and_ends_past_the_others(store: EventStore) -> None:
    await store.append("case-1", [ev("A", n=1), ev("B", n=2)], NO_STREAM)
    await store.append("call-1", [ev("A", n=3)], NO_STREAM)
    await store.append("case-2", [ev("B", n=4), ev("B", n=5)], NO_STREAM)
    everything = await store.read_all(Checkpoint())
    last_case = everything[-1][0]
    cases = frozenset({"case"})
    a = await store.read_batch(Checkpoint(), categories=cases, types=frozenset({"A"}))
    assert [e.data["n"] for _, e in a.events] == [1]
    assert a.end == last_case  # past the B events after it, unread
    assert (await store.read_batch(last_case, categories=cases, types=frozenset({"A"}))).end is None
    # A full page ends at its last event: what lies behind it was not looked at.
    full = await store.read_batch(Checkpoint(), limit=1, categories=cases, types=frozenset({"B"}))
    assert [e.data["n"] for _, e in full.events] == [2]
    assert full.end == full.events[-1][0]
    assert full.end is not None
    rest = await store.read_batch(full.end, limit=10, categories=cases, types=frozenset({"B"}))
    assert [e.data["n"] for _, e in rest.events] == [4, 5]
    assert rest.end == last_case
    both = await store.read_batch(Checkpoint(), categories=frozenset({"case", "call"}),
                                  types=frozenset({"A"}))
    assert [e.data["n"] for _, e in both.events] == [1, 3]
    assert both.end == last_case
    assert (await store.read_batch(Checkpoint(), types=frozenset({"B"}))).end == last_case
    plain = await store.read_batch(Checkpoint(), categories=cases)
    assert plain.skipped_to is None
    assert plain.end == last_case


class TypedRecorder(Recorder):
    """A `Recorder` of the events of type A alone (`types`): it records whatever it is handed."""

    types = frozenset({"A"})


async def test_a_reactor_of_some_types_moves_its_checkpoints_past_the_events_it_skips(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.append("case-1", [ev("A", n=1), ev("B", n=2)], NO_STREAM)
    await store.append("case-2", [ev("A", n=3)], NO_STREAM)
    await store.append("case-3", [ev("B", n=4)], NO_STREAM)
    await store.append("case-4", [ev("B", n=5)], NO_STREAM)
    last = (await store.read_all(Checkpoint()))[-1][0]
    recorder = TypedRecorder("typed", frozenset({"case"}), fail_on=3)
    with pytest.raises(RuntimeError):
        await ReactorRunner(store, recorder, batch_size=2).run_until_caught_up()
    assert await ReactorRunner(store, recorder, batch_size=2).run_until_caught_up() == 1
    assert [e.data["n"] for e in recorder.seen] == [1, 3]
    # A fresh runner starts from its stored checkpoints: every one is past the B events at the end.
    reads: list[Checkpoint] = []
    read_batch = store.read_batch

    async def spy(after: Checkpoint, **kwargs: Any) -> Any:
        reads.append(after)
        return await read_batch(after, **kwargs)

    monkeypatch.setattr(store, "read_batch", spy)
    assert await ReactorRunner(store, recorder).run_until_caught_up() == 0
    assert reads == [last]


async def test_sealed_personal_data_reads_back_whole_through_every_read(store: EventStore) -> None:
    """Sealing is the store's business: every way of reading gives the values back (both stores)."""
    personal = Personal("phone:13912345678", (("caller", "name"), ("text",)))
    data = {"caller": {"name": "张三", "kind": "citizen"}, "text": "停电了", "category": "power_fault"}
    await store.append("case-P1", [NewEvent("Registered", data, personal=personal)], NO_STREAM)
    await store.append("case-P1", [NewEvent("Touched", {"n": 1})], 0)
    assert (await store.read_stream("case-P1"))[0].data == data
    assert (await store.read_streams(["case-P1"]))["case-P1"][0].data == data
    assert (await store.read_all(Checkpoint()))[0][1].data == data
    typed = await store.read_batch(Checkpoint(), types=frozenset({"Registered"}))
    assert [e.data for _, e in typed.events] == [data]
    untyped = await store.read_batch(Checkpoint())
    assert untyped.events[0][1].data == data and "pd" not in untyped.events[0][1].metadata
