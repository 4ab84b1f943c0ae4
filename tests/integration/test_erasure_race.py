"""An erasure against transactions that opened the subject's key: nothing such a transaction
read before the erasure is written after it (the key's row is share-locked to its commit)."""

from __future__ import annotations

import asyncio

import asyncpg

from eventstore import NO_STREAM, NewEvent
from eventstore.postgres import _COLUMNS, PostgresEventStore, _record
from eventstore.records import Personal
from eventstore.shredding import ERASED, keyring_of

SUBJECT = "phone:13912345678"


async def _opened(conn: asyncpg.Connection) -> str:
    """The name in the one event, opened on `conn` (as a projection's batch is, in its transaction)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM events WHERE stream = 'case-1'")
    [record] = await keyring_of(conn).open(conn, [_record(row)])
    return str(record.data["name"])


async def _erase(dsn: str) -> int:
    """Erase from another process's connection (this pool's cache learns it by NOTIFY, if at all)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            return len(await keyring_of(conn).erase(conn, [SUBJECT]))
    finally:
        await conn.close()


async def test_an_erasure_waits_for_a_transaction_that_opened_the_key(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, pg_dsn: str
) -> None:
    noted = NewEvent("Noted", {"name": "张三"}, personal=Personal(SUBJECT, (("name",),)))
    await pg_store.append("case-1", [noted], NO_STREAM)
    async with pg_pool.acquire() as reader:
        assert await _opened(reader) == "张三"  # outside a transaction: cached, holds nothing
        async with reader.transaction():
            assert await _opened(reader) == "张三"
            erasing = asyncio.create_task(_erase(pg_dsn))
            await asyncio.sleep(0.5)
            assert not erasing.done()  # the delete waits for the reader to commit what it wrote
        assert await asyncio.wait_for(erasing, 5.0) == 1
        async with reader.transaction():  # the key may still be cached: the transaction finds it gone
            assert await _opened(reader) == ERASED
