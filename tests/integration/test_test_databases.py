"""The test databases' pool (tests/databases.py): a database goes to the next test only as the
template made it. Bugs these catch: rows, or a sequence's position, carried into the next test;
a test's change of the schema (a table, a disabled trigger, a replaced function, a database
setting) carried into the next test instead of dropping the database; a database handed on while
a session of the last test is still in it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from bench.scratch import database_dsn
from eventstore.postgres import PostgresEventStore, create_pool
from eventstore.records import ANY, NewEvent
from tests import databases
from tests.databases import DatabasePool


@pytest.fixture
async def pool(pg_admin_dsn: str, pg_template: str) -> AsyncIterator[DatabasePool]:
    made = DatabasePool(pg_admin_dsn, pg_template)
    yield made
    await made.close()


async def _exists(admin_dsn: str, name: str) -> bool:
    admin = await asyncpg.connect(admin_dsn)
    try:
        return bool(await admin.fetchval("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name))
    finally:
        await admin.close()


async def test_rows_and_sequences_are_gone_for_the_next_test(pool: DatabasePool, pg_admin_dsn: str) -> None:
    name, made_as = await pool.take()
    dsn = database_dsn(pg_admin_dsn, name)
    connections = await create_pool(dsn, min_size=1, max_size=2)
    store = PostgresEventStore(connections)
    for n in range(3):
        await store.append("case-1", [NewEvent("CaseNoted", {"n": n})], ANY)
    await connections.execute("SELECT nextval('ref_places_seq'), nextval('ref_org_seq')")
    await store.close()
    await connections.close()
    await pool.give_back(name, made_as)

    again, _ = await pool.take()
    assert again == name and pool.reused == 1
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
        assert await conn.fetchval("SELECT count(*) FROM intake_migrations") > 0  # the template's rows stay
        assert await conn.fetchval("SELECT nextval('ref_places_seq')") == 1
        assert await conn.fetchval("SELECT nextval('ref_org_seq')") == 1
    finally:
        await conn.close()
    connections = await create_pool(dsn, min_size=1, max_size=2)
    store = PostgresEventStore(connections)
    try:
        appended = await store.append("case-2", [NewEvent("CaseNoted", {"n": 0})], ANY)
        assert appended.positions == (1,)
    finally:
        await store.close()
        await connections.close()


CHANGES = {
    "a table": "CREATE TABLE t_counts (n int)",
    "a column": "ALTER TABLE events ADD COLUMN extra int",
    "a disabled trigger": "ALTER TABLE events DISABLE TRIGGER events_append_only",
    "an index": "CREATE INDEX ON events (type, stream)",
    "a grant": "GRANT SELECT ON events TO PUBLIC",
    "a schema": "CREATE SCHEMA scratch",
    "a migration's row": "DELETE FROM intake_migrations WHERE name = '0001_events.sql'",
}


@pytest.mark.parametrize("change", list(CHANGES.values()), ids=list(CHANGES))
async def test_a_database_a_test_changed_is_dropped(
    pool: DatabasePool, pg_admin_dsn: str, change: str
) -> None:
    name, made_as = await pool.take()
    conn = await asyncpg.connect(database_dsn(pg_admin_dsn, name))
    try:
        await conn.execute(change)
    finally:
        await conn.close()
    await pool.give_back(name, made_as)
    assert pool.free == [] and pool.dropped == 1
    assert not await _exists(pg_admin_dsn, name)


async def test_a_replaced_function_or_a_database_setting_is_a_change(
    pool: DatabasePool, pg_admin_dsn: str
) -> None:
    name, made_as = await pool.take()
    conn = await asyncpg.connect(database_dsn(pg_admin_dsn, name))
    try:
        [function] = await conn.fetch(
            "SELECT p.oid::regprocedure::text AS signature, pg_get_functiondef(p.oid) AS body FROM pg_proc p "
            "WHERE pronamespace = 'public'::regnamespace ORDER BY proname LIMIT 1")
        await conn.execute(function["body"].replace("BEGIN", "BEGIN\n    -- changed by a test", 1))
        assert "changed by a test" in await conn.fetchval(
            "SELECT prosrc FROM pg_proc WHERE oid = $1::regprocedure", function["signature"])
    finally:
        await conn.close()
    await pool.give_back(name, made_as)
    assert not await _exists(pg_admin_dsn, name)

    # a setting, and one that fails the check itself
    for dropped, setting in enumerate(("work_mem = '1MB'", "statement_timeout = 1"), start=2):
        name, made_as = await pool.take()
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" SET {setting}')
        finally:
            await admin.close()
        await pool.give_back(name, made_as)
        assert not await _exists(pg_admin_dsn, name) and pool.dropped == dropped

async def test_a_database_with_a_session_still_in_it_is_dropped(
    pool: DatabasePool, pg_admin_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(databases, "_GONE", 0.2)
    name, made_as = await pool.take()
    left_open = await asyncpg.connect(database_dsn(pg_admin_dsn, name))
    try:
        await pool.give_back(name, made_as)
    finally:
        await left_open.close()
    assert pool.free == [] and not await _exists(pg_admin_dsn, name)


async def test_dead_rows_past_the_limit_are_vacuumed_away(
    pool: DatabasePool, pg_admin_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(databases, "VACUUM_AT", 256 * 1024)
    size = "SELECT pg_relation_size('openid_phones')"
    name, made_as = await pool.take()
    dsn = database_dsn(pg_admin_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO openid_phones (openid, phone) "
                           "SELECT 'o' || n, '139' || n FROM generate_series(1, 20000) n")
        assert await conn.fetchval(size) > 256 * 1024
    finally:
        await conn.close()
    await pool.give_back(name, made_as)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval(size) == 0  # deleted, vacuumed, its file truncated
        await conn.execute("INSERT INTO openid_phones (openid, phone) VALUES ('o', '139')")
    finally:
        await conn.close()
    assert await pool.take() == (name, made_as)
    await pool.give_back(name, made_as)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval(size) > 0  # under the limit: deleted, not vacuumed
        assert await conn.fetchval("SELECT count(*) FROM openid_phones") == 0
    finally:
        await conn.close()
