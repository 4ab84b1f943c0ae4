"""Finding or creating subjects' keys in one statement (`Keyring.keys_for` on PostgreSQL)."""

from __future__ import annotations

import asyncio

import asyncpg

from eventstore import ANY, NewEvent, Personal
from eventstore.postgres import PostgresEventStore, create_pool
from eventstore.shredding import Keyring
from tests.conftest import stored_events, until

SUBJECT = "phone:13912345678"


async def test_a_subject_keeps_its_key_and_a_new_one_gets_one(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        first = await Keyring().keys_for(conn, ["phone:+8613900000001"])
        found = await Keyring().keys_for(conn, ["phone:+8613900000001", "phone:+8613900000002"])
        assert found["phone:+8613900000001"][0] == first["phone:+8613900000001"][0]
        assert found["phone:+8613900000002"][0] != first["phone:+8613900000001"][0]
        assert await conn.fetchval("SELECT count(*) FROM subject_keys") == 2
        # the key answered is the stored one: what it seals, the stored key opens
        key_id, aead = found["phone:+8613900000001"]
        stored = await conn.fetchval("SELECT key FROM subject_keys WHERE key_id = $1", key_id)
        box = aead.encrypt(b"\0" * 12, b"x", None)
        assert type(aead)(stored).decrypt(b"\0" * 12, box, None) == b"x"


async def test_asynchronous_commit_of_a_new_key_stays_in_its_own_statement(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        await Keyring().keys_for(conn, ["phone:+8613900000003"])
        assert await conn.fetchval("SHOW synchronous_commit") == "on"  # the session keeps its setting
        async with conn.transaction():  # a caller's transaction commits as it always did
            await Keyring().keys_for(conn, ["phone:+8613900000004"])
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SELECT count(*) FROM subject_keys") == 2


async def test_two_sessions_creating_one_subjects_key_at_once_get_the_same_key(pg_pool: asyncpg.Pool) -> None:
    """Two gateways seal the first contact of the same new caller at once: the second's insert
    waits for the first's, finds the key made and not in its statement's snapshot, and asks
    again. Bugs: the second answered without the key (its append fails), or with a key of its own."""
    subject = "phone:+8613900000005"
    async with pg_pool.acquire() as first, pg_pool.acquire() as second:
        transaction = first.transaction()
        await transaction.start()
        made = await Keyring().keys_for(first, [subject])
        racing = asyncio.create_task(Keyring().keys_for(second, [subject]))

        async def waiting() -> bool:
            return bool(await pg_pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                second.get_server_pid()))

        await until(waiting)
        await transaction.commit()
        found = await racing
        assert found[subject][0] == made[subject][0]
        box = made[subject][1].encrypt(b"\0" * 12, b"x", None)
        assert found[subject][1].decrypt(b"\0" * 12, box, None) == b"x"
    assert await pg_pool.fetchval("SELECT count(*) FROM subject_keys") == 1


async def test_a_transaction_opens_events_with_keys_its_process_never_cached(pg_dsn: str) -> None:
    """A fresh process (a projection's rebuild) reads sealed events inside its transaction: the keys
    come from the database, are held, used and not cached. Bug: the key read there not used."""
    writer = await create_pool(pg_dsn, min_size=1, max_size=2)
    store = PostgresEventStore(writer)
    noted = NewEvent("Noted", {"name": "张三"}, 1, {}, Personal(SUBJECT, (("name",),)))
    await store.append("case-1", [noted], ANY)
    await store.close()
    await writer.close()
    fresh = await create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        async with fresh.acquire() as conn, conn.transaction():
            [read] = await stored_events(conn, "stream = 'case-1'")
            assert read.data == {"name": "张三"}
    finally:
        await fresh.close()
