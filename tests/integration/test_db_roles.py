"""The application's database role: it runs intake, and it cannot change the log.

Bugs these catch: a grant too wide in `roles.sql` (UPDATE or DELETE on the log,
ownership that allows ALTER TABLE ... DISABLE TRIGGER); a grant too narrow for
the app to run (a read model or sequence it cannot write); `migrate` writing
DDL on a database that needs none (the app role may not); `too_privileged`
letting a superuser or the log's owner through.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bench.scratch import database_dsn
from eventstore import tamper
from eventstore.roles import too_privileged
from gateway.app import create_app
from gateway.bootstrap import build_services, close_services
from gateway.schema import prepare
from gateway.settings import Settings
from tests.conftest import auth
from tests.integration.test_store_outage import CASE


def as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))


async def drop_role(pg_admin_dsn: str, dsn: str, role: str) -> None:
    """Revoke what the role holds in the test database, then drop it (roles are cluster-wide)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP OWNED BY "{role}"')
    finally:
        await conn.close()
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await admin.close()


@pytest.fixture
async def app_role(pg_dsn: str, pg_admin_dsn: str) -> AsyncIterator[str]:
    """A restricted application role granted on this test's database (as `intake migrate` does)."""
    role = f"intake_app_{uuid.uuid4().hex[:8]}"
    owner = await asyncpg.connect(pg_dsn)
    try:
        assert await prepare(owner, role) == []  # migrated already: grants only
    finally:
        await owner.close()
    yield role
    await drop_role(pg_admin_dsn, pg_dsn, role)


async def test_the_app_runs_as_the_app_role(
    aiohttp_client: Any, settings: Settings, pg_dsn: str, app_role: str
) -> None:
    """Start (no DDL), take a case, project it, seal and verify: all as the restricted role."""
    as_app = dataclasses.replace(settings, stores=dataclasses.replace(
        settings.stores, database_url=as_role(pg_dsn, app_role)))
    services = await build_services(as_app)
    try:
        client = await aiohttp_client(create_app(as_app, services=services))
        created = await client.post("/api/v1/cases", json=CASE, headers=auth("t-agent"))
        assert created.status == 201, await created.text()
        case_id = (await created.json())["case_id"]
        board = await client.get("/api/v1/cases", headers=auth("t-dispatcher"))
        assert board.status == 200
        assert (await client.get(f"/api/v1/cases/{case_id}", headers=auth("t-agent"))).status == 200
        report = await tamper.verify(services.pool)
        assert report.ok, report
        assert await services.pool.fetchval("SELECT current_user") == app_role
    finally:
        await close_services(services)


FORBIDDEN = [
    "UPDATE events SET data = '{}'::jsonb",
    "DELETE FROM events",
    "TRUNCATE events",
    "ALTER TABLE events DISABLE TRIGGER ALL",
    "ALTER TABLE events DISABLE TRIGGER events_append_only",
    "ALTER TABLE events OWNER TO CURRENT_USER",
    "DROP TABLE events",
    "UPDATE seals SET hash = hash",
    "DELETE FROM seals",
    "DELETE FROM idempotency_keys",
    "UPDATE idempotency_keys SET stream = stream",
    "DELETE FROM intake_migrations",
    "UPDATE access_log SET reads = 1",
    "DELETE FROM access_log",
    "SET session_replication_role = replica",
    "CREATE TABLE sneaky (x int)",
]


async def test_the_app_role_cannot_change_the_log(pg_dsn: str, app_role: str) -> None:
    conn = await asyncpg.connect(as_role(pg_dsn, app_role))
    try:
        for statement in FORBIDDEN:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        # What it needs: read and append the log, write read models.
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
        assert await conn.fetchval("SELECT has_table_privilege('events', 'INSERT')")
        assert await conn.fetchval("SELECT has_table_privilege('cases', 'UPDATE')")
        assert await too_privileged(conn) is None
    finally:
        await conn.close()


async def test_superuser_and_owner_are_too_privileged(pg_dsn: str, pg_admin_dsn: str) -> None:
    superuser = await asyncpg.connect(pg_dsn)
    owner = f"intake_owner_{uuid.uuid4().hex[:8]}"
    try:
        assert "superuser" in (await too_privileged(superuser) or "")
        await superuser.execute(f'CREATE ROLE "{owner}" LOGIN')
        await superuser.execute(f'ALTER TABLE events OWNER TO "{owner}"')
        as_owner = await asyncpg.connect(as_role(pg_dsn, owner))
        try:
            assert "owns the log" in (await too_privileged(as_owner) or "")
        finally:
            await as_owner.close()
        await superuser.execute("ALTER TABLE events OWNER TO CURRENT_USER")
    finally:
        await superuser.close()
        await drop_role(pg_admin_dsn, pg_dsn, owner)


async def test_a_database_without_the_log_counts_as_the_owners(pg_admin_dsn: str, pg_dsn: str) -> None:
    """Serving there would create (and own) the log."""
    role = f"intake_nobody_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        conn = await asyncpg.connect(as_role(database_dsn(pg_admin_dsn, "postgres"), role))
        try:
            assert "does not exist yet" in (await too_privileged(conn) or "")
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()
