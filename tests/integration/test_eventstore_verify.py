"""`verify` itself: one snapshot, long queries, the counts and warnings of its report.

The tamper tests prove that each kind of tampering is named; these prove that the
report around it is right: what a concurrent writer, a slow server, a seal boundary
inside a transaction or a forged seal would otherwise get wrong.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from eventstore import NO_STREAM, NewEvent
from eventstore.postgres import PostgresEventStore, create_pool
from eventstore.seals import Sealer
from eventstore.tamper import verify

_WAITING = """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
    AND wait_event_type = 'Lock' AND clock_timestamp() - query_start > make_interval(secs => $1)"""


async def _seal_all(store: PostgresEventStore, sealer: Sealer) -> None:
    """Seal until nothing is unsealed (an unrelated open transaction on the server holds the horizon)."""
    deadline = time.monotonic() + 10
    while (await verify(store.pool, key=b"secret")).unsealed:
        assert time.monotonic() < deadline, "the log was never sealed"
        if not await sealer.seal_pending():
            await asyncio.sleep(0.05)


async def _waiting_on_a_lock(pool: asyncpg.Pool, task: asyncio.Task[object], longer_than: float) -> None:
    """Wait until a session of this database has waited on a lock for `longer_than` seconds."""
    async with asyncio.timeout(10):
        while not await pool.fetchval(_WAITING, longer_than):
            assert not task.done(), task
            await asyncio.sleep(0.01)


async def _sealed_keyed(store: PostgresEventStore) -> None:
    """Five events in three keyed seals (2 + 2 + 1)."""
    for n in range(5):
        await store.append(f"case-{n}", [NewEvent("Noted", {"n": n})], NO_STREAM)
    await _seal_all(store, Sealer(store.pool, key=b"secret", max_events=2))


async def test_an_event_committed_during_verify_is_neither_checked_nor_counted_unsealed(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    """The chains are read first and the unsealed count last: in one snapshot they agree."""
    await pg_store.append("case-1", [NewEvent("Noted", {}), NewEvent("Noted", {})], NO_STREAM)
    locker = await asyncpg.connect(pg_dsn)
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE seals IN ACCESS EXCLUSIVE MODE")
        running = asyncio.ensure_future(verify(pg_store.pool))
        await _waiting_on_a_lock(pg_store.pool, running, 0)  # past the chains, reading the seals
        await pg_store.append("case-2", [NewEvent("Noted", {})], NO_STREAM)
        await tx.rollback()
    finally:
        await locker.close()
    report = await running
    assert (report.ok, report.checked, report.unsealed) == (True, 2, 2)
    assert (await verify(pg_store.pool)).unsealed == 3


async def test_a_query_longer_than_the_pools_command_timeout_completes(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    """The app's pool cuts a request's query after a few seconds; a verification may read for longer."""
    await pg_store.append("case-1", [NewEvent("Noted", {})], NO_STREAM)
    pool = await create_pool(pg_dsn, min_size=1, max_size=2, command_timeout=0.2)
    locker = await asyncpg.connect(pg_dsn)
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        running = asyncio.ensure_future(verify(pool))
        await _waiting_on_a_lock(pg_store.pool, running, 0.6)  # three command timeouts
        await tx.rollback()
        report = await running
    finally:
        await locker.close()
        await pool.close()
    assert (report.ok, report.checked, report.unsealed) == (True, 1, 1)


async def test_events_after_a_seal_boundary_inside_a_transaction_count_as_unsealed(
    pg_store: PostgresEventStore,
) -> None:
    """A seal may end inside a transaction: the events after it, in the same transaction, are unsealed."""
    await pg_store.append("case-1", [NewEvent("Noted", {"n": n}) for n in range(3)], NO_STREAM)
    sealer = Sealer(pg_store.pool, max_events=2)
    deadline = time.monotonic() + 10
    while await sealer.seal_once() is None:  # an unrelated open transaction holds the horizon
        assert time.monotonic() < deadline, "the log was never sealed"
        await asyncio.sleep(0.05)
    report = await verify(pg_store.pool)
    assert (report.ok, report.checked, report.seals, report.unsealed) == (True, 3, 1, 1)
    assert report.warnings == ("1 events are not sealed yet (deletions there are undetectable)",)


async def test_a_failed_verify_still_counts_the_seals_read_and_the_keyed_ones_unchecked(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    """Seals are counted up to the bad one, whether a seal's link or an event in its range is bad."""
    await _sealed_keyed(pg_store)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        first, = await conn.fetchrow("SELECT positions[1] FROM seals WHERE seq = 2")
        await conn.execute("DELETE FROM events WHERE position = $1", first)  # a lone event: no chain break
        in_range = await verify(pg_store.pool)
        await conn.execute("DELETE FROM seals WHERE seq = 2")
        link = await verify(pg_store.pool)
    finally:
        await conn.close()
    assert in_range.first_bad is not None and in_range.first_bad.position == first
    assert in_range.first_bad.reason == "deleted: sealed in seal 2, now missing"
    assert link.first_bad is not None and link.first_bad.reason == "seal 2 is missing (seals deleted)"
    for report in (in_range, link):
        assert report.seals == 2
        assert report.warnings[0] == "2 keyed seals not authenticated: INTAKE_SEAL_KEY is not set"


async def test_a_forged_seal_listing_no_event_is_named_at_the_end_of_the_seal_before(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    """The sealer never writes an empty seal; a forged one names no stream, and the position it follows."""
    await pg_store.append("case-1", [NewEvent("Noted", {})], NO_STREAM)
    await _seal_all(pg_store, Sealer(pg_store.pool, key=b"secret"))
    conn = await asyncpg.connect(pg_dsn)
    try:
        last_position = await conn.fetchval("SELECT last_position FROM seals WHERE seq = 1")
        await conn.execute(
            """INSERT INTO seals (seq, after_tx, after_position, last_tx, last_position, event_count,
                                  positions, streams, hashes, keyed, prev_hash, hash)
               SELECT 3, last_tx, last_position, last_tx, last_position, 1, '{}', '{}', '{}',
                      false, hash, '\\x00' FROM seals WHERE seq = 1""")
    finally:
        await conn.close()
    report = await verify(pg_store.pool, key=b"secret")
    assert report.first_bad is not None
    assert report.first_bad.as_json() == {
        "stream": "", "position": last_position, "reason": "seal 2 is missing (seals deleted)"}
