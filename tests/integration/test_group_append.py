"""Group commit of webhook appends on real PostgreSQL: one statement for many requests, same answers."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from dispatch import group_append
from dispatch.group_append import GroupAppender
from eventstore import ANY, NewEvent
from eventstore.errors import IdempotencyConflict
from eventstore.memory import MemoryEventStore
from eventstore.postgres import PostgresEventStore


def _event(n: int) -> NewEvent:
    return NewEvent("SmsReceived", {"n": n, "text": "停电"}, 1, {"actor": "test"})


async def test_concurrent_appends_share_statements_and_each_gets_its_own_answer(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = 0
    write = GroupAppender._write

    async def counting(self: GroupAppender, store: PostgresEventStore, batch: list) -> None:  # type: ignore[type-arg]
        nonlocal statements
        statements += 1
        await write(self, store, batch)

    monkeypatch.setattr(GroupAppender, "_write", counting)
    appender = GroupAppender(pg_store)
    results = await asyncio.gather(*(appender.append(f"sms-k:{n}", _event(n), f"k:{n}") for n in range(200)))
    assert statements <= 2 * group_append.MAX_IN_FLIGHT  # not one per append
    assert [r.stream for r in results] == [f"sms-k:{n}" for n in range(200)]
    assert all(not r.duplicate and r.first_version == 0 for r in results)
    async with pg_pool.acquire() as conn:
        rows = await conn.fetch("SELECT stream, data, metadata FROM events ORDER BY position")
    assert len(rows) == 200
    assert {r["stream"]: r["data"]["n"] for r in rows} == {f"sms-k:{n}": n for n in range(200)}
    assert rows[0]["metadata"]["idempotency_key"].startswith("k:")
    positions = [r.positions[0] for r in results]
    assert len(set(positions)) == 200


async def test_repeated_keys_within_and_across_batches_are_duplicates(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    appender = GroupAppender(pg_store)
    stored = await pg_store.append("sms-k:old", [_event(0)], ANY, idempotency_key="k:old")
    first, again, old = await asyncio.gather(
        appender.append("sms-k:1", _event(1), "k:1"),
        appender.append("sms-k:1", _event(1), "k:1"),
        appender.append("sms-k:old", _event(0), "k:old"),
    )
    assert not first.duplicate and again.duplicate and again.positions == first.positions
    assert old.duplicate and old.positions == stored.positions
    with pytest.raises(IdempotencyConflict):
        await appender.append("sms-k:other", _event(2), "k:1")
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 2


async def test_a_race_on_the_same_key_in_two_batches_settles_one_by_one(pg_store: PostgresEventStore) -> None:
    one, two = GroupAppender(pg_store), GroupAppender(pg_store)
    results = await asyncio.gather(*(a.append("sms-k:race", _event(9), "k:race") for a in (one, two) * 3))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.positions for r in results}) == 1


async def test_other_stores_append_directly() -> None:
    store = MemoryEventStore()
    result = await GroupAppender(store).append("sms-k:1", _event(1), "k:1")
    assert (await GroupAppender(store).append("sms-k:1", _event(1), "k:1")).duplicate
    assert result.first_version == 0


async def test_appends_arriving_as_a_flush_ends_are_not_stranded(
    pg_store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_append, "MAX_IN_FLIGHT", 1)
    appender = GroupAppender(pg_store)
    for round_ in range(20):
        appends = [appender.append(f"sms-k:{round_}.{n}", _event(n), f"k:{round_}.{n}") for n in range(3)]
        results = await asyncio.wait_for(asyncio.gather(*appends), 5)
        assert all(not r.duplicate for r in results)
    assert appender._flushing == 0
