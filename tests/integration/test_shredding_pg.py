"""Crypto-shredding on real PostgreSQL (`eventstore/shredding.py`): what an auditor checks.

Personal values never reach `events` in plaintext, every read opens them, an erasure makes
them unreadable everywhere (this process, and another one that listens) while the rest of the
event and the log's tamper evidence stay as they were.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from eventstore import ANY, Checkpoint, NewEvent, Personal, RecordedEvent
from eventstore.postgres import PostgresEventStore, append_many_on, append_on, create_pool
from eventstore.records import AppendArgs, ReadBatch
from eventstore.seals import Sealer
from eventstore.shredding import (
    ERASED,
    ERASURE_CHANNEL,
    SEALED,
    Keyring,
    ShreddingError,
    is_erased,
    keyring_of,
)
from eventstore.tamper import verify
from gateway.cli.verify import run as run_verify
from gateway.settings import Settings, StoreSettings
from tests.conftest import stored_events, until
from tests.integration.test_eventstore_tamper import (
    _bypass,
    all_readable,
    delete_mid_stream,
    insert_into_stream,
    modify,
    seal,
)

ZHANG = "phone:13912345678"
LI = "phone:13800000002"
SECRETS = ("张三丰", "13912345678", "家门口井盖丢失", "34.2531", "回民街17号")
PATHS = (("caller", "name"), ("caller", "phone"), ("description",), ("lat",), ("raw",))


def _data(case: str, name: str = "张三丰", phone: str = "13912345678") -> dict[str, Any]:
    return {"case_id": case, "category": "repair", "priority": 2,
            "caller": {"name": name, "phone": phone, "tier": "vip"},
            "description": "家门口井盖丢失", "lat": 34.2531, "raw": {"addr": "回民街17号", "n": 3}}


def _event(case: str, subject: str = ZHANG, **who: str) -> NewEvent:
    return NewEvent("CaseRegistered", _data(case, **who), 1, {"actor": "A001"}, Personal(subject, PATHS))


async def _row_text(pool: asyncpg.Pool) -> str:
    """Everything stored in `events`, as text."""
    return str(await pool.fetchval("SELECT string_agg(data::text || ' ' || metadata::text, ' ') FROM events"))


async def _every_read(store: PostgresEventStore, stream: str) -> list[RecordedEvent]:
    """The stream's events as each kind of read returns them (all four must agree)."""
    by_stream = await store.read_stream(stream)
    by_streams = (await store.read_streams([stream, "case-none"]))[stream]

    async def readable() -> ReadBatch | None:  # an unrelated transaction may hold the horizon back
        batch = await store.read_batch(Checkpoint())
        return None if batch.pending or len(batch.events) < len(by_stream) else batch

    by_batch = [e for _, e in (await until(readable, 10.0)).events if e.stream == stream]
    by_all = [e for _, e in await store.read_all(Checkpoint()) if e.stream == stream]
    assert by_stream == by_streams == by_batch == by_all, (by_stream, by_streams, by_batch, by_all)
    assert by_stream
    return by_stream


async def _via_store(pool: asyncpg.Pool, stream: str, event: NewEvent) -> None:
    store = PostgresEventStore(pool)
    await store.append(stream, [event], ANY)
    await store.close()


async def _via_group_commit(pool: asyncpg.Pool, stream: str, event: NewEvent) -> None:
    """Alongside other appends, so that the flush writes a batch (not the single-append path)."""
    store = PostgresEventStore(pool, group_commit=True)
    others = [store.append(f"case-g{n}", [_event(f"g{n}", f"phone:1380000100{n}")], ANY) for n in range(5)]
    await asyncio.gather(store.append(stream, [event], ANY), *others)
    await store.close()


async def _via_append_on(pool: asyncpg.Pool, stream: str, event: NewEvent) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await append_on(conn, stream, [event], ANY)


async def _via_append_many_on(pool: asyncpg.Pool, stream: str, event: NewEvent) -> None:
    async with pool.acquire() as conn, conn.transaction():
        answers = await append_many_on(conn, [AppendArgs.of(stream, [event], ANY, None),
                                              AppendArgs.of("case-m2", [_event("m2", LI)], ANY, None)])
    assert all(not isinstance(a, Exception) for a in answers), answers


Append = Callable[[asyncpg.Pool, str, NewEvent], Awaitable[None]]
APPENDS: list[Append] = [_via_store, _via_group_commit, _via_append_on, _via_append_many_on]


@pytest.mark.parametrize("append", APPENDS, ids=[a.__name__ for a in APPENDS])
async def test_personal_values_are_stored_sealed_and_read_back_whole(
    pg_pool: asyncpg.Pool, append: Append
) -> None:
    event = _event("C1")
    await append(pg_pool, "case-C1", event)
    stored = await _row_text(pg_pool)
    for secret in SECRETS:
        assert secret not in stored, secret
    [raw] = await pg_pool.fetch("SELECT data, metadata FROM events WHERE stream = 'case-C1'")
    assert raw["data"]["case_id"] == "C1" and raw["data"]["caller"]["tier"] == "vip"
    assert raw["metadata"][SEALED]["at"] == [list(p) for p in PATHS]
    store = PostgresEventStore(pg_pool)
    try:
        [read] = await _every_read(store, "case-C1")
    finally:
        await store.close()
    assert read.data == event.data
    assert read.metadata == event.metadata
    assert read.type == "CaseRegistered" and not is_erased(read)
    assert [e.data for e in await stored_events(pg_pool, "stream = $1", "case-C1")] == [event.data]


async def test_a_personal_value_left_out_does_not_leave_the_next_ones_in_the_clear(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    """Bug: the walk over the personal paths stops at the first one without a value (a caller who
    gave no name), so the number and the description after it are stored in plaintext."""
    data = {**_data("N"), "caller": {"name": None, "phone": "13912345678", "tier": "vip"}}
    await pg_store.append("case-N", [NewEvent("CaseRegistered", data, 1, {}, Personal(ZHANG, PATHS))], ANY)
    stored = await _row_text(pg_pool)
    for secret in ("13912345678", "家门口井盖丢失", "回民街17号"):
        assert secret not in stored, secret
    [read] = await pg_store.read_stream("case-N")
    assert read.data == data


@pytest.mark.parametrize("grouped", [False, True], ids=["alone", "group-commit"])
async def test_a_repeated_append_with_personal_data_is_written_once(
    pg_pool: asyncpg.Pool, grouped: bool
) -> None:
    """Bug: sealing drops the append's idempotency key, so a channel's retry of a contact (the same
    key) is written a second time."""
    store = PostgresEventStore(pg_pool, group_commit=grouped)
    try:
        first = await store.append("case-K", [_event("K")], ANY, idempotency_key="sms:SM1")
        again = await store.append("case-K", [_event("K")], ANY, idempotency_key="sms:SM1")
        assert again.duplicate and again.positions == first.positions
        assert len(await store.read_stream("case-K")) == 1
    finally:
        await store.close()


async def test_an_erased_subject_reads_erased_everywhere_and_nothing_else_changes(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, pg_dsn: str
) -> None:
    await pg_store.append("case-C1", [_event("C1"), _event("C1")], ANY)
    await pg_store.append("case-C2", [_event("C2", LI, name="李四", phone="13800000002")], ANY)
    before = await _every_read(pg_store, "case-C1")
    async with pg_pool.acquire() as conn:
        assert len(await keyring_of(conn).erase(conn, [ZHANG])) == 1
        assert await keyring_of(conn).erase(conn, [ZHANG]) == []  # nothing left to erase
    after = await _every_read(pg_store, "case-C1")
    assert len(after) == 2
    for old, new in zip(before, after, strict=True):
        assert new.data == {"case_id": old.data["case_id"], "category": "repair", "priority": 2,
                            "caller": {"name": ERASED, "phone": ERASED, "tier": "vip"},
                            "description": ERASED, "lat": None, "raw": {}}
        assert new.metadata == {**old.metadata, "erased": True} and is_erased(new)
        assert (new.position, new.version, new.type, new.schema_version, new.recorded_at) == (
            old.position, old.version, old.type, old.schema_version, old.recorded_at)
    [other] = await _every_read(pg_store, "case-C2")
    assert other.data == _data("C2", name="李四", phone="13800000002") and not is_erased(other)
    # A new process (an uncached keyring) and the raw rows agree: the key is gone, not just forgotten.
    fresh = await create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        assert [e.data for e in await stored_events(fresh, "stream = 'case-C1'")] == [e.data for e in after]
    finally:
        await fresh.close()
    assert await pg_pool.fetchval("SELECT count(*) FROM subject_keys WHERE subject = $1", ZHANG) == 0
    # The subject comes back: a new key; what was erased stays erased.
    await pg_store.append("case-C1", [_event("C1")], ANY)
    again = await pg_store.read_stream("case-C1")
    assert [is_erased(e) for e in again] == [True, True, False]
    assert again[2].data == _data("C1")


async def test_another_process_that_listens_drops_an_erased_key_it_cached(pg_dsn: str) -> None:
    """A second pool is a second process: its keyring caches the key on a read. The erasure's
    NOTIFY makes it drop it at once; one that does not listen keeps it until the TTL runs out."""
    now = [0.0]
    writer = await create_pool(pg_dsn, min_size=1, max_size=3)
    reader = await create_pool(pg_dsn, min_size=1, max_size=3, keyring=Keyring(clock=lambda: now[0]))
    deaf = await create_pool(pg_dsn, min_size=1, max_size=3, keyring=Keyring(clock=lambda: now[0]))
    stores = [PostgresEventStore(p) for p in (writer, reader, deaf)]
    try:
        await stores[1].listen()
        await stores[0].append("case-C1", [_event("C1")], ANY)
        for store in stores[1:]:
            [cached] = await store.read_stream("case-C1")
            assert cached.data == _data("C1")
        async with writer.acquire() as conn:
            await keyring_of(conn).erase(conn, [ZHANG])

        async def erased_for_the_listener() -> bool:
            return is_erased((await stores[1].read_stream("case-C1"))[0])

        await until(erased_for_the_listener)
        # The deaf one still has the key in its cache (so the listener's was the notice's doing)...
        assert not is_erased((await stores[2].read_stream("case-C1"))[0])
        now[0] += 31.0  # ... until its TTL ends
        assert (await stores[2].read_stream("case-C1"))[0].data["caller"]["name"] == ERASED
    finally:
        for store in stores:
            await store.close()
        for pool in (writer, reader, deaf):
            await pool.close()


async def test_an_erasure_of_many_subjects_reaches_a_listening_process(pg_dsn: str) -> None:
    """Hundreds of subjects at once (an export's worth): more key ids than one NOTIFY carries."""
    writer = await create_pool(pg_dsn, min_size=1, max_size=3)
    reader = await create_pool(pg_dsn, min_size=1, max_size=3, keyring=Keyring(ttl=3600.0))
    store = PostgresEventStore(reader)
    subjects = [f"phone:1380000{n:04d}" for n in range(450)]
    try:
        await store.listen()
        async with writer.acquire() as conn:
            answers = await append_many_on(conn, [AppendArgs.of(f"case-{n}", [_event(str(n), s)], ANY, None)
                                                  for n, s in enumerate(subjects)])
            assert all(not isinstance(a, Exception) for a in answers)
        assert not any(is_erased(e) for _, e in await store.read_all(Checkpoint(), limit=1000))
        async with writer.acquire() as conn:
            assert len(await keyring_of(conn).erase(conn, subjects)) == len(subjects)

        async def all_erased() -> bool:
            read = await store.read_all(Checkpoint(), limit=1000)
            return len(read) == len(subjects) and all(is_erased(e) for _, e in read)

        await until(all_erased)
    finally:
        await store.close()
        await writer.close()
        await reader.close()


async def test_a_transaction_that_finds_a_key_gone_forgets_it_for_the_reads_after(pg_dsn: str) -> None:
    """A process that missed an erasure's notice (this one does not listen) learns of it when a
    transaction holds the keys it opens: from then on its plain reads show the subject erased too,
    and the other subject's data whole. Bugs: the gone key (or the event it opened) kept in the
    cache until the TTL; the live key taken for the gone one."""
    writer = await create_pool(pg_dsn, min_size=1, max_size=3)
    deaf = await create_pool(pg_dsn, min_size=1, max_size=3, keyring=Keyring(ttl=3600.0))
    store = PostgresEventStore(deaf)
    try:
        await _via_store(writer, "case-Z", _event("Z"))
        await _via_store(writer, "case-L", _event("L", LI, name="李四", phone="13800000002"))
        for stream in ("case-Z", "case-L"):
            assert not is_erased((await store.read_stream(stream))[0])  # both keys cached
        async with writer.acquire() as conn:
            await keyring_of(conn).erase(conn, [ZHANG])
        assert not is_erased((await store.read_stream("case-Z"))[0])  # not told: the cache answers
        async with deaf.acquire() as conn, conn.transaction():
            zhang, li = await stored_events(conn, "stream IN ('case-Z', 'case-L')")
            assert is_erased(zhang) and li.data["caller"]["name"] == "李四"
        assert is_erased((await store.read_stream("case-Z"))[0])
        [li] = await store.read_stream("case-L")
        assert li.data["caller"]["name"] == "李四" and not is_erased(li)
    finally:
        await store.close()
        await writer.close()
        await deaf.close()


async def test_a_cached_key_opens_the_subjects_other_events_until_its_ttl(pg_dsn: str) -> None:
    """Keys are cached per process for `TTL` seconds: reading one event caches its key, and the
    subject's other events open with it, even with the key gone from the database (deleted here
    behind the keyring's back, as a missed notice would leave it), until the TTL ends. Bugs: no
    key ever cached (every read asks the database), or cached under the wrong id."""
    now = [0.0]
    writer = await create_pool(pg_dsn, min_size=1, max_size=3)
    await _via_store(writer, "case-1", _event("1"))
    await _via_store(writer, "case-2", _event("2"))
    await writer.close()
    pool = await create_pool(pg_dsn, min_size=1, max_size=3, keyring=Keyring(clock=lambda: now[0]))
    store = PostgresEventStore(pool)
    try:
        assert not is_erased((await store.read_stream("case-1"))[0])
        await pool.execute("DELETE FROM subject_keys")
        [second] = await store.read_stream("case-2")
        assert second.data == _data("2")
        now[0] += 31.0
        assert is_erased((await store.read_stream("case-2"))[0])
    finally:
        await store.close()
        await pool.close()


async def test_an_erasure_sends_one_notice_per_two_hundred_keys(pg_dsn: str) -> None:
    """Bug: notices overlapping or one per key (a listener's queue flooded by a large erasure)."""
    writer = await create_pool(pg_dsn, min_size=1, max_size=3)
    listener = await asyncpg.connect(pg_dsn)
    notices: list[str] = []
    subjects = [f"phone:1380000{n:04d}" for n in range(201)]
    try:
        await listener.add_listener(ERASURE_CHANNEL, lambda *args: notices.append(args[3]))
        async with writer.acquire() as conn:
            await append_many_on(conn, [AppendArgs.of(f"case-{n}", [_event(str(n), s)], ANY, None)
                                        for n, s in enumerate(subjects)])
            ids = await keyring_of(conn).erase(conn, subjects)

        async def two() -> bool:
            return len(notices) >= 2

        await until(two)
        await listener.execute("SELECT 1")  # any notice still on its way arrives before this answer
        assert sorted(len(n.split(",")) for n in notices) == [1, 200]
        assert sorted(k for n in notices for k in n.split(",")) == sorted(map(str, ids))
    finally:
        await listener.close()
        await writer.close()


async def _sealed_log(store: PostgresEventStore) -> dict[str, list[int]]:
    """Personal events in three streams, all under one seal; their positions by stream."""
    positions: dict[str, list[int]] = {}
    for stream, subject, count in (("case-1", ZHANG, 3), ("case-2", LI, 2)):
        for i in range(count):
            result = await store.append(stream, [_event(f"{stream}:{i}", subject)], ANY)
            positions.setdefault(stream, []).extend(result.positions)
    await all_readable(store, 5)
    assert await seal(Sealer(store.pool)) == 1
    return positions


Tamper = Callable[[asyncpg.Connection, dict[str, list[int]]], Awaitable[None]]


async def _swap_boxes(conn: asyncpg.Connection, pos: dict[str, list[int]]) -> None:
    """Give case-1 version 1 the box of version 0 (same key: it would open)."""
    await _bypass(conn)
    await conn.execute("UPDATE events e SET metadata = o.metadata FROM events o "
                       "WHERE e.position = $1 AND o.position = $2", pos["case-1"][1], pos["case-1"][0])


TAMPERS: list[tuple[Tamper, str]] = [
    (modify, "modified"), (_swap_boxes, "modified"), (delete_mid_stream, "deleted"),
    (insert_into_stream, "modified"),
]


@pytest.mark.parametrize(("tamper", "reason"), TAMPERS, ids=[t[0].__name__ for t in TAMPERS])
async def test_verify_passes_after_an_erasure_and_still_catches_tampering(
    pg_store: PostgresEventStore, pg_dsn: str, tamper: Tamper, reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    positions = await _sealed_log(pg_store)
    intact = await verify(pg_store.pool)
    assert intact.ok and (intact.checked, intact.seals, intact.unsealed) == (5, 1, 0)
    async with pg_store.pool.acquire() as conn:
        await keyring_of(conn).erase(conn, [ZHANG])
    assert is_erased((await pg_store.read_stream("case-1"))[0])
    erased = await verify(pg_store.pool)
    assert erased.ok and (erased.checked, erased.seals, erased.unsealed) == (5, 1, 0)
    settings = Settings(stores=StoreSettings(database_url=pg_dsn, redis_url="redis://unused"))
    assert await run_verify(argparse.Namespace(), settings) == 0
    assert "intact: 5 events, 1 seals, 0 unsealed" in capsys.readouterr().out
    conn = await asyncpg.connect(pg_dsn)
    try:
        await tamper(conn, positions)
    finally:
        await conn.close()
    report = await verify(pg_store.pool)
    assert report.first_bad is not None
    assert report.first_bad.stream == "case-1"
    assert report.first_bad.reason.startswith(reason), report.first_bad.reason
    assert await run_verify(argparse.Namespace(), settings) == 1


async def test_a_box_changed_in_place_is_caught_by_verify_and_refused_by_reads(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    positions = await _sealed_log(pg_store)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await _bypass(conn)
        await conn.execute(
            """UPDATE events SET metadata = jsonb_set(metadata, '{pd,box}',
                   to_jsonb(translate(metadata->'pd'->>'box', 'ABCDEFGHabcdefgh', 'BCDEFGHAbcdefgha')))
               WHERE position = $1""", positions["case-2"][1])
    finally:
        await conn.close()
    report = await verify(pg_store.pool)
    assert report.first_bad is not None
    assert (report.first_bad.stream, report.first_bad.position) == ("case-2", positions["case-2"][1])
    # A process that opened the event before keeps its authentic copy a while (the keyring's
    # cache of opened events); one that reads it now refuses the changed box.
    fresh = PostgresEventStore(await create_pool(pg_dsn, min_size=1, max_size=1))
    try:
        with pytest.raises(ShreddingError, match=f"event {positions['case-2'][1]} does not open"):
            await fresh.read_stream("case-2")  # the operator is told which event
        assert len(await fresh.read_stream("case-1")) == 3
    finally:
        await fresh.pool.close()


async def _rolled_back(pool: asyncpg.Pool, append: Callable[[asyncpg.Connection], Awaitable[Any]]) -> None:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await append(conn)
        assert await conn.fetchval("SELECT count(*) FROM subject_keys") == 1
        await transaction.rollback()


ROLLED_BACK: list[Callable[[asyncpg.Connection], Awaitable[Any]]] = [
    lambda conn: append_on(conn, "case-R", [_event("R")], ANY),
    lambda conn: append_many_on(conn, [AppendArgs.of("case-R", [_event("R")], ANY, None)]),
]


@pytest.mark.parametrize("append", ROLLED_BACK, ids=["append_on", "append_many_on"])
async def test_a_key_made_in_a_rolled_back_transaction_is_not_used_again(
    pg_pool: asyncpg.Pool, append: Callable[[asyncpg.Connection], Awaitable[Any]]
) -> None:
    await _rolled_back(pg_pool, append)
    assert await pg_pool.fetchval("SELECT count(*) FROM subject_keys") == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM events") == 0
    store = PostgresEventStore(pg_pool)
    try:
        for stream in ("case-R", "case-S"):  # on the same pool, so on the same keyring
            await store.append(stream, [_event(stream)], ANY)
            [read] = await store.read_stream(stream)
            assert read.data == _data(stream) and not is_erased(read)
    finally:
        await store.close()
    async with pg_pool.acquire() as conn:
        await append_on(conn, "case-T", [_event("T")], ANY)  # outside a transaction: cached is fine
    assert await pg_pool.fetchval("SELECT count(*) FROM subject_keys") == 1
    [read] = await stored_events(pg_pool, "stream = 'case-T'")
    assert read.data == _data("T")


async def test_an_erasure_rolled_back_leaves_the_data_readable(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    """An erasure is final only when it commits: rolled back, the key is still there and this
    process must not go on showing the subject's data as erased."""
    await pg_store.append("case-C1", [_event("C1")], ANY)
    assert not is_erased((await pg_store.read_stream("case-C1"))[0])  # the key is cached
    async with pg_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        assert len(await keyring_of(conn).erase(conn, [ZHANG])) == 1
        assert is_erased((await stored_events(conn, "stream = 'case-C1'"))[0])  # within the erasure
        await transaction.rollback()
    assert await pg_pool.fetchval("SELECT count(*) FROM subject_keys") == 1
    [read] = await pg_store.read_stream("case-C1")
    assert read.data == _data("C1") and not is_erased(read)


async def test_the_helper_sees_what_raw_sql_does_not(pg_pool: asyncpg.Pool, pg_dsn: str) -> None:
    """`stored_events` (tests/conftest.py), used by the tests that read the log with SQL, opens
    the boxes: with a DSN, a pool or a connection alike."""
    await _via_store(pg_pool, "case-H", _event("H"))
    assert (await pg_pool.fetchval("SELECT data FROM events"))["caller"]["name"] == "$pd"
    async with pg_pool.acquire() as conn:
        by_conn = await stored_events(conn, "stream = $1", "case-H")
    by_pool = await stored_events(pg_pool, "stream = $1", "case-H")
    by_dsn = await stored_events(pg_dsn, "type = 'CaseRegistered'")
    assert [e.data for e in by_conn] == [e.data for e in by_pool] == [e.data for e in by_dsn] == [_data("H")]
    assert by_dsn[0].metadata == {"actor": "A001"}


async def test_every_read_model_rebuilds_from_a_log_whose_subjects_are_all_erased(
    settings: Settings, services: Any, aiohttp_client: Any
) -> None:
    """A rebuild after erasures (`intake rebuild`) meets "[erased]" texts, null numbers and empty
    objects in every kind of event (the demo's reference data and storm: calls, web, alarms,
    elders); no projection or policy state may stumble on them, and no case is lost."""
    from gateway.app import create_app
    from gateway.cli.demo import Storm, demo_files
    from gateway.cli.loader import catch_up_reference, load_paths
    from gateway.cli.rebuild import run as run_rebuild

    stats = await load_paths(services, demo_files())
    assert not stats.errors
    await catch_up_reference(services)
    client = await aiohttp_client(create_app(settings, services=services))
    tokens = {"channel": "t-channel", "dispatcher": "t-dispatcher", "admin": "t-admin"}
    sent = await Storm(str(client.make_url("")).rstrip("/"), tokens, None, pace=0.05, waves=6).play()
    assert set(sent) >= {"cti", "web", "alarm"}
    await client.close()  # the app's projections stop: a rebuild runs alone
    pool = services.pool
    cases = await pool.fetchval("SELECT count(DISTINCT stream) FROM events WHERE type = 'CaseRegistered'")
    elders = await pool.fetchval("SELECT count(*) FROM ref_elders")
    assert cases > 0
    assert elders > 0
    async with pool.acquire() as conn:
        subjects = [r[0] for r in await conn.fetch("SELECT subject FROM subject_keys")]
        assert {s.split(":", 1)[0] for s in subjects} >= {"phone", "elder", "device"}
        await keyring_of(conn).erase(conn, subjects)
    assert await run_rebuild(argparse.Namespace(projection=None), settings) == 0
    assert await pool.fetchval("SELECT count(*) FROM cases") == cases
    assert await pool.fetchval("SELECT count(*) FROM ref_elders") == 0  # erased elders are gone
    assert await pool.fetchval("SELECT count(*) FROM ref_devices") == 0
    again = await load_paths(services, demo_files())  # and come back when loaded again
    assert again.outcomes.get("updated") == elders, again.outcomes
    await catch_up_reference(services)
    assert await pool.fetchval("SELECT count(*) FROM ref_elders WHERE name <> $1", ERASED) == elders
    stored = " ".join(str(e.data) for e in await stored_events(pool, "type = 'CaseRegistered'"))
    assert ERASED in stored
