"""Tamper evidence: a superuser who bypasses the append-only trigger is caught by verify."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from eventstore import ANY, Checkpoint, NewEvent
from eventstore.postgres import PostgresEventStore
from eventstore.seals import Sealer
from eventstore.tamper import verify
from gateway.cli.verify import run as run_verify
from gateway.settings import Settings, StoreSettings

Tamper = Callable[[asyncpg.Connection, dict[str, list[int]]], Awaitable[None]]


async def _fill(store: PostgresEventStore) -> dict[str, list[int]]:
    """Three streams: two of three events, one lone event; their positions by stream."""
    positions: dict[str, list[int]] = {}
    for stream, count in (("case-1", 3), ("case-2", 3), ("alarm-9", 1)):
        for i in range(count):
            result = await store.append(stream, [NewEvent("Noted", {"i": i})], ANY)
            positions.setdefault(stream, []).extend(result.positions)
    return positions


async def all_readable(store: PostgresEventStore, count: int) -> None:
    """Wait until readers (and so the sealer) see all `count` events: an unrelated open
    transaction on a shared server holds the commit horizon back for a moment."""
    async with asyncio.timeout(10):
        while True:
            batch = await store.read_batch(Checkpoint())
            if len(batch.events) == count and not batch.pending:
                return
            await asyncio.sleep(0.02)


async def seal(sealer: Sealer) -> int:
    """`seal_pending`, again while it finds nothing: an unrelated transaction on a shared server
    can hold the sealer's horizon back for a moment even after readers saw every event."""
    async with asyncio.timeout(10):
        while not (written := await sealer.seal_pending()):  # noqa: ASYNC110 (the server's horizon)
            await asyncio.sleep(0.02)
    return written


async def _bypass(conn: asyncpg.Connection) -> None:
    """What a superuser does to get past the append-only trigger."""
    await conn.execute("SET session_replication_role = replica")


async def modify(conn: asyncpg.Connection, pos: dict[str, list[int]]) -> None:
    """Change the data of case-1 version 1."""
    await _bypass(conn)
    await conn.execute("""UPDATE events SET data = '{"i": 42}' WHERE position = $1""", pos["case-1"][1])


async def delete_mid_stream(conn: asyncpg.Connection, pos: dict[str, list[int]]) -> None:
    """Delete case-1 version 1 (trigger disabled by ALTER TABLE)."""
    await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    await conn.execute("DELETE FROM events WHERE position = $1", pos["case-1"][1])
    await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


async def delete_tail(conn: asyncpg.Connection, pos: dict[str, list[int]]) -> None:
    """Delete the last event of case-2."""
    await _bypass(conn)
    await conn.execute("DELETE FROM events WHERE position = $1", pos["case-2"][2])


async def delete_lone(conn: asyncpg.Connection, pos: dict[str, list[int]]) -> None:
    """Delete the only event of alarm-9."""
    await _bypass(conn)
    await conn.execute("DELETE FROM events WHERE position = $1", pos["alarm-9"][0])


async def insert_forged_in_sealed_range(conn: asyncpg.Connection, pos: dict[str, list[int]]) -> None:
    """Insert a new stream's event with a valid hash, back-dated into the sealed range."""
    await conn.execute(
        """INSERT INTO events (position, tx_id, stream, category, version, type, schema_version,
                               data, metadata, recorded_at, prev_hash, hash)
           OVERRIDING SYSTEM VALUE
           SELECT $1, tx_id, 'case-99', 'case', 0, 'Forged', 1, '{}', '{}', recorded_at, '',
                  intake_event_hash('', 'case-99', 0, 'Forged', 1, '{}', '{}', recorded_at)
           FROM events WHERE position = $2""",
        pos["case-1"][0] + 1000, pos["case-1"][0],
    )


async def insert_into_stream(conn: asyncpg.Connection, pos: dict[str, list[int]]) -> None:
    """Insert an event into case-1 with a made-up hash."""
    await conn.execute(
        """INSERT INTO events (stream, category, version, type, schema_version, data, metadata,
                               prev_hash, hash)
           VALUES ('case-1', 'case', 3, 'Forged', 1, '{}', '{}', '\\x00', '\\x00')""")


async def rewrite_chain(conn: asyncpg.Connection, pos: dict[str, list[int]]) -> None:
    """Change case-2 version 1 and recompute its hash and every later hash of the stream."""
    await _bypass(conn)
    await conn.execute("""UPDATE events SET data = '{"i": 7}' WHERE position = $1""", pos["case-2"][1])
    for position in pos["case-2"][1:]:
        await conn.execute(
            """UPDATE events e SET
                   prev_hash = p.hash,
                   hash = intake_event_hash(p.hash, e.stream, e.version, e.type, e.schema_version,
                                            e.data, e.metadata, e.recorded_at)
               FROM events p WHERE e.position = $1 AND p.stream = e.stream
                   AND p.version = e.version - 1""",
            position,
        )


CASES: list[tuple[Tamper, str, int, str]] = [
    (modify, "case-1", 1, "modified"),
    (delete_mid_stream, "case-1", 1, "deleted"),
    (delete_tail, "case-2", 2, "deleted"),
    (delete_lone, "alarm-9", 0, "deleted"),
    (insert_forged_in_sealed_range, "case-99", -1, "inserted"),
    (insert_into_stream, "case-1", -1, "modified"),
    (rewrite_chain, "case-2", 1, "modified"),
]


@pytest.mark.parametrize(("tamper", "stream", "index", "reason"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_verify_names_the_first_bad_stream_and_position(
    pg_store: PostgresEventStore, pg_dsn: str, tamper: Tamper, stream: str, index: int, reason: str
) -> None:
    positions = await _fill(pg_store)
    await all_readable(pg_store, 7)
    assert await seal(Sealer(pg_store.pool)) == 1
    intact = await verify(pg_store.pool)
    assert intact.ok
    assert (intact.checked, intact.seals, intact.unsealed) == (7, 1, 0)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await tamper(conn, positions)
    finally:
        await conn.close()
    report = await verify(pg_store.pool)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad.stream == stream
    if index >= 0:
        assert report.first_bad.position == positions[stream][index]
    assert report.first_bad.reason.startswith(reason), report.first_bad.reason
    assert report.as_json()["first_bad"]["stream"] == stream


async def test_unsealed_mid_stream_deletion_is_caught_by_the_chain(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    positions = await _fill(pg_store)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await delete_mid_stream(conn, positions)
    finally:
        await conn.close()
    report = await verify(pg_store.pool)
    assert report.first_bad is not None
    assert (report.first_bad.stream, report.first_bad.position) == ("case-1", positions["case-1"][2])
    assert report.first_bad.reason.startswith("version gap")
    assert report.unsealed == 6


async def test_removed_or_rekeyed_seals_are_caught(pg_store: PostgresEventStore, pg_dsn: str) -> None:
    await _fill(pg_store)
    await all_readable(pg_store, 7)
    sealer = Sealer(pg_store.pool, key=b"secret", max_events=3)
    assert await seal(sealer) == 3
    assert (await verify(pg_store.pool, key=b"secret")).ok
    unkeyed = await verify(pg_store.pool)
    assert unkeyed.ok
    assert any("not authenticated" in w for w in unkeyed.warnings)
    wrong = await verify(pg_store.pool, key=b"guess")
    assert wrong.first_bad is not None
    assert "seal rewritten" in wrong.first_bad.reason
    conn = await asyncpg.connect(pg_dsn)
    try:
        await _bypass(conn)
        await conn.execute("DELETE FROM seals WHERE seq = 2")
    finally:
        await conn.close()
    gone = await verify(pg_store.pool, key=b"secret")
    assert gone.first_bad is not None
    assert gone.first_bad.reason == "seal 2 is missing (seals deleted)"


async def test_intake_verify_exit_codes(
    pg_store: PostgresEventStore, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    positions = await _fill(pg_store)
    await all_readable(pg_store, 7)
    await seal(Sealer(pg_store.pool))
    settings = Settings(stores=StoreSettings(database_url=pg_dsn, redis_url="redis://unused"))
    assert await run_verify(argparse.Namespace(), settings) == 0
    assert "intact: 7 events, 1 seals, 0 unsealed" in capsys.readouterr().out
    conn = await asyncpg.connect(pg_dsn)
    try:
        await delete_tail(conn, positions)
    finally:
        await conn.close()
    assert await run_verify(argparse.Namespace(), settings) == 1
    out = capsys.readouterr().out
    assert f"stream 'case-2' position {positions['case-2'][2]}" in out
