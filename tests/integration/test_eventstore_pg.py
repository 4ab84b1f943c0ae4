"""The PostgreSQL event store under concurrency: ordering, idempotency, horizon, waking."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from eventstore import ANY, NO_STREAM, AppendResult, Checkpoint, NewEvent, RecordedEvent, WrongExpectedVersion
from eventstore.errors import AppendFailed, IdempotencyConflict, StoreUnavailable
from eventstore.group import APPEND_MANY
from eventstore.postgres import (
    PostgresEventStore,
    _batch_sql,
    append_many_on,
    append_on,
    create_pool,
    read_batch_on,
)
from eventstore.records import AppendArgs
from eventstore.subscriptions import ReactorRunner
from tests.steps import CountedReactorRunner

WRITERS = 16
TARGET_EVENTS = 100_000
EVENTS_PER_APPEND = 25


async def until(condition: Callable[[], bool], seconds: float) -> None:
    """Wait until `condition()` holds, failing after `seconds`."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (polls state owned by other tasks)
            await asyncio.sleep(0.005)


async def blocked_on_a_lock(store: PostgresEventStore, seconds: float = 10) -> None:
    """Wait until a session of this database waits for a lock: the racing append reached the server."""
    async with asyncio.timeout(seconds), store.connection() as conn:
        while not await conn.fetchval(  # noqa: ASYNC110 (the state polled is the server's)
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"):
            await asyncio.sleep(0.005)


class _Rollback(Exception):
    """Raised inside a writer's transaction to abort it on purpose."""


class Collector:
    """A reactor that records positions in delivery order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.categories: frozenset[str] | None = None
        self.positions: list[int] = []

    async def react(self, event: RecordedEvent) -> None:
        """Remember the event's position."""
        self.positions.append(event.position)


async def _writer(store: PostgresEventStore, seed: int, committed: list[int], budget: list[int]) -> None:
    rng = random.Random(seed)
    while budget[0] > 0:
        positions: list[int] = []
        try:
            async with store.connection() as conn, conn.transaction():
                for _ in range(rng.randint(1, 3)):
                    stream = f"load-w{seed}s{rng.randint(0, 40)}"
                    batch = [NewEvent("Loaded", {"w": seed}) for _ in range(EVENTS_PER_APPEND)]
                    positions.extend((await append_on(conn, stream, batch, ANY)).positions)
                await conn.execute("SELECT pg_sleep($1)", rng.random() * 0.004)
                if rng.random() < 0.05:
                    raise _Rollback
        except _Rollback:
            continue
        budget[0] -= len(positions)
        committed.extend(positions)
        store.wake()


async def _tail(store: PostgresEventStore, seen: list[int], stop: asyncio.Event) -> None:
    """A raw subscriber: read_batch from a checkpoint, woken by its own latch."""
    wakeup = store.wakeup()
    after = Checkpoint()
    while not stop.is_set():
        wakeup.clear()
        batch = await store.read_batch(after, limit=2000)
        if batch.events:
            after = batch.events[-1][0]
            seen.extend(e.position for _, e in batch.events)
        elif batch.pending:
            await asyncio.sleep(0.002)
        else:
            await wakeup.wait(0.05)


@pytest.mark.timeout(180)
async def test_concurrent_writers_tailing_subscribers_see_one_gap_free_order(
    pg_store: PostgresEventStore,
) -> None:
    committed: list[int] = []
    budget = [TARGET_EVENTS]
    raw: list[int] = []
    stop = asyncio.Event()
    collector = Collector("tail-reactor")
    tails = [
        asyncio.create_task(_tail(pg_store, raw, stop)),
        asyncio.create_task(ReactorRunner(pg_store, collector, batch_size=2000, poll_interval=0.05).run()),
    ]
    await asyncio.gather(*(_writer(pg_store, w, committed, budget) for w in range(WRITERS)))
    try:
        await until(lambda: min(len(raw), len(collector.positions)) >= len(committed), 60)
    finally:
        stop.set()
        tails[1].cancel()
        await asyncio.gather(*tails, return_exceptions=True)
    async with pg_store.connection() as conn:
        final = [r["position"] for r in await conn.fetch(
            "SELECT position FROM events ORDER BY tx_id, position", timeout=60)]
    assert len(committed) >= TARGET_EVENTS
    assert sorted(final) == sorted(committed)
    assert final != sorted(final), "commit order should differ from position order here"
    assert raw == final
    assert collector.positions == final


async def test_concurrent_duplicates_wait_for_the_first_transaction(pg_store: PostgresEventStore) -> None:
    async with pg_store.connection() as conn, conn.transaction():
        first = await append_on(conn, "alarm-1", [NewEvent("Alarm", {})], NO_STREAM, idempotency_key="k")
        racing = asyncio.create_task(
            pg_store.append("alarm-1", [NewEvent("Alarm", {})], NO_STREAM, idempotency_key="k"))
        await blocked_on_a_lock(pg_store)
        assert not racing.done()
    second = await racing
    assert second.duplicate
    assert second.positions == first.positions
    assert len(await pg_store.read_stream("alarm-1")) == 1


async def test_concurrent_reuse_of_a_key_on_another_stream_conflicts(pg_store: PostgresEventStore) -> None:
    async with pg_store.connection() as conn, conn.transaction():
        await append_on(conn, "alarm-1", [NewEvent("Alarm", {})], NO_STREAM, idempotency_key="k")
        racing = asyncio.create_task(
            pg_store.append("alarm-2", [NewEvent("Alarm", {})], NO_STREAM, idempotency_key="k"))
        await blocked_on_a_lock(pg_store)
        assert not racing.done()  # waits on the key's primary key
    with pytest.raises(IdempotencyConflict):
        await racing
    assert await pg_store.stream_version("alarm-2") == -1


async def test_duplicate_of_a_rolled_back_append_is_written(pg_store: PostgresEventStore) -> None:
    racing: list[asyncio.Task[AppendResult]] = []

    async def hold_then_abort() -> None:
        async with pg_store.connection() as conn, conn.transaction():
            await append_on(conn, "alarm-1", [NewEvent("Alarm", {})], NO_STREAM, idempotency_key="k")
            racing.append(asyncio.create_task(
                pg_store.append("alarm-1", [NewEvent("Alarm", {})], NO_STREAM, idempotency_key="k")))
            await blocked_on_a_lock(pg_store)
            raise _Rollback

    with pytest.raises(_Rollback):
        await hold_then_abort()
    result = await racing[0]
    assert not result.duplicate
    assert len(await pg_store.read_stream("alarm-1")) == 1


async def test_the_loser_of_a_version_race_is_told_the_winners_version(pg_store: PostgresEventStore) -> None:
    """Both passed the version check; the loser's insert waits on the winner's and then fails."""
    async with pg_store.connection() as conn, conn.transaction():
        await append_on(conn, "case-1", [NewEvent("Registered", {})], NO_STREAM)
        racing = asyncio.create_task(pg_store.append("case-1", [NewEvent("Registered", {})], NO_STREAM))
        await blocked_on_a_lock(pg_store)
    with pytest.raises(WrongExpectedVersion) as lost:
        await racing
    assert (lost.value.stream, lost.value.expected, lost.value.actual) == ("case-1", NO_STREAM, 0)


async def test_an_any_append_that_loses_a_race_is_written_after_the_winner(
    pg_store: PostgresEventStore,
) -> None:
    async with pg_store.connection() as conn, conn.transaction():
        await append_on(conn, "case-1", [NewEvent("Noted", {})], ANY)
        racing = asyncio.create_task(pg_store.append("case-1", [NewEvent("Noted", {})], ANY))
        await blocked_on_a_lock(pg_store)
    assert (await racing).first_version == 1


async def test_in_a_snapshot_that_misses_the_winner_the_loser_is_told_the_stream_is_new(
    pg_store: PostgresEventStore,
) -> None:
    """In a repeatable-read transaction the winner's event is invisible: the version the caller can see."""
    async with pg_store.connection() as conn, conn.transaction(isolation="repeatable_read"):
        await conn.fetchval("SELECT count(*) FROM events")  # the snapshot is taken
        await pg_store.append("case-1", [NewEvent("Registered", {})], NO_STREAM)
        with pytest.raises(WrongExpectedVersion) as lost:
            await append_on(conn, "case-1", [NewEvent("Registered", {})], NO_STREAM)
    assert (lost.value.stream, lost.value.expected, lost.value.actual) == ("case-1", NO_STREAM, NO_STREAM)


async def test_a_key_taken_after_a_transactions_snapshot_fails_the_append(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    """In a repeatable-read transaction the key's first append may be invisible: refused, not answered."""
    async with pg_store.connection() as conn, conn.transaction(isolation="repeatable_read"):
        await conn.fetchval("SELECT count(*) FROM events")  # the snapshot is taken
        await pg_store.append("alarm-1", [NewEvent("Alarm", {})], NO_STREAM, idempotency_key="k")
        with pytest.raises(AppendFailed, match=r"^idempotency key of 'alarm-2' taken but not visible$"):
            await append_on(conn, "alarm-2", [NewEvent("Alarm", {})], NO_STREAM, idempotency_key="k")


async def test_expected_version_race_has_one_winner(pg_store: PostgresEventStore) -> None:
    await pg_store.append("case-1", [NewEvent("Registered", {})], NO_STREAM)
    outcomes = await asyncio.gather(
        *(pg_store.append("case-1", [NewEvent("Noted", {"i": i})], 0) for i in range(10)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, WrongExpectedVersion)]
    assert len(winners) == 1
    assert len(losers) == 9
    assert {loser.actual for loser in losers} == {1}


async def test_any_appends_race_without_losing_events(pg_store: PostgresEventStore) -> None:
    await asyncio.gather(*(pg_store.append("case-1", [NewEvent("N", {"i": i})], ANY) for i in range(20)))
    events = await pg_store.read_stream("case-1")
    assert [e.version for e in events] == list(range(20))


async def test_a_database_error_mid_append_writes_nothing(pg_store: PostgresEventStore) -> None:
    events = [NewEvent("Ok", {"t": "fine"}), NewEvent("Bad", {"t": "nul \u0000 here"})]
    with pytest.raises(AppendFailed, match=r"^append to 'case-1' failed: "):
        await pg_store.append("case-1", events, NO_STREAM, idempotency_key="k")
    assert await pg_store.stream_version("case-1") == NO_STREAM
    assert await pg_store.find_by_idempotency_key("k") is None
    assert await pg_store.read_all(Checkpoint()) == []


async def test_readers_wait_for_older_transactions(pg_store: PostgresEventStore) -> None:
    async with pg_store.connection() as conn:
        tx = conn.transaction()
        await tx.start()
        early = await append_on(conn, "case-1", [NewEvent("Early", {})], NO_STREAM)
        late = await pg_store.append("case-2", [NewEvent("Late", {})], NO_STREAM)
        held = await pg_store.read_batch(Checkpoint())
        assert held.events == ()
        assert held.pending
        await tx.commit()
    batch = await pg_store.read_batch(Checkpoint())
    assert [e.position for _, e in batch.events] == [*early.positions, *late.positions]
    assert not batch.pending


async def _first_positions(store: PostgresEventStore, count: int, seconds: float) -> list[int]:
    """Positions of the first `count` readable events, polling up to `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            batch = await store.read_batch(Checkpoint())
            if len(batch.events) >= count:
                return [e.position for _, e in batch.events]
            await asyncio.sleep(0.01)


async def test_horizon_ignores_transactions_of_other_databases_only(
    pg_store: PostgresEventStore, pg_admin_dsn: str, pg_dsn: str
) -> None:
    elsewhere = await asyncpg.connect(pg_admin_dsn)  # another database of the same server
    here = await asyncpg.connect(pg_dsn)
    try:
        assert await elsewhere.fetchval("SELECT current_database()") != await here.fetchval(
            "SELECT current_database()")
        async with elsewhere.transaction():
            await elsewhere.fetchval("SELECT pg_current_xact_id()")  # holds an xid, stays open
            first = await pg_store.append("case-1", [NewEvent("A", {})], NO_STREAM)
            # Polls only to ride out other clients' commits on a shared server; without
            # the per-database horizon the open transaction above stalls this forever.
            assert await _first_positions(pg_store, 1, 3) == list(first.positions)
            async with here.transaction():
                await here.fetchval("SELECT pg_current_xact_id()")  # ours: must hold readers
                second = await pg_store.append("case-2", [NewEvent("B", {})], NO_STREAM)
                held = await pg_store.read_batch(Checkpoint())
                assert [e.position for _, e in held.events] == list(first.positions)
                assert held.pending
            assert await _first_positions(pg_store, 2, 3) == [*first.positions, *second.positions]
    finally:
        await here.close()
        await elsewhere.close()


async def test_horizon_identifies_other_databases_only_for_rows_past_its_patience(
    pg_store: PostgresEventStore, pg_admin_dsn: str, pg_dsn: str
) -> None:
    elsewhere = await asyncpg.connect(pg_admin_dsn)
    here = await asyncpg.connect(pg_dsn)
    try:
        async with elsewhere.transaction():
            foreign = int(await elsewhere.fetchval("SELECT pg_current_xact_id()::text::bigint"))
            appended = await pg_store.append("case-1", [NewEvent("A", {})], NO_STREAM)
            tx = int(await here.fetchval("SELECT tx_id::text::bigint FROM events WHERE position = $1",
                                         appended.positions[0]))
            horizon = "SELECT intake_horizon($1::interval)::text::bigint"
            # Younger than its patience, the row just waits behind the plain xmin ...
            assert int(await here.fetchval(horizon, timedelta(hours=1))) <= foreign < tx
            # ... past it, the foreign transaction is identified and skipped (polled only
            # to ride out other clients' commits on a shared server, as above).
            async with asyncio.timeout(3):
                while int(await here.fetchval(horizon, timedelta(0))) <= tx:  # noqa: ASYNC110 (polls the server)
                    await asyncio.sleep(0.01)
            # Readers get it after the default patience (20 ms) at the latest.
            assert await _first_positions(pg_store, 1, 3) == list(appended.positions)
    finally:
        await here.close()
        await elsewhere.close()


async def test_runner_repolls_quickly_while_events_wait_behind_the_horizon(
    pg_store: PostgresEventStore,
) -> None:
    collector = Collector("quick")
    runner = CountedReactorRunner(pg_store, collector, poll_interval=30)
    task = asyncio.create_task(runner.run())
    try:
        async with pg_store.connection() as conn:
            tx = conn.transaction()
            await tx.start()
            await append_on(conn, "case-1", [NewEvent("Early", {})], NO_STREAM)
            await pg_store.append("case-2", [NewEvent("Late", {})], NO_STREAM)
            await runner.steps.one_more()  # a read that saw Late committed ...
            assert runner.steps.last is not None and runner.steps.last.pending  # ... waiting behind Early
            assert collector.positions == []
            await tx.commit()  # no wake-up is sent for this commit
        await until(lambda: len(collector.positions) >= 2, 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_notify_wakes_readers_in_another_process(pg_store: PostgresEventStore, pg_dsn: str) -> None:
    other_pool = await create_pool(pg_dsn, min_size=1, max_size=3)
    other = PostgresEventStore(other_pool)
    await other.listen()
    collector = Collector("remote")
    runner = CountedReactorRunner(other, collector, poll_interval=30)
    task = asyncio.create_task(runner.run())
    try:
        await runner.steps.wait_for(1)  # caught up: from now on only a wake-up makes it read soon
        await pg_store.append("case-1", [NewEvent("Registered", {})], NO_STREAM)
        await until(lambda: bool(collector.positions), 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await other.close()
        await other_pool.close()


@pytest.mark.parametrize("table", ["events", "seals"])
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {t} SET hash = hash", "DELETE FROM {t}", "TRUNCATE {t}"],
)
async def test_the_database_refuses_changes_to_the_log(
    pg_store: PostgresEventStore, table: str, statement: str
) -> None:
    await pg_store.append("case-1", [NewEvent("Registered", {})], NO_STREAM)
    async with pg_store.connection() as conn:
        await conn.execute(
            "INSERT INTO seals (seq, after_tx, after_position, last_tx, last_position, event_count, "
            "positions, streams, hashes, keyed, prev_hash, hash) "
            "VALUES (1, '0', 0, '1', 1, 1, '{1}', '{case-1}', '{}', false, '', '')")
        with pytest.raises(asyncpg.PostgresError, match="append-only") as refused:
            await conn.execute(statement.format(t=table))
    assert refused.value.sqlstate == "IX403"



async def test_notify_wakes_readers_in_other_processes_by_category(pg_dsn: str) -> None:
    """The coalesced NOTIFY names the categories appended to; a reader elsewhere wakes only for its own."""
    pools = [await create_pool(pg_dsn, min_size=1, max_size=3) for _ in range(2)]
    writer, reader = PostgresEventStore(pools[0]), PostgresEventStore(pools[1])
    try:
        await reader.listen()
        calls, everything = reader.wakeup(frozenset({"call"})), reader.wakeup()
        await writer.append("sms-1", [NewEvent("Received", {})], NO_STREAM)
        assert await everything.wait(3)  # the NOTIFY for sms-1 arrived, and one callback set
        assert not calls.is_set()  # every latch it wakes: it did not wake the reader of calls
        await writer.append("call-1", [NewEvent("Abandoned", {})], NO_STREAM)
        assert await calls.wait(3)
        calls.clear()
        async with writer.connection() as conn:  # a NOTIFY without categories wakes everyone
            await conn.execute("SELECT pg_notify('intake_events', '')")
        assert await calls.wait(3)
    finally:
        for store in (writer, reader):
            await store.close()
        for pool in pools:
            await pool.close()


async def test_pending_looks_only_at_the_categories_read(pg_store: PostgresEventStore, pg_dsn: str) -> None:
    """Events of other categories waiting behind an open transaction do not make a reader poll."""
    await pg_store.append("call-1", [NewEvent("Abandoned", {})], NO_STREAM)
    blocker = await asyncpg.connect(pg_dsn)
    try:
        open_tx = blocker.transaction()
        await open_tx.start()
        await blocker.execute("SELECT pg_current_xact_id()")  # an older transaction still running
        await pg_store.append("sms-1", [NewEvent("Received", {})], NO_STREAM)
        await pg_store.append("timer-1", [NewEvent("Due", {})], NO_STREAM)
        after_call = (await pg_store.read_batch(Checkpoint(), categories=frozenset({"call"}))).events[-1][0]
        sms = await pg_store.read_batch(after_call, categories=frozenset({"sms"}))
        both = await pg_store.read_batch(after_call, categories=frozenset({"sms", "timer"}))
        calls = await pg_store.read_batch(after_call, categories=frozenset({"call"}))
        others = await pg_store.read_batch(after_call, categories=frozenset({"call", "case"}))
        assert (sms.pending, both.pending) == (True, True)
        assert (calls.pending, others.pending) == (False, False)
        await open_tx.rollback()
    finally:
        await blocker.close()


async def test_a_standalone_checkpoint_save_does_not_leave_async_commit_on_the_connection(
    pg_dsn: str,
) -> None:
    """save_checkpoint commits without waiting for the WAL flush, for its own transaction only."""
    pool = await create_pool(pg_dsn, min_size=1, max_size=1)
    store = PostgresEventStore(pool)
    try:
        await store.append("case-1", [NewEvent("Registered", {})], NO_STREAM)
        [(checkpoint, _)] = await store.read_all(Checkpoint())
        await store.save_checkpoint("reactor-x", checkpoint)
        assert await store.load_checkpoint("reactor-x") == checkpoint
        async with pool.acquire() as conn:  # the pool's only connection, the one that saved
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await store.close()
        await pool.close()


async def test_a_busy_pool_makes_a_caller_wait_at_most_the_acquire_timeout(pg_dsn: str) -> None:
    """An idle connection is handed over at once; a wait for one ends in StoreUnavailable."""
    pool = await create_pool(pg_dsn, min_size=1, max_size=1)
    store = PostgresEventStore(pool, acquire_timeout=0.2)
    try:
        await store.append("case-1", [NewEvent("Registered", {})], NO_STREAM)  # idle: no wait
        async with pool.acquire():  # the pool's only connection is taken
            started = asyncio.get_running_loop().time()
            with pytest.raises(StoreUnavailable):
                await store.append("case-2", [NewEvent("Registered", {})], NO_STREAM)
            assert 0.15 < asyncio.get_running_loop().time() - started < 2.0
        assert (await store.append("case-2", [NewEvent("Registered", {})], NO_STREAM)).first_version == 0
    finally:
        await store.close()
        await pool.close()


# -- append_many_on: several appends in the caller's transaction (the outbox, the sender)


def _args(stream: str, n: int, expected: int = ANY, key: str | None = None) -> AppendArgs:
    return AppendArgs.of(stream, [NewEvent("Noted", {"n": n})], expected, key)


async def test_several_appends_in_one_transaction_each_get_their_own_answer_in_order(
    pg_store: PostgresEventStore,
) -> None:
    """The outbox and the sender append many at once: each append keeps its own semantics and its
    answer sits at its own place, whatever order the streams are locked in. Bugs: answers in lock
    order, a refusal failing the others, a duplicate or conflict not told, a retry lost."""
    await pg_store.append("case-m1", [NewEvent("Noted", {"n": 0})], NO_STREAM, idempotency_key="m-dup")
    async with pg_store.connection() as conn, conn.transaction():
        answers = await append_many_on(conn, [
            _args("case-m3", 1, NO_STREAM),
            _args("case-m1", 2, 5),  # wrong expected version (actual 0)
            _args("case-m1", 3, key="m-dup"),  # the key's first append: a duplicate
            _args("case-m2", 4, key="m-dup"),  # the same key on another stream: a conflict
            _args("case-m0", 5, NO_STREAM),
        ])
    first, wrong, duplicate, conflict, last = answers
    assert isinstance(first, AppendResult) and first.stream == "case-m3" and not first.duplicate
    assert isinstance(wrong, WrongExpectedVersion) and (wrong.stream, wrong.expected, wrong.actual) == (
        "case-m1", 5, 0)
    assert isinstance(duplicate, AppendResult) and duplicate.duplicate and duplicate.stream == "case-m1"
    assert isinstance(conflict, IdempotencyConflict)
    assert isinstance(last, AppendResult) and last.stream == "case-m0"
    assert [e.data["n"] for e in await pg_store.read_stream("case-m1")] == [0]
    assert [e.data["n"] for e in await pg_store.read_stream("case-m3")] == [1]


async def test_more_appends_than_one_statement_takes_are_all_written_in_order(
    pg_store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond 64 appends (one statement's subtransactions) the rest go in further statements, each
    locking its streams in stream order. Bugs: appends left to one plain append each (a round
    trip and a statement per append), streams locked in arrival order (racing batches deadlock)."""
    statements: list[list[str]] = []
    fetch = asyncpg.connection.Connection.fetch

    async def counted(self: asyncpg.Connection, query: str, *args: object, **kwargs: object) -> object:
        statements.append(list(args[0]) if query == APPEND_MANY else [query])  # type: ignore[call-overload]
        return await fetch(self, query, *args, **kwargs)

    streams = [f"case-b{n:03d}" for n in reversed(range(150))]
    async with pg_store.connection() as conn, conn.transaction():
        monkeypatch.setattr(asyncpg.connection.Connection, "fetch", counted)
        answers = await append_many_on(conn, [_args(s, n, NO_STREAM) for n, s in enumerate(streams)])
        monkeypatch.undo()
    assert statements == [sorted(streams)[:64], sorted(streams)[64:128], sorted(streams)[128:]]
    assert [a.stream for a in answers if isinstance(a, AppendResult)] == streams
    for n, stream in enumerate(streams):
        assert [e.data["n"] for e in await pg_store.read_stream(stream)] == [n]


async def test_appends_of_a_transaction_that_rolls_back_are_not_written(pg_store: PostgresEventStore) -> None:
    async with pg_store.connection() as conn:
        transaction = conn.transaction()
        await transaction.start()
        [answer] = await append_many_on(conn, [_args("case-r1", 1, NO_STREAM)])
        assert isinstance(answer, AppendResult)
        await transaction.rollback()
    assert await pg_store.stream_version("case-r1") == NO_STREAM


async def test_an_append_that_races_another_transaction_is_settled_on_its_own(
    pg_store: PostgresEventStore,
) -> None:
    """A new stream and a key another transaction wrote meanwhile: the batch's first append (in
    stream order) waits for that transaction, is answered 'retry' and settled by a plain append:
    a wrong expected version; the key, seen committed by then, answers a duplicate. Bug: the
    settled refusal lost."""
    async with pg_store.connection() as first, pg_store.connection() as second:
        transaction = first.transaction()
        await transaction.start()
        await append_on(first, "case-x1", [NewEvent("Noted", {"n": 1})], NO_STREAM, idempotency_key="x-key")

        await append_on(first, "case-a3", [NewEvent("Noted", {"n": 4})], NO_STREAM)

        async def batch() -> list[AppendResult | Exception]:
            async with second.transaction():
                return list(await append_many_on(second, [_args("case-x1", 2, ANY, "x-key"),
                                                          _args("case-x2", 3, NO_STREAM),
                                                          _args("case-a3", 5, NO_STREAM)]))

        racing = asyncio.create_task(batch())
        await asyncio.sleep(0.2)  # the batch waits on the first transaction's stream (case-a3 first)
        await transaction.commit()
        raced, other, lost = await racing
    assert isinstance(raced, AppendResult) and raced.duplicate
    assert isinstance(other, AppendResult) and other.stream == "case-x2"
    assert isinstance(lost, WrongExpectedVersion) and (lost.stream, lost.actual) == ("case-a3", 0)
    assert [e.data["n"] for e in await pg_store.read_stream("case-x1")] == [1]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


async def test_a_sorted_page_sends_only_the_rows_it_returns(pg_store: PostgresEventStore,
                                                           pg_pool: asyncpg.Pool) -> None:
    """A typed read of a category leaves the planner no index order: it may sort every candidate
    row and keep a page. The rows' JSON is turned into bytes (`jsonb_send`) above that sort, for
    the page only. Bug: the conversion below the sort, for every candidate (a worker's typed
    reads cost the server two to three times as much)."""
    await pg_store.append("case-s1", [NewEvent("Wanted", {"n": 1}), NewEvent("Other", {"n": 2})], NO_STREAM)
    sql = _batch_sql(frozenset({"case"}), typed=True)
    async with pg_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_indexscan = off")  # the plan a big category gets
        [plan] = await conn.fetchval(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}", "0", 0, 10, "case", ["Wanted"])
        batch = await read_batch_on(conn, Checkpoint(), categories=frozenset({"case"}),
                                    types=frozenset({"Wanted"}))
    nodes = _nodes(plan["Plan"])
    sorts = [node for node in nodes if node["Node Type"] == "Sort"]
    assert sorts, "no sort to check"
    assert not any("jsonb_send" in column for node in sorts for column in node["Output"])
    assert [record.data for _, record in batch.events] == [{"n": 1}]


def _removed(plan: dict[str, Any]) -> int:
    return sum(int(node.get("Rows Removed by Filter", 0)) for node in _nodes(plan))


@pytest.mark.parametrize("typed", [False, True])
async def test_a_caught_up_read_of_several_categories_looks_at_no_other_rows(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, typed: bool,
) -> None:
    """A reader of categories with no recent event (`sms` once long ago, `call` never), caught
    up behind a flood of another category, reads nothing and looks at no row of the flood.
    Bug: the newest event of each category sought by a backward scan of the whole read order
    (a generic plan's choice: 2.5-4 ms a poll, every runner, every poll, in a storm); the
    pending flag worked out for every row of the page."""
    for n in range(20):  # half the log is SMS, all of it older than the flood
        await pg_store.append(f"sms-{n}", [NewEvent("Received", {"n": i}) for i in range(100)], NO_STREAM)
    for n in range(20):
        await pg_store.append(f"case-f{n}", [NewEvent("Noted", {"n": i}) for i in range(100)], NO_STREAM)
    categories = frozenset({"sms", "call"})
    sql = _batch_sql(categories, typed=typed)
    async with pg_pool.acquire() as conn, conn.transaction():
        await conn.execute("ANALYZE events")
        end = await conn.fetchrow("SELECT tx_id::text AS tx, position FROM events "
                                  "ORDER BY tx_id DESC, position DESC LIMIT 1")
        args: list[Any] = [end["tx"], end["position"], 1000, sorted(categories)]
        if typed:
            args.append(["Received"])
        # The plan a runner's prepared read gets after its first few runs: one for any category.
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        [plan] = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    shown = [(n["Node Type"], n.get("Index Name"), n.get("Rows Removed by Filter"))
             for n in _nodes(plan["Plan"])]
    assert _removed(plan["Plan"]) < 20, shown
