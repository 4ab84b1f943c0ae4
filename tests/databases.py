"""Test databases: copies of the migrated template, reused once a test is done with one.

Copying the template costs ~0.4 s (PostgreSQL writes the whole copy to its WAL);
emptying a database a test used costs ~20 ms. So a test's database goes back to
the pool when the test leaves it as the template made it but for rows and
sequences - same tables, columns, defaults, constraints, triggers (and whether
they are enabled), functions, views, grants, schemas, extensions, database
settings, the template's own rows (`intake_migrations`), and no session still
connected - and is emptied there. Anything else (a test that created a table,
disabled a trigger, changed a function) gets its database dropped, as before.

A reused database is emptied with DELETE (TRUNCATE writes new files: 0.3 s);
the dead rows are vacuumed away once the tables pass `VACUUM_AT` bytes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import asyncpg

from bench.scratch import create_database, database_dsn, drop_database

VACUUM_AT = 4 * 1024 * 1024
"""Bytes of table files (rows and dead rows) above which an emptied database is vacuumed."""
_GONE = 1.0
"""Seconds to wait for a test's closed sessions to leave before the database is dropped instead."""

_SHAPE = """
WITH public_rel AS (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
    SELECT format('c %s %s %s %s %s %s %s', oid, relname, relkind, relnatts, relacl, reloptions,
                  relpersistence) AS x FROM pg_class WHERE relnamespace = 'public'::regnamespace
    UNION ALL SELECT format('a %s %s %s %s %s', attrelid, attname, atttypid, attnotnull, attisdropped)
        FROM pg_attribute WHERE attrelid IN (SELECT oid FROM public_rel) AND attnum > 0
    UNION ALL SELECT format('d %s %s', oid, md5(adbin::text)) FROM pg_attrdef
        WHERE adrelid IN (SELECT oid FROM public_rel)
    UNION ALL SELECT format('k %s %s', oid, convalidated) FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT format('t %s %s', oid, tgenabled) FROM pg_trigger
        WHERE tgrelid IN (SELECT oid FROM public_rel)
    UNION ALL SELECT format('p %s %s %s %s', oid, proname, md5(prosrc), proconfig) FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace
    UNION ALL SELECT format('r %s %s', oid, md5(ev_action::text)) FROM pg_rewrite
        WHERE ev_class IN (SELECT oid FROM public_rel)
    UNION ALL SELECT format('n %s %s', oid, nspacl) FROM pg_namespace
        WHERE nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
    UNION ALL SELECT format('e %s', oid) FROM pg_extension
    UNION ALL SELECT format('s %s', setconfig) FROM pg_db_role_setting
        WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL SELECT format('b %s %s', datallowconn, datconnlimit) FROM pg_database
        WHERE datname = current_database()
) shape
"""
"""A digest of everything a test could change in a database but its rows and sequences."""

_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
_SEQUENCES = """SELECT s.seqrelid::regclass::text, s.seqstart FROM pg_sequence s
    JOIN pg_class q ON q.oid = s.seqrelid AND q.relnamespace = 'public'::regnamespace
    LEFT JOIN pg_depend d ON d.objid = s.seqrelid AND d.deptype IN ('a', 'i')
    LEFT JOIN pg_class t ON t.oid = d.refobjid
    WHERE t.relname IS NULL OR t.relname <> ALL($1::text[])"""
_SIZE = """SELECT coalesce(sum(pg_relation_size(oid)), 0) FROM pg_class
    WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> ALL($1::text[])"""


async def seeded_tables(conn: asyncpg.Connection) -> list[str]:
    """The tables that hold rows in a freshly migrated database (kept when one is emptied)."""
    tables = [t for (t,) in await conn.fetch(_TABLES)]
    return [t for t in tables if await conn.fetchval(f'SELECT EXISTS (SELECT FROM "{t}")')]


async def empty(conn: asyncpg.Connection, seeded: list[str]) -> None:
    """Delete every row but the seeded tables', restart every sequence, vacuum once bloated."""
    await conn.execute("SET session_replication_role = replica")  # past the append-only guard
    written = [t for (t,) in await conn.fetch(_TABLES) if t not in seeded]
    await conn.execute("; ".join(f'DELETE FROM "{t}"' for t in written))
    for sequence, start in await conn.fetch(_SEQUENCES, seeded):
        await conn.execute("SELECT setval($1::regclass, $2, false)", sequence, start)
    if await conn.fetchval(_SIZE, seeded) > VACUUM_AT:
        await conn.execute("VACUUM " + ", ".join(f'"{t}"' for t in written))


async def shape(conn: asyncpg.Connection, seeded: list[str]) -> str:
    """`_SHAPE` and the seeded tables' rows, as one digest."""
    rows = [await conn.fetchval(f'SELECT md5(string_agg(r::text, \'|\' ORDER BY r::text)) FROM "{t}" r')
            for t in seeded]
    return f"{await conn.fetchval(_SHAPE)} {' '.join(map(str, rows))}"


@dataclass
class DatabasePool:
    """Copies of `template` on the server of `admin_dsn`, handed to one test at a time."""

    admin_dsn: str
    template: str
    seeded: list[str] | None = None
    free: list[tuple[str, str]] = field(default_factory=list)
    """Names of emptied databases and the shape each had when it was copied."""
    made: set[str] = field(default_factory=set)
    copied: int = 0
    reused: int = 0
    dropped: int = 0

    async def take(self) -> tuple[str, str]:
        """A database as the template made it: (its name, its shape)."""
        if self.free:
            self.reused += 1
            return self.free.pop()
        name = f"intake_t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(await create_database(self.admin_dsn, name, template=self.template))
        self.made.add(name)
        self.copied += 1
        try:
            if self.seeded is None:
                self.seeded = await seeded_tables(conn)
            return name, await shape(conn, self.seeded)
        finally:
            await conn.close()

    async def give_back(self, name: str, made_as: str) -> None:
        """Empty the database for the next test if it is as it was made; else drop it."""
        assert self.seeded is not None
        if await self._alone(name):
            conn = await asyncpg.connect(database_dsn(self.admin_dsn, name))
            try:
                if await shape(conn, self.seeded) == made_as:
                    await empty(conn, self.seeded)
                    self.free.append((name, made_as))
                    return
            except asyncpg.PostgresError:  # e.g. a statement timeout the test set on the database
                pass
            finally:
                await conn.close()
        self.made.discard(name)
        self.dropped += 1
        await drop_database(self.admin_dsn, name)

    async def _alone(self, name: str) -> bool:
        """Whether every session of the test on `name` has gone (closed pools leave at once)."""
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            deadline = time.monotonic() + _GONE
            while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name):
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.01)
            return True
        finally:
            await admin.close()

    async def close(self) -> None:
        """Drop every database the pool made."""
        for name in sorted(self.made):
            await drop_database(self.admin_dsn, name)
        self.made.clear()
        self.free.clear()
