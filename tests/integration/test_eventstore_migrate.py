"""Migrations: components come from the caller; each file is applied once, under its component's name."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from eventstore.migrate import Component, discover, migrate
from gateway.schema import SCHEMA


async def test_the_schema_is_recorded_under_the_component_names_existing_databases_know(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await migrate(conn, SCHEMA) == []  # the test database was migrated already
        rows = await conn.fetch("SELECT component, name FROM intake_migrations ORDER BY component, version")
    finally:
        await conn.close()
    assert [c.name for c in SCHEMA] == ["eventstore", "dispatch"]
    shipped = sorted((m.component, m.name) for c in SCHEMA for m in discover(c))
    assert [(r["component"], r["name"]) for r in rows] == shipped


async def test_a_component_passed_in_is_applied_in_version_order_and_only_once(
    pg_dsn: str, tmp_path: Path
) -> None:
    (tmp_path / "0002_note.sql").write_text("ALTER TABLE extra_things ADD COLUMN note text")
    (tmp_path / "0001_things.sql").write_text("CREATE TABLE extra_things (id int)")
    (tmp_path / "README.txt").write_text("not a migration")
    extra = Component("extra", tmp_path)
    conn = await asyncpg.connect(pg_dsn)
    try:
        applied = await migrate(conn, [*SCHEMA, extra])
        again = await migrate(conn, [extra])
        columns = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'extra_things'")
    finally:
        await conn.close()
    assert [(m.component, m.name) for m in applied] == [
        ("extra", "0001_things.sql"), ("extra", "0002_note.sql")]
    assert again == []
    assert columns == 2
