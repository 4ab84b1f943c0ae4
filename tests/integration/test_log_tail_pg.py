"""The shared tail of the log (`eventstore/tail.py`) on PostgreSQL: the same pages as a read of
one's own, as fresh, shared by concurrent readers; and the horizon's cheaper identification."""

from __future__ import annotations

import asyncio
import random

import asyncpg

from eventstore import ANY, Checkpoint, NewEvent, RecordedEvent
from eventstore.postgres import PostgresEventStore, _open, read_batch_on, read_tail_on
from eventstore.records import ReadBatch
from eventstore.tail import LogTail, TailPage

CATEGORIES = ("case", "call", "sms", "task")
TYPES = ("A", "B", "C")


def _page(batch: ReadBatch) -> tuple[list[tuple[tuple[int, int], int, str]], bool, tuple[int, int] | None]:
    return ([(c.order, e.position, e.type) for c, e in batch.events], batch.pending,
            None if batch.skipped_to is None else batch.skipped_to.order)


async def _fill(store: PostgresEventStore, rng: random.Random, count: int) -> None:
    async with asyncio.TaskGroup() as group:  # concurrent appends: read order is not position order
        for n in range(count):
            category = rng.choice(CATEGORIES)
            group.create_task(store.append(f"{category}-{rng.randint(0, 30)}",
                                           [NewEvent(rng.choice(TYPES), {"n": n})], ANY))


async def test_every_page_from_the_tail_is_the_page_a_read_of_its_own_gives(
    pg_store: PostgresEventStore,
) -> None:
    rng = random.Random(7)
    await _fill(pg_store, rng, 400)
    async with pg_store.connection() as conn:
        whole = (await read_batch_on(conn, Checkpoint(), limit=10_000)).events
        assert len(whole) == 400
        checkpoints = [Checkpoint(), *(c for c, _ in whole)]
        tail = LogTail(read_tail_on, _open, page=97)  # refreshes end mid-way through reads
        answered = 0
        for _ in range(300):
            after = rng.choice(checkpoints)
            categories = rng.choice([None, frozenset({rng.choice(CATEGORIES)}),
                                     frozenset(rng.sample(CATEGORIES, 2))])
            types = rng.choice([None, frozenset({rng.choice(TYPES)}), frozenset(rng.sample(TYPES, 2))])
            limit = rng.choice([1, 5, 50, 1000])
            own = await read_batch_on(conn, after, limit=limit, categories=categories, types=types)
            shared = await tail.read(conn, after, limit=limit, categories=categories, types=types)
            if shared is not None:
                answered += 1
                assert _page(shared) == _page(own), (after, categories, types, limit)
        # Reads before the stretch's start are left to the caller; most start inside it.
        assert answered > 200


async def test_a_read_sees_every_event_committed_before_it_without_a_wakeup(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    shared = PostgresEventStore(pg_pool, shared_reads=True)
    first = await shared.append("case-1", [NewEvent("A", {})], ANY)
    assert [e.position for _, e in (await shared.read_batch(Checkpoint())).events] == list(first.positions)
    # another process: the shared store is not woken by its append
    second = await pg_store.append("case-2", [NewEvent("B", {})], ANY)
    batch = await shared.read_batch(Checkpoint(), categories=frozenset({"case"}))
    assert [e.position for _, e in batch.events] == [*first.positions, *second.positions]
    assert shared.tail is not None and shared.tail.refreshes == 2 and pg_store.tail is None
    await shared.close()


async def test_concurrent_readers_share_refreshes_and_each_gets_its_own_page(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool,
) -> None:
    await _fill(pg_store, random.Random(3), 120)
    tail = LogTail(read_tail_on, _open)
    assert tail.refreshes == 0

    async def read(categories: frozenset[str]) -> ReadBatch | None:
        async with pg_pool.acquire() as conn:
            return await tail.read(conn, Checkpoint(), limit=1000, categories=categories)

    await read(frozenset({"case"}))
    assert tail.refreshes == 1
    readers = [frozenset({category}) for category in CATEGORIES] * 5
    pages = await asyncio.gather(*(read(categories) for categories in readers))
    for categories, page in zip(readers, pages, strict=True):  # every one answered by the tail
        assert page is not None and page.events and {e.category for _, e in page.events} == categories
    # 20 readers at the end of the stretch: one refresh in flight, the rest share the next.
    assert 2 <= tail.refreshes <= 3


async def test_pending_names_only_the_categories_read_that_wait_behind_the_horizon(
    pg_store: PostgresEventStore, pg_dsn: str,
) -> None:
    await pg_store.append("case-1", [NewEvent("A", {})], ANY)
    older = await asyncpg.connect(pg_dsn)
    try:
        async with older.transaction():
            await older.fetchval("SELECT pg_current_xact_id()")  # holds the horizon
            await pg_store.append("call-1", [NewEvent("A", {})], ANY)  # committed, held back
            async with pg_store.connection() as conn:
                tail = LogTail(read_tail_on, _open)
                for categories, pending in ((frozenset({"case"}), False), (frozenset({"call"}), True),
                                            (None, True), (frozenset({"case", "call"}), True)):
                    page = await tail.read(conn, Checkpoint(), limit=10, categories=categories)
                    own = await read_batch_on(conn, Checkpoint(), limit=10, categories=categories)
                    assert page is not None and (page.pending, own.pending) == (pending, pending)
    finally:
        await older.close()


async def test_a_page_is_pending_when_the_refresh_could_not_name_the_settling_categories(
    pg_store: PostgresEventStore,
) -> None:
    async def unnamed(conn: asyncpg.Connection, after: Checkpoint, limit: int) -> TailPage:
        return TailPage((), None)  # more rows settle than a refresh names

    tail = LogTail(unnamed, _open)
    async with pg_store.connection() as conn:
        page = await tail.read(conn, Checkpoint(), limit=10, categories=frozenset({"case"}))
    assert page is not None and page.pending


async def test_typed_reads_of_categories_with_no_events_skip_nothing(pg_store: PostgresEventStore) -> None:
    async with pg_store.connection() as conn:
        tail = LogTail(read_tail_on, _open)
        empty = await tail.read(conn, Checkpoint(), limit=10, types=frozenset({"A"}))  # an empty log
        assert empty is not None and (empty.events, empty.skipped_to) == ((), None)
        await pg_store.append("case-1", [NewEvent("A", {})], ANY)
        page = await tail.read(conn, Checkpoint(), limit=10, categories=frozenset({"call"}),
                               types=frozenset({"A"}))
        assert page is not None and (page.events, page.skipped_to) == ((), None)


async def test_reads_outside_the_stretch_are_left_to_the_caller_and_old_events_are_forgotten(
    pg_store: PostgresEventStore,
) -> None:
    await _fill(pg_store, random.Random(5), 60)
    async with pg_store.connection() as conn:
        whole = (await read_batch_on(conn, Checkpoint(), limit=1000)).events
        tail = LogTail(read_tail_on, _open, keep=20, page=10)
        middle = whole[29][0]
        assert await tail.read(conn, middle, limit=5) is not None  # starts the stretch there
        assert await tail.read(conn, whole[10][0], limit=5) is None  # before it
        after, seen = middle, []
        while (page := await tail.read(conn, after, limit=4)) is not None and page.events:
            seen.extend(c for c, _ in page.events)
            after = seen[-1]
            assert len(tail) <= 20 + 20 // 4  # keeps about `keep`
        assert page is not None and seen == [c for c, _ in whole[30:]]
        assert await tail.read(conn, middle, limit=5) is None  # forgotten
        # What it keeps it answers as a read of its own would, from the last event it forgot on.
        answered = 0
        for checkpoint in [Checkpoint(), *(c for c, _ in whole)]:
            for categories, types in ((None, None), (None, frozenset({"A"})),
                                      (frozenset({"case", "call"}), frozenset({"A"}))):
                shared = await tail.read(conn, checkpoint, limit=3, categories=categories, types=types)
                if shared is not None:
                    answered += types is None
                    own = await read_batch_on(conn, checkpoint, limit=3, categories=categories, types=types)
                    assert _page(shared) == _page(own)
        assert answered == len(tail) + 1


async def test_a_failed_refresh_leaves_its_waiters_to_read_on_their_own(pg_store: PostgresEventStore) -> None:
    started = asyncio.Event()

    async def failing(conn: asyncpg.Connection, after: Checkpoint, limit: int) -> TailPage:
        started.set()
        await asyncio.sleep(0.05)
        raise asyncpg.PostgresError("refresh failed")

    tail = LogTail(failing, _open)
    async with pg_store.connection() as one, pg_store.connection() as two:
        leader = asyncio.create_task(tail.read(one, Checkpoint(), limit=5))
        await started.wait()
        assert await tail.read(two, Checkpoint(), limit=5) is None  # waited, then told to read itself
        try:
            await leader
        except asyncpg.PostgresError:
            pass
        else:
            raise AssertionError("the leader's own read should fail as a read of its own would")


async def test_the_horizons_identification_scans_no_table_and_keeps_our_oldest_transaction(
    pg_store: PostgresEventStore, pg_dsn: str, pg_admin_dsn: str
) -> None:
    here, elsewhere, reader = (await asyncpg.connect(pg_dsn), await asyncpg.connect(pg_admin_dsn),
                               await asyncpg.connect(pg_dsn))
    try:
        await pg_store.append("case-0", [NewEvent("A", {}) for _ in range(300)], ANY)
        async with here.transaction(), elsewhere.transaction():
            ours = int(await here.fetchval("SELECT pg_current_xact_id()::text::bigint"))  # the oldest
            await elsewhere.fetchval("SELECT pg_current_xact_id()")  # another database's, younger
            await pg_store.append("case-1", [NewEvent("B", {})], ANY)  # held back by ours
            async with reader.transaction():
                # Past plpgsql's five custom plans: a generic plan's EXISTS scanned the whole table.
                horizons = {await reader.fetchval("SELECT intake_horizon_identified()::text::bigint")
                            for _ in range(12)}
                scans = await reader.fetchval(
                    "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'events'")
            assert horizons == {ours}
            assert scans == 0
    finally:
        for conn in (here, elsewhere, reader):
            await conn.close()


async def test_a_read_does_not_take_a_refresh_that_began_before_it(pg_store: PostgresEventStore) -> None:
    read, release = asyncio.Event(), asyncio.Event()

    async def slow(conn: asyncpg.Connection, after: Checkpoint, limit: int) -> TailPage:
        page = await read_tail_on(conn, after, limit)
        read.set()
        await release.wait()
        return page

    tail = LogTail(slow, _open)
    async with pg_store.connection() as one, pg_store.connection() as two:
        early = asyncio.create_task(tail.read(one, Checkpoint(), limit=10))
        await read.wait()  # its statement has run: it cannot hold what commits now
        appended = await pg_store.append("case-1", [NewEvent("A", {})], ANY)
        late = asyncio.create_task(tail.read(two, Checkpoint(), limit=10))
        await asyncio.sleep(0.05)
        release.set()
        assert [e.position for _, e in (await early or ReadBatch(())).events] == []
        assert [e.position for _, e in (await late or ReadBatch(())).events] == list(appended.positions)


async def test_a_skip_point_never_passes_events_added_while_the_page_was_opened(
    pg_store: PostgresEventStore,
) -> None:
    await pg_store.append("case-1", [NewEvent("A", {}), NewEvent("B", {})], ANY)
    added: list[int] = []

    async def opening(conn: asyncpg.Connection, records: list[RecordedEvent]) -> list[RecordedEvent]:
        if not added:  # while the first page is opened, a B arrives and another read takes it in
            added.extend((await pg_store.append("case-2", [NewEvent("B", {})], ANY)).positions)
            async with pg_store.connection() as other:
                await tail.read(other, Checkpoint(), limit=10)
        return await _open(conn, records)

    tail = LogTail(read_tail_on, opening)
    async with pg_store.connection() as conn:
        page = await tail.read(conn, Checkpoint(), limit=10, types=frozenset({"A"}))
    assert page is not None and [e.type for _, e in page.events] == ["A"]
    # Past the B read with it, not past the one it never saw.
    assert page.skipped_to is not None and page.skipped_to.position < added[0]


async def test_reads_within_the_gap_share_one_refresh_that_still_starts_after_them(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool,
) -> None:
    """A busy worker's runners re-poll within milliseconds: the reads arriving within `gap` of the
    last refresh wait for one refresh together, which starts after them (so sees what they must)."""
    started: list[float] = []

    async def timed(conn: asyncpg.Connection, after: Checkpoint, limit: int) -> TailPage:
        started.append(asyncio.get_running_loop().time())
        return await read_tail_on(conn, after, limit)

    tail = LogTail(timed, _open, gap=0.3)
    async with pg_store.connection() as first:
        assert await tail.read(first, Checkpoint(), limit=10) is not None
    appended = await pg_store.append("case-1", [NewEvent("A", {})], ANY)  # committed before the reads

    async def read() -> list[int]:
        async with pg_pool.acquire() as conn:
            batch = await tail.read(conn, Checkpoint(), limit=10)
        assert batch is not None
        return [e.position for _, e in batch.events]

    pages = await asyncio.gather(*(read() for _ in range(6)))
    assert pages == [list(appended.positions)] * 6
    assert tail.refreshes == len(started) == 2  # six reads, one refresh between them
    assert started[1] - started[0] >= 0.3
