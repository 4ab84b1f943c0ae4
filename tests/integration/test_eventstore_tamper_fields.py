"""Tamper evidence covers every field of a stored event, not only its data.

Each test alters ONE field of one stored event the way a superuser would (past
the append-only trigger) and checks that `verify` - what `intake verify` and
`GET /api/v1/audit/verify` both run - names that event. The log is left
unsealed on purpose: then only the per-event hash can catch the change, so a
hash that skipped a field would let its change pass.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg
import pytest

from dispatch.core.messages import metadata
from eventstore import NO_STREAM, NewEvent
from eventstore.postgres import PostgresEventStore
from eventstore.seals import Sealer
from eventstore.tamper import check_chains, verify

_META = metadata(
    actor="agent:a-7", channel="phone", correlation_id="corr-1", causation_id="cause-1",
    received_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
)

# (name, SET clause) - each changes exactly one field of the target event.
CHANGES: list[tuple[str, str]] = [
    ("actor", """metadata = jsonb_set(metadata, '{actor}', '"agent:a-8"')"""),
    ("idempotency_key", """metadata = jsonb_set(metadata, '{idempotency_key}', '"api:other"')"""),
    ("correlation_id", """metadata = jsonb_set(metadata, '{correlation_id}', '"corr-2"')"""),
    ("causation_id", """metadata = jsonb_set(metadata, '{causation_id}', '"cause-2"')"""),
    ("received_at", """metadata = jsonb_set(metadata, '{received_at}', '"2026-11-23T07:00:00+00:00"')"""),
    ("channel", """metadata = jsonb_set(metadata, '{channel}', '"sms"')"""),
    ("metadata_key_removed", "metadata = metadata - 'actor'"),
    ("metadata_key_added", """metadata = metadata || '{"on_behalf_of": "x"}'"""),
    ("type", "type = 'CaseClosed'"),
    ("schema_version", "schema_version = 2"),
    ("recorded_at", "recorded_at = recorded_at - interval '1 hour'"),
    ("recorded_at_microsecond", "recorded_at = recorded_at + interval '1 microsecond'"),
]


async def _fill(store: PostgresEventStore) -> list[int]:
    """Two streams of two events each, with the metadata the domain writes; case-1's positions."""
    first = await store.append("case-1", [NewEvent("CaseRegistered", {"n": 0}, 1, _META),
                                          NewEvent("CaseAssigned", {"n": 1}, 1, _META)],
                               NO_STREAM, idempotency_key="api:k-1")
    await store.append("case-2", [NewEvent("CaseRegistered", {"n": 0}, 1, _META)], NO_STREAM)
    return list(first.positions)


async def _tamper(dsn: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def _seal_all(store: PostgresEventStore) -> None:
    """Seal until nothing is unsealed (an unrelated open transaction on the server holds the horizon)."""
    sealer = Sealer(store.pool)
    deadline = time.monotonic() + 10
    while (await verify(store.pool)).unsealed:
        assert time.monotonic() < deadline, "the log was never sealed"
        if not await sealer.seal_pending():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(("field", "change"), CHANGES, ids=[c[0] for c in CHANGES])
async def test_a_change_of_any_field_is_caught(
    pg_store: PostgresEventStore, pg_dsn: str, field: str, change: str
) -> None:
    positions = await _fill(pg_store)
    stored = (await pg_store.read_stream("case-1"))[0]
    assert stored.metadata["idempotency_key"] == "api:k-1"  # the field the key change alters
    assert (await verify(pg_store.pool)).ok
    await _tamper(pg_dsn, f"UPDATE events SET {change} WHERE position = $1", positions[0])
    report = await verify(pg_store.pool)
    assert not report.ok, field
    assert report.first_bad is not None
    assert (report.first_bad.stream, report.first_bad.position) == ("case-1", positions[0])
    assert report.first_bad.reason.startswith("modified"), report.first_bad.reason


async def test_moving_an_event_to_another_stream_is_caught(pg_store: PostgresEventStore, pg_dsn: str) -> None:
    """case-1 v1 re-labelled as case-2 v1: its hash named case-1, so it no longer matches."""
    positions = await _fill(pg_store)
    await _tamper(pg_dsn, "UPDATE events SET stream = 'case-2' WHERE position = $1", positions[1])
    report = await verify(pg_store.pool)
    assert report.first_bad is not None
    assert (report.first_bad.stream, report.first_bad.position) == ("case-2", positions[1])
    assert report.first_bad.reason.startswith("modified")


async def test_a_changed_version_is_caught(pg_store: PostgresEventStore, pg_dsn: str) -> None:
    """case-1 v1 renumbered v2: its hash named version 1 (checked before the gap it leaves)."""
    positions = await _fill(pg_store)
    await _tamper(pg_dsn, "UPDATE events SET version = 2 WHERE position = $1", positions[1])
    report = await verify(pg_store.pool)
    assert report.first_bad is not None
    assert (report.first_bad.stream, report.first_bad.position) == ("case-1", positions[1])
    assert report.first_bad.reason.startswith("modified")


async def test_a_changed_position_is_caught_by_the_seal(pg_store: PostgresEventStore, pg_dsn: str) -> None:
    """The position is not part of an event's hash (it is the log's, not the stream's): a seal covers it."""
    positions = await _fill(pg_store)
    await _seal_all(pg_store)
    await _tamper(pg_dsn, f"""
        CREATE TEMP TABLE moved AS SELECT * FROM events WHERE position = {positions[1]};
        UPDATE moved SET position = position + 1000;
        DELETE FROM events WHERE position = {positions[1]};
        INSERT INTO events OVERRIDING SYSTEM VALUE SELECT * FROM moved""")
    report = await verify(pg_store.pool)
    assert report.first_bad is not None
    assert (report.first_bad.stream, report.first_bad.position) == ("case-1", positions[1])
    assert report.first_bad.reason.startswith("deleted"), report.first_bad.reason


async def test_a_missing_seal_is_reported_at_the_first_event_of_the_seal_after_the_gap(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    await _fill(pg_store)
    await pg_store.append("case-3", [NewEvent("Noted", {}), NewEvent("Noted", {})], NO_STREAM)
    sealer = Sealer(pg_store.pool, max_events=2)
    deadline = time.monotonic() + 10
    while (await verify(pg_store.pool)).unsealed:
        assert time.monotonic() < deadline, "the log was never sealed"
        if not await sealer.seal_pending():
            await asyncio.sleep(0.05)
    conn = await asyncpg.connect(pg_dsn)
    try:
        stream, position = await conn.fetchrow("SELECT streams[1], positions[1] FROM seals WHERE seq = 3")
    finally:
        await conn.close()
    await _tamper(pg_dsn, "DELETE FROM seals WHERE seq = 2")
    report = await verify(pg_store.pool)
    assert report.first_bad is not None
    assert report.first_bad.reason == "seal 2 is missing (seals deleted)"
    assert (report.first_bad.stream, report.first_bad.position) == (stream, position)


async def test_events_reordered_within_a_seal_are_caught(pg_store: PostgresEventStore, pg_dsn: str) -> None:
    """Two events swap transactions: same events, same hashes, another read order."""
    positions = await _fill(pg_store)
    await _seal_all(pg_store)
    first = positions[0]  # case-1 v0 and case-2 v0: appended in two transactions
    second = (await pg_store.read_stream("case-2"))[0].position
    conn = await asyncpg.connect(pg_dsn)
    try:
        before = [r[0] for r in await conn.fetch("SELECT position FROM events ORDER BY tx_id, position")]
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE events e SET tx_id = o.tx_id FROM events o "
            "WHERE (e.position, o.position) IN (($1, $2), ($2, $1))", first, second)
        after = await conn.fetch("SELECT position, stream FROM events ORDER BY tx_id, position")
    finally:
        await conn.close()
    moved = next(r for r, p in zip(after, before, strict=True) if r["position"] != p)
    report = await verify(pg_store.pool)
    assert report.first_bad is not None
    assert report.first_bad.reason == "reordered within its seal"
    assert (report.first_bad.stream, report.first_bad.position) == (moved["stream"], moved["position"])


async def test_unkeyed_seals_stay_valid_when_a_key_is_given(pg_store: PostgresEventStore) -> None:
    """A key authenticates keyed seals only: seals written without one are checked without it."""
    await _fill(pg_store)
    await _seal_all(pg_store)
    assert (await verify(pg_store.pool, key=b"secret")).ok


async def test_one_streams_chain_is_checked_alone(pg_store: PostgresEventStore, pg_dsn: str) -> None:
    """`check_chains(conn, stream)` (the audit history's check) counts and judges that stream only."""
    positions = await _fill(pg_store)
    await _tamper(pg_dsn, """UPDATE events SET data = '{"n": 9}' WHERE position = $1""", positions[1])
    async with pg_store.pool.acquire() as conn:
        assert await check_chains(conn, "case-2") == (1, None)
        checked, broken = await check_chains(conn, "case-1")
        assert checked == 2 and broken is not None
        assert (broken.stream, broken.position, broken.kind) == ("case-1", positions[1], "modified")
        assert await check_chains(conn) == (3, broken)


async def test_the_report_counts_seals_and_keyed_seals_left_unauthenticated(
    pg_store: PostgresEventStore,
) -> None:
    await _fill(pg_store)
    await pg_store.append("case-3", [NewEvent("Noted", {}), NewEvent("Noted", {})], NO_STREAM)
    deadline = time.monotonic() + 10
    sealer = Sealer(pg_store.pool, key=b"secret", max_events=2)
    while (await verify(pg_store.pool, key=b"secret")).unsealed:
        assert time.monotonic() < deadline, "the log was never sealed"
        if not await sealer.seal_pending():
            await asyncio.sleep(0.05)
    keyed = await verify(pg_store.pool, key=b"secret")
    assert (keyed.ok, keyed.checked, keyed.seals, keyed.warnings) == (True, 5, 3, ())
    unkeyed = await verify(pg_store.pool)
    assert unkeyed.seals == 3
    assert unkeyed.warnings == ("3 keyed seals not authenticated: INTAKE_SEAL_KEY is not set",)
