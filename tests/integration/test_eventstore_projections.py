"""Projection runner on PostgreSQL: exactly-once effects, crash mid-batch, rebuild, publish."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import pytest

from eventstore import ANY, NewEvent, RecordedEvent
from eventstore.postgres import PostgresEventStore
from eventstore.subscriptions import BatchProjection, Change, ProjectionFailed, ProjectionRunner
from tests.steps import CountedProjectionRunner


async def until(condition: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Wait until `await condition()` holds, failing after `seconds`."""
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 (polls the database)
            await asyncio.sleep(0.01)


class Counts:
    """Counts events per stream in `t_counts`; fails once on a chosen position."""

    name = "counts"
    categories: frozenset[str] | None = frozenset({"case"})
    tables = ("t_counts",)

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.calls = 0

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """Count the event; blow up once at `fail_at` after writing (the crash)."""
        self.calls += 1
        await conn.execute(
            "INSERT INTO t_counts (stream, n) VALUES ($1, 1) "
            "ON CONFLICT (stream) DO UPDATE SET n = t_counts.n + 1",
            event.stream,
        )
        if event.position == self.fail_at:
            self.fail_at = None
            raise RuntimeError("crash mid-batch")
        return [Change("counts", {"stream": event.stream})]


async def _setup(store: PostgresEventStore, streams: int = 10, per_stream: int = 30) -> None:
    async with store.connection() as conn:
        await conn.execute("CREATE TABLE t_counts (stream text PRIMARY KEY, n integer NOT NULL)")
    for i in range(per_stream):
        await asyncio.gather(*(
            store.append(f"case-{s}", [NewEvent("Noted", {"i": i})], ANY) for s in range(streams)))
    await store.append("call-1", [NewEvent("Ignored", {})], ANY)


async def _counts(store: PostgresEventStore) -> dict[str, int]:
    async with store.connection() as conn:
        return {r["stream"]: r["n"] for r in await conn.fetch("SELECT stream, n FROM t_counts")}


async def _has_counts(store: PostgresEventStore, expected: dict[str, int]) -> bool:
    return await _counts(store) == expected


EXPECTED = {f"case-{s}": 30 for s in range(10)}


async def test_crash_mid_batch_rolls_back_and_retry_applies_once(pg_store: PostgresEventStore) -> None:
    await _setup(pg_store)
    published: list[Change] = []

    async def publish(changes: Sequence[Change]) -> None:
        published.extend(changes)

    projection = Counts(fail_at=150)
    runner = ProjectionRunner(pg_store, projection, publish=publish, batch_size=100)
    with pytest.raises(ProjectionFailed) as failed:
        await runner.run_until_caught_up()
    assert failed.value.position == 150
    assert sum((await _counts(pg_store)).values()) == 100  # the failed batch left nothing
    assert len(published) == 100  # only committed batches were published
    assert await runner.run_until_caught_up() == 200
    assert await _counts(pg_store) == EXPECTED
    assert len(published) == 300


async def test_run_retries_from_the_checkpoint_after_an_error(pg_store: PostgresEventStore) -> None:
    await _setup(pg_store)
    task = asyncio.create_task(ProjectionRunner(pg_store, Counts(fail_at=42), batch_size=50).run())
    try:
        await until(lambda: _has_counts(pg_store, EXPECTED), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_two_runners_of_one_projection_never_apply_twice(pg_store: PostgresEventStore) -> None:
    await _setup(pg_store)
    runners = [ProjectionRunner(pg_store, Counts(), batch_size=7) for _ in range(3)]
    applied = await asyncio.gather(*(r.run_until_caught_up() for r in runners))
    assert sum(applied) == 300
    assert await _counts(pg_store) == EXPECTED


async def test_live_projection_follows_appends(pg_store: PostgresEventStore) -> None:
    await _setup(pg_store, streams=1, per_stream=1)
    runner = CountedProjectionRunner(pg_store, Counts(), poll_interval=30)
    task = asyncio.create_task(runner.run())
    try:
        await runner.steps.wait_for(1)  # caught up: only following the log brings the next event
        await pg_store.append("case-0", [NewEvent("Noted", {})], ANY)
        await until(lambda: _has_counts(pg_store, {"case-0": 2}), 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_rebuild_truncates_and_replays_with_progress(pg_store: PostgresEventStore) -> None:
    await _setup(pg_store)
    runner = ProjectionRunner(pg_store, Counts(), batch_size=64)
    await runner.run_until_caught_up()
    async with pg_store.connection() as conn:
        await conn.execute("UPDATE t_counts SET n = 999")
    progress: list[tuple[int, int]] = []
    assert await runner.rebuild(lambda done, total: progress.append((done, total))) == 300
    assert await _counts(pg_store) == EXPECTED
    assert progress[0] == (0, 300)
    assert progress[-1] == (300, 300)


class BatchCounts(Counts):
    """`Counts` that also applies a whole batch in one statement (a `BatchProjection`)."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__(fail_at)
        self.batches = 0

    async def apply_batch(self, conn: asyncpg.Connection,
                          events: Sequence[RecordedEvent]) -> Sequence[Change]:
        self.batches += 1
        streams = [e.stream for e in events]
        await conn.execute(
            "INSERT INTO t_counts (stream, n) SELECT stream, count(*) FROM unnest($1::text[]) stream "
            "GROUP BY stream ON CONFLICT (stream) DO UPDATE SET n = t_counts.n + EXCLUDED.n", streams)
        if any(e.position == self.fail_at for e in events):
            raise RuntimeError("the batch failed")
        return [Change("counts", {"stream": s}) for s in streams]


async def test_a_batch_projection_applies_each_batch_at_once(pg_store: PostgresEventStore) -> None:
    await _setup(pg_store)
    projection = BatchCounts()
    assert isinstance(projection, BatchProjection)
    published: list[Change] = []

    async def publish(changes: Sequence[Change]) -> None:
        published.extend(changes)

    assert await ProjectionRunner(pg_store, projection, publish=publish,
                                  batch_size=100).run_until_caught_up() == 300
    assert await _counts(pg_store) == EXPECTED
    assert (projection.batches, projection.calls) == (3, 0)
    assert len(published) == 300


async def test_a_failed_batch_is_redone_event_by_event_naming_the_culprit(
    pg_store: PostgresEventStore,
) -> None:
    await _setup(pg_store)
    projection = BatchCounts(fail_at=150)  # the batch fails, then `apply` fails once on 150 too
    runner = ProjectionRunner(pg_store, projection, batch_size=100)
    with pytest.raises(ProjectionFailed) as failed:
        await runner.run_until_caught_up()
    assert failed.value.position == 150
    assert sum((await _counts(pg_store)).values()) == 100  # nothing of the failed batch stayed

    assert await runner.run_until_caught_up() == 200
    assert await _counts(pg_store) == EXPECTED


class CommitMode(Counts):
    """`Counts` that notes the `synchronous_commit` its transaction runs with."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: set[str] = set()

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        self.modes.add(await conn.fetchval("SELECT current_setting('synchronous_commit')"))
        return await super().apply(conn, event)


async def test_a_batch_commits_without_waiting_for_its_wal_flush_and_only_it(
    pg_store: PostgresEventStore,
) -> None:
    await _setup(pg_store, streams=2, per_stream=3)
    projection = CommitMode()
    assert await ProjectionRunner(pg_store, projection, batch_size=4).run_until_caught_up() == 6
    assert projection.modes == {"off"}  # the batch's own transaction (rows and checkpoint)
    assert await _counts(pg_store) == {"case-0": 3, "case-1": 3}
    for _ in range(3):  # every pooled session is back to the server's setting afterwards
        async with pg_store.connection() as conn:
            assert await conn.fetchval("SELECT current_setting('synchronous_commit')") == "on"


class TypedCounts(Counts):
    """`Counts` of the `Noted` events alone (`types`); it counts whatever it is handed."""

    name = "typed_counts"
    types = frozenset({"Noted"})


async def test_a_projection_of_some_types_skips_the_others_and_rebuilds_to_the_same(
    pg_store: PostgresEventStore
) -> None:
    await _setup(pg_store, streams=4, per_stream=5)
    for s in range(4):
        await pg_store.append(f"case-{s}", [NewEvent("Other", {})], ANY)
    runner = ProjectionRunner(pg_store, TypedCounts(), batch_size=3)
    assert await runner.run_until_caught_up() == 20
    expected = {f"case-{s}": 5 for s in range(4)}
    assert await _counts(pg_store) == expected

    async def checkpoints() -> set[int]:
        async with pg_store.connection() as conn:
            return {r["position"] for r in await conn.fetch(
                "SELECT position FROM checkpoints WHERE name LIKE 'typed_counts/%'")}

    async with pg_store.connection() as conn:
        newest = await conn.fetchval("SELECT max(position) FROM events WHERE category = 'case'")
    assert await checkpoints() == {newest}  # every partition past the `Other` events at the end
    progress: list[tuple[int, int]] = []
    assert await runner.rebuild(lambda done, total: progress.append((done, total))) == 20
    assert progress[0] == (0, 20)
    assert await _counts(pg_store) == expected
    assert await checkpoints() == {newest}
