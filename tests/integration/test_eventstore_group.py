"""Group commit in the PostgreSQL store: shared transactions, each append with its own answer."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import pytest

from eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    Checkpoint,
    NewEvent,
    Personal,
    WrongExpectedVersion,
)
from eventstore import group as group_module
from eventstore.errors import AppendFailed, IdempotencyConflict, StoreUnavailable
from eventstore.group import APPEND_MANY, GroupCommitter
from eventstore.postgres import PostgresEventStore, create_pool
from eventstore.shredding import NewKeys
from eventstore.subscriptions import ReactorRunner
from eventstore.tamper import check_chains
from tests.integration.test_eventstore_pg import Collector, until
from tests.integration.test_subject_keys_pg import appended_elsewhere


@pytest.fixture
async def store(pg_pool: asyncpg.Pool) -> AsyncIterator[PostgresEventStore]:
    """The PostgreSQL store with group commit on."""
    grouped = PostgresEventStore(pg_pool, group_commit=True)
    yield grouped
    await grouped.close()


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every flush the committers write, in order."""
    sizes: list[int] = []
    write = GroupCommitter._write

    async def counting(self: GroupCommitter, conn: asyncpg.Connection, batch: list) -> None:  # type: ignore[type-arg]
        sizes.append(len(batch))
        await write(self, conn, batch)

    monkeypatch.setattr(GroupCommitter, "_write", counting)
    return sizes


def _event(n: int) -> NewEvent:
    return NewEvent("SmsReceived", {"n": n, "text": "停电"}, 1, {"actor": "test"})


async def _outcome(call: Awaitable[AppendResult]) -> AppendResult | BaseException:
    try:
        return await call
    except (WrongExpectedVersion, IdempotencyConflict, AppendFailed) as exc:
        return exc


async def test_concurrent_appends_share_transactions_and_each_gets_its_own_answer(
    store: PostgresEventStore, pg_pool: asyncpg.Pool, batches: list[int]
) -> None:
    results = await asyncio.gather(
        *(store.append(f"sms-k:{n}", [_event(n)], ANY, idempotency_key=f"k:{n}") for n in range(200)))
    assert len(batches) <= 2 * group_module.MAX_IN_FLIGHT + 200 // group_module.MAX_BATCH
    assert max(batches) <= group_module.MAX_BATCH
    assert [r.stream for r in results] == [f"sms-k:{n}" for n in range(200)]
    assert all(not r.duplicate and r.first_version == 0 for r in results)
    async with pg_pool.acquire() as conn:
        rows = await conn.fetch("SELECT stream, data, metadata FROM events ORDER BY position")
        transactions = await conn.fetchval("SELECT count(DISTINCT tx_id) FROM events")
    assert transactions == len(batches) < 200
    assert {r["stream"]: r["data"]["n"] for r in rows} == {f"sms-k:{n}": n for n in range(200)}
    assert all(r["metadata"]["idempotency_key"] == f"k:{r['data']['n']}" for r in rows)
    assert len({r.positions[0] for r in results}) == 200


async def test_a_single_writer_flushes_each_append_alone(
    store: PostgresEventStore, batches: list[int]
) -> None:
    for n in range(20):
        assert (await store.append("case-one", [_event(n)], n - 1)).last_version == n
    assert batches == [1] * 20


async def test_a_sequential_writer_is_served_by_one_flush_on_one_connection(
    store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    leases: list[int] = []  # one per connection a flush takes from the pool (`_serve`)
    serve = GroupCommitter._serve

    async def counting(self: GroupCommitter) -> None:
        leases.append(len(leases))
        await serve(self)

    monkeypatch.setattr(GroupCommitter, "_serve", counting)
    for n in range(50):
        assert (await store.append("case-seq", [_event(n)], n - 1)).last_version == n
    assert len(leases) == 1
    await until(lambda: store._group is not None and store._group._flushing == 0, 1)
    await store.append("case-seq", [_event(50)], 49)  # after the flush ended: a new flush, a new lease
    assert len(leases) == 2


async def test_mixed_expected_versions_in_one_batch_fail_exactly_the_wrong_ones(
    store: PostgresEventStore, batches: list[int]
) -> None:
    streams = [f"case-m{s}" for s in range(8)]
    for stream in streams:
        await store.append(stream, [_event(0), _event(1), _event(2)], NO_STREAM)
    batches.clear()
    # (expected, events): the outcome in queue order, as if applied one by one.
    plan = [(2, 2), (2, 1), (NO_STREAM, 1), (STREAM_EXISTS, 1), (ANY, 1), (6, 2), (0, 1)]
    want: list[tuple[str, int]] = [("ok", 4), ("wrong", 4), ("wrong", 4), ("ok", 5), ("ok", 6),
                                   ("ok", 8), ("wrong", 8)]
    calls = [store.append(s, [_event(i) for i in range(n)], e) for s in streams for e, n in plan]
    outcomes = await asyncio.gather(*(_outcome(c) for c in calls))
    assert batches == [len(calls)]  # one transaction for all of them
    for n, outcome in enumerate(outcomes):
        status, version = want[n % len(plan)]
        if status == "ok":
            assert isinstance(outcome, AppendResult) and outcome.last_version == version
        else:
            assert isinstance(outcome, WrongExpectedVersion) and outcome.actual == version
    for stream in streams:
        assert await store.stream_version(stream) == 8
        assert len(await store.read_stream(stream)) == 9  # the failed ones wrote nothing


async def test_a_plain_batch_is_written_together_as_it_would_be_one_by_one(
    store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    """`intake_append_many` writes a batch with nothing to refuse in ONE subtransaction (migration
    0009), with the versions, positions, hash chains and keys the one-by-one loop gives; sent
    again, it answers each append as the loop does. Bugs: a later append of a stream in the batch
    checked or numbered against the stream's stored head, a hash chained to the wrong event, a
    key stored with another append's positions, rows of the refused attempt left behind."""
    await store.append("case-t1", [_event(0)], NO_STREAM)
    # (stream, expected, events, key)
    batch = [("case-t1", 0, 2, "k:t1"), ("case-t1", 2, 1, None), ("case-t2", NO_STREAM, 1, "k:t2"),
             ("case-t3", ANY, 1, None)]
    args = [[b[0] for b in batch], ["case"] * 4, [b[1] for b in batch], [b[3] for b in batch],
            [b[2] for b in batch], ["Noted"] * 5, [1] * 5, [{"n": n} for n in range(5)],
            [{"actor": "test"}] * 5]
    async with pg_pool.acquire() as conn:
        rows = await conn.fetch(APPEND_MANY, *args, None, None, None, None)
        assert [(r["status"], r["out_stream"], r["out_first"], r["out_last"], r["out_duplicate"])
                for r in rows] == [("ok", "case-t1", 1, 2, False), ("ok", "case-t1", 3, 3, False),
                                   ("ok", "case-t2", 0, 0, False), ("ok", "case-t3", 0, 0, False)]
        positions = [p for r in rows for p in r["out_positions"]]
        stored = await conn.fetch("SELECT position, stream, version, data, xmin::text FROM events "
                                  "WHERE position = ANY($1::bigint[]) ORDER BY position", positions)
        assert [(r["position"], r["stream"], r["version"], r["data"]["n"]) for r in stored] == [
            (positions[0], "case-t1", 1, 0), (positions[1], "case-t1", 2, 1),
            (positions[2], "case-t1", 3, 2), (positions[3], "case-t2", 0, 3),
            (positions[4], "case-t3", 0, 4)]
        assert len({r["xmin"] for r in stored}) == 1  # one subtransaction, not one per append
        async with conn.transaction(isolation="repeatable_read"):
            assert await check_chains(conn) == (6, None)
        keys = {r["key"]: (r["stream"], r["positions"], r["first_version"], r["last_version"])
                for r in await conn.fetch("SELECT * FROM idempotency_keys")}
        assert keys == {"k:t1": ("case-t1", positions[:2], 1, 2),
                        "k:t2": ("case-t2", positions[3:4], 0, 0)}

        again = await conn.fetch(APPEND_MANY, *args, None, None, None, None)
        assert [(r["status"], r["out_positions"], r["out_duplicate"], r["actual"]) for r in again] == [
            ("ok", positions[:2], True, None), ("wrong", None, None, 3),
            ("ok", positions[3:4], True, None), ("ok", [positions[4] + 1], False, None)]
        assert await conn.fetchval("SELECT count(*) FROM events") == 7  # one more: case-t3's
        async with conn.transaction(isolation="repeatable_read"):
            assert await check_chains(conn) == (7, None)


async def test_exact_version_races_across_batches_have_one_winner_per_stream(
    store: PostgresEventStore,
) -> None:
    streams = [f"case-r{s}" for s in range(10)]
    for stream in streams:
        await store.append(stream, [_event(0)], NO_STREAM)
    calls = [store.append(s, [_event(1), _event(2)], 0) for _ in range(30) for s in streams]
    random.Random(7).shuffle(calls)
    outcomes = await asyncio.gather(*(_outcome(c) for c in calls))
    wins = [o for o in outcomes if isinstance(o, AppendResult)]
    assert sorted(w.stream for w in wins) == sorted(streams)
    assert all(isinstance(o, WrongExpectedVersion) and o.actual == 2
               for o in outcomes if not isinstance(o, AppendResult))
    for stream in streams:
        assert await store.stream_version(stream) == 2


async def test_a_flush_sends_its_appends_in_stream_order_keeping_arrival_order_within_a_stream(
    store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[list[str]] = []
    columns = group_module._columns

    def recording(batch: list, new: NewKeys) -> list[list | None]:  # type: ignore[type-arg]
        made = columns(batch, new)
        assert made[0] is not None
        sent.append(list(made[0]))
        return made

    monkeypatch.setattr(group_module, "_columns", recording)
    streams = ["case-o3", "case-o1", "case-o2", "case-o1", "case-o3", "case-o1"]
    await asyncio.gather(*(store.append(s, [_event(n)], ANY) for n, s in enumerate(streams)))
    assert sent == [sorted(streams)]
    for stream in set(streams):
        numbers = [e.data["n"] for e in await store.read_stream(stream)]
        assert numbers == [n for n, s in enumerate(streams) if s == stream]


async def test_concurrent_flushes_racing_for_the_same_streams_never_deadlock(pg_dsn: str) -> None:
    """Flushes lock streams in one order; unsorted, these rounds deadlock a few times (1 s each)."""
    pool = await create_pool(pg_dsn, min_size=6, max_size=10)  # warm: the flushes really overlap
    store = PostgresEventStore(pool, group_commit=True)
    try:
        for round_ in range(12):
            streams = [f"case-d{round_}x{s}" for s in range(10)]
            for stream in streams:
                await store.append(stream, [_event(0)], NO_STREAM)
            calls = [store.append(s, [_event(1), _event(2)], 0) for _ in range(30) for s in streams]
            random.Random(round_).shuffle(calls)
            await asyncio.gather(*(_outcome(c) for c in calls))
        held = [await pool.acquire() for _ in range(pool.get_size())]
        try:
            for conn in held:  # each backend reports its deadlocks when it next goes idle
                await conn.execute("SELECT pg_stat_force_next_flush()")
            deadlocks = await held[0].fetchval(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        finally:
            for conn in held:
                await pool.release(conn)
    finally:
        await store.close()
        await pool.close()
    assert deadlocks == 0


async def test_repeated_keys_within_and_across_batches_are_duplicates(
    store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    stored = await store.append("sms-k:old", [_event(0)], ANY, idempotency_key="k:old")
    first, again, old, other = await asyncio.gather(
        store.append("sms-k:1", [_event(1)], ANY, idempotency_key="k:1"),
        store.append("sms-k:1", [_event(1)], ANY, idempotency_key="k:1"),
        store.append("sms-k:old", [_event(0)], ANY, idempotency_key="k:old"),
        _outcome(store.append("sms-k:other", [_event(2)], ANY, idempotency_key="k:1")),
    )
    assert not first.duplicate and again.duplicate and again.positions == first.positions
    assert old.duplicate and old.positions == stored.positions
    assert isinstance(other, IdempotencyConflict)
    with pytest.raises(IdempotencyConflict):
        await store.append("sms-k:other", [_event(2)], ANY, idempotency_key="k:1")
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 2


async def test_concurrent_duplicates_across_committers_write_one_event(pg_pool: asyncpg.Pool) -> None:
    stores = [PostgresEventStore(pg_pool, group_commit=True) for _ in range(2)]
    try:
        calls = [s.append("sms-k:race", [_event(9), _event(10)], ANY, idempotency_key=f"k:race{n % 3}")
                 for n in range(30) for s in stores]
        results = await asyncio.gather(*calls)
    finally:
        for s in stores:
            await s.close()
    assert sum(not r.duplicate for r in results) == 3
    assert len({r.positions for r in results}) == 3
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 6


async def test_an_append_the_database_refuses_fails_alone(store: PostgresEventStore) -> None:
    bad = NewEvent("SmsReceived", {"text": "nul \x00 here"}, 1, {})
    outcomes = await asyncio.gather(
        _outcome(store.append("sms-a", [_event(1)], NO_STREAM)),
        _outcome(store.append("sms-b", [_event(1), bad], NO_STREAM)),
        _outcome(store.append("sms-c", [_event(1)], NO_STREAM)),
    )
    assert isinstance(outcomes[0], AppendResult) and isinstance(outcomes[2], AppendResult)
    assert isinstance(outcomes[1], AppendFailed)
    assert await store.stream_version("sms-b") == NO_STREAM


async def test_a_caller_gone_before_its_flush_is_left_out_and_the_others_are_answered(
    store: PostgresEventStore,
) -> None:
    callers = [asyncio.create_task(store.append(f"sms-gone{n}", [_event(n)], NO_STREAM)) for n in range(3)]
    await asyncio.sleep(0)  # each caller has queued its append; the flush has not run yet
    callers[1].cancel()
    first, gone, last = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(gone, asyncio.CancelledError)
    assert isinstance(first, AppendResult) and isinstance(last, AppendResult)
    assert await store.stream_version("sms-gone1") == NO_STREAM
    assert [await store.stream_version(f"sms-gone{n}") for n in (0, 2)] == [0, 0]


async def test_a_caller_gone_during_its_flush_does_not_cancel_the_flush(
    store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing, release = asyncio.Event(), asyncio.Event()
    write = GroupCommitter._write

    async def held(self: GroupCommitter, conn: asyncpg.Connection, batch: list) -> None:  # type: ignore[type-arg]
        writing.set()
        await release.wait()
        await write(self, conn, batch)

    monkeypatch.setattr(GroupCommitter, "_write", held)
    callers = [asyncio.create_task(store.append(f"sms-held{n}", [_event(n)], NO_STREAM)) for n in range(3)]
    await asyncio.wait_for(writing.wait(), 5)
    callers[1].cancel()
    release.set()
    first, gone, last = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 5)
    assert isinstance(gone, asyncio.CancelledError)
    assert isinstance(first, AppendResult) and isinstance(last, AppendResult)
    # the flush carried it: its events are durable although nobody heard the answer
    assert [await store.stream_version(f"sms-held{n}") for n in range(3)] == [0, 0, 0]


async def test_a_flush_failing_by_a_defect_answers_its_batch_and_the_next_appends_are_written(
    store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error no append caused (a subject's key refused while sealing, a bug) escaped the flush
    task: asyncio reported "Task exception was never retrieved" and the batch's callers a bare
    "interrupted". They now hear the cause, it is logged, and the next appends are served."""
    write, broken = GroupCommitter._write, [True]

    async def once_broken(self: GroupCommitter, conn: asyncpg.Connection, batch: list) -> None:  # type: ignore[type-arg]
        if broken.pop() if broken else False:
            raise RuntimeError("sealing went wrong")
        await write(self, conn, batch)

    monkeypatch.setattr(GroupCommitter, "_write", once_broken)
    loop, unhandled = asyncio.get_running_loop(), []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        failed = await asyncio.gather(*(store.append(f"sms-bug{n}", [_event(n)], NO_STREAM)
                                        for n in range(3)), return_exceptions=True)
        assert [type(outcome) for outcome in failed] == [AppendFailed] * 3
        assert all("RuntimeError: sealing went wrong" in str(outcome) for outcome in failed)
        again = await asyncio.gather(*(store.append(f"sms-bug{n}", [_event(n)], NO_STREAM)
                                       for n in range(3)))
        assert [result.last_version for result in again] == [0, 0, 0]
        await asyncio.sleep(0)
        gc.collect()  # a task's exception is reported when the task is collected
        assert unhandled == []
    finally:
        loop.set_exception_handler(None)


async def test_appends_arriving_as_a_flush_ends_are_not_stranded(
    store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_module, "MAX_IN_FLIGHT", 1)
    for round_ in range(20):
        appends = [store.append(f"sms-k:{round_}.{n}", [_event(n)], ANY, idempotency_key=f"k:{round_}.{n}")
                   for n in range(3)]
        results = await asyncio.wait_for(asyncio.gather(*appends), 5)
        assert all(not r.duplicate for r in results)
    # the last flush gives its connection back within its few turns of waiting for more
    await until(lambda: store._group is not None and store._group._flushing == 0, 1)


@pytest.mark.timeout(120)
async def test_grouped_writers_tailing_subscribers_see_one_gap_free_order(
    store: PostgresEventStore,
) -> None:
    committed: list[int] = []
    budget = [100_000]
    collectors = [Collector("group-a"), Collector("group-b")]
    runners = [asyncio.create_task(ReactorRunner(store, c, batch_size=2000, poll_interval=0.05).run())
               for c in collectors]

    async def writer(w: int) -> None:
        rng = random.Random(w)
        while budget[0] > 0:
            stream = f"load-w{w}s{rng.randint(0, 40)}"
            events = [NewEvent("Loaded", {"w": w}) for _ in range(rng.randint(1, 25))]
            result = await store.append(stream, events, ANY)
            budget[0] -= len(result.positions)
            committed.extend(result.positions)

    await asyncio.gather(*(writer(w) for w in range(64)))
    try:
        await until(lambda: min(len(c.positions) for c in collectors) >= len(committed), 60)
    finally:
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
    async with store.connection() as conn:
        final = [r["position"] for r in await conn.fetch(
            "SELECT position FROM events ORDER BY tx_id, position", timeout=60)]
        transactions = await conn.fetchval("SELECT count(DISTINCT tx_id) FROM events")
    assert sorted(final) == sorted(committed) and len(final) >= 100_000
    assert transactions < len(final) / 25  # grouped: many appends per transaction
    assert all(c.positions == final for c in collectors)
    assert (await store.read_all(Checkpoint(), limit=200_000))[-1][1].position == final[-1]


async def test_an_append_its_subtransaction_refuses_fails_alone_naming_its_stream(
    store: PostgresEventStore,
) -> None:
    """Data PostgreSQL refuses (a NUL in a string: jsonb holds none) fails only its own append,
    inside the flush, with the database's reason. Bugs: the refusal taken for success or for a
    retry, its reason or stream lost, the other appends failed with it. (A key too long for the
    index was the trigger here; the store now refuses such a key before any flush.)"""
    outcomes = await asyncio.gather(
        _outcome(store.append("sms-k1", [_event(1)], NO_STREAM)),
        _outcome(store.append("sms-k2", [NewEvent("Bad", {"t": "nul \u0000 here"})], NO_STREAM,
                              idempotency_key="k2")),
        _outcome(store.append("sms-k3", [_event(3)], NO_STREAM)))
    assert isinstance(outcomes[0], AppendResult) and isinstance(outcomes[2], AppendResult)
    refused = outcomes[1]
    assert isinstance(refused, AppendFailed)
    assert str(refused).startswith("append to 'sms-k2' failed: ") and "\\u0000" in str(refused)
    assert await store.find_by_idempotency_key("k2") is None
    assert await store.stream_version("sms-k2") == NO_STREAM


async def test_a_wrong_expected_version_in_a_flush_names_the_stream_and_both_versions(
    store: PostgresEventStore,
) -> None:
    await store.append("sms-w1", [_event(1)], NO_STREAM)
    outcomes = await asyncio.gather(
        _outcome(store.append("sms-w1", [_event(2)], 5)),
        _outcome(store.append("sms-w2", [_event(3)], NO_STREAM)))
    wrong = outcomes[0]
    assert isinstance(wrong, WrongExpectedVersion)
    assert (wrong.stream, wrong.expected, wrong.actual) == ("sms-w1", 5, 0)
    assert isinstance(outcomes[1], AppendResult)


async def test_at_most_four_flushes_run_at_once(
    store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of appends (a storm's webhooks) shares at most MAX_IN_FLIGHT connections; the rest
    queue for the next flush. Bugs: a flush per append (the pool and PostgreSQL flooded), the
    count of running flushes lost (no bound at all)."""
    running, most = 0, 0
    write = GroupCommitter._write

    async def slow(self: GroupCommitter, conn: asyncpg.Connection, batch: list) -> None:  # type: ignore[type-arg]
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.1)
            await write(self, conn, batch)
        finally:
            running -= 1

    monkeypatch.setattr(GroupCommitter, "_write", slow)
    calls = []
    for wave in range(12):  # a wave every 5 ms while each flush takes 100 ms or more
        calls += [asyncio.create_task(store.append(f"sms-f{wave}x{n}", [_event(n)], NO_STREAM))
                  for n in range(5)]
        await asyncio.sleep(0.005)
    results = await asyncio.gather(*calls)
    assert len({r.stream for r in results}) == 60
    assert most == group_module.MAX_IN_FLIGHT


async def test_appends_to_an_unreachable_database_fail_at_once(unused_tcp_port: int) -> None:
    """No PostgreSQL behind the pool: every queued append fails StoreUnavailable (503 upstream),
    none waits for ever. Bugs: the queue not failed (the flush retries for ever), a failure that
    is no StoreUnavailable."""
    nowhere = f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/none"
    pool = await create_pool(nowhere, min_size=0, max_size=2)
    grouped = PostgresEventStore(pool, group_commit=True, acquire_timeout=0.5)
    try:
        outcomes = await asyncio.wait_for(asyncio.gather(
            *(grouped.append(f"sms-u{n}", [_event(n)], NO_STREAM) for n in range(3)),
            return_exceptions=True), 10)
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    finally:
        await grouped.close()
        await pool.close()


async def test_a_flush_wakes_the_readers_of_the_categories_it_wrote(store: PostgresEventStore) -> None:
    """Readers in this process wait on a wake-up, not a poll: a flush that wrote to `sms-` streams
    wakes the `sms` readers and not the `case` ones. Bugs: no wake-up (the board a poll behind),
    the wrong categories woken."""
    sms, case = store.wakeup(frozenset({"sms"})), store.wakeup(frozenset({"case"}))
    await asyncio.gather(*(store.append(f"sms-wk{n}", [_event(n)], NO_STREAM) for n in range(3)))
    assert sms.is_set() and not case.is_set()


async def test_an_append_refused_for_its_key_does_not_push_out_one_queued_behind_it(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One flush at a time (MAX_IN_FLIGHT 1) so that an append waits in the queue while a flush
    has an append refused for its subject's key: the refused one goes back to the front, the
    waiting one stays. Bug: the waiting append replaced (its caller never answered)."""
    known = "phone:+8613900000901"
    noted = NewEvent("Noted", {"name": "郑"}, 1, {}, Personal(known, (("name",),)))
    await appended_elsewhere(pg_dsn, {"case-q0": noted})
    monkeypatch.setattr(group_module, "MAX_IN_FLIGHT", 1)
    write = GroupCommitter._write

    async def slow(self: GroupCommitter, conn: asyncpg.Connection, batch: list) -> None:  # type: ignore[type-arg]
        await asyncio.sleep(0.05)  # the next append queues meanwhile
        await write(self, conn, batch)

    monkeypatch.setattr(GroupCommitter, "_write", slow)
    pool = await create_pool(pg_dsn, min_size=1, max_size=2)
    grouped = PostgresEventStore(pool, group_commit=True)
    try:
        first = [asyncio.create_task(grouped.append("case-q0", [noted], ANY)),
                 asyncio.create_task(grouped.append("sms-q1", [_event(1)], NO_STREAM))]
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(grouped.append("sms-q2", [_event(2)], NO_STREAM))
        results = await asyncio.wait_for(asyncio.gather(*first, waiting), 10)
        assert [r.stream for r in results] == ["case-q0", "sms-q1", "sms-q2"]
    finally:
        await grouped.close()
        await pool.close()


async def test_flushes_that_end_together_leave_the_next_append_a_flush(
    store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two flushes write at once and find the queue empty in the same loop turns, so both wait for
    more together; after they end, the next append must start a flush of its own. Bug: the count
    of waiting flushes lost (set, not counted: it ends below zero, and every later append queues
    for a flush that never comes)."""
    gate = asyncio.Event()
    writing = 0
    write = GroupCommitter._write

    async def held(self: GroupCommitter, conn: asyncpg.Connection, batch: list) -> None:  # type: ignore[type-arg]
        nonlocal writing
        await write(self, conn, batch)
        writing += 1
        await gate.wait()  # both flushes go on in the same turn, to an empty queue

    monkeypatch.setattr(GroupCommitter, "_write", held)
    first = asyncio.create_task(store.append("sms-l1", [_event(1)], NO_STREAM))
    await until(lambda: writing == 1, 5)
    second = asyncio.create_task(store.append("sms-l2", [_event(2)], NO_STREAM))  # a second flush
    await until(lambda: writing == 2, 5)
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    group = store._group
    assert group is not None
    await until(lambda: group._flushing == 0, 1)
    assert group._lingering == 0
    later = await asyncio.wait_for(store.append("sms-l3", [_event(3)], NO_STREAM), 5)
    assert later.stream == "sms-l3"
