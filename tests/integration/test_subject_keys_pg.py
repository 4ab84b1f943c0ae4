"""Finding or creating subjects' keys in one statement (`Keyring.keys_for` on PostgreSQL)."""

from __future__ import annotations

import asyncpg

from eventstore.shredding import Keyring


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
