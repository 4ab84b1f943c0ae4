"""Versioned, idempotent schema migrations applied at start.

Each component (the event store, the read models of `dispatch`, ...) keeps
numbered SQL files `NNNN_name.sql` in a `migrations/` folder and declares it
as a `Component`; the caller passes the components to `migrate`. A file is
applied once, in a transaction, and recorded in `intake_migrations` under its
component's name; an advisory lock keeps two starting processes from applying
the same file twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger(__name__)

_LOCK_KEY = 0x1A7A4E  # any constant shared by every intake process
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file of one component."""

    component: str
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class Component:
    """A part of the schema with migrations of its own.

    `name` is what `intake_migrations` records its files under (renaming it
    would apply them again); `folder` holds its `NNNN_name.sql` files.
    """

    name: str
    folder: Path


def discover(component: Component) -> list[Migration]:
    """The migrations in a component's folder, in version order."""
    found = []
    for entry in component.folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(component.name, int(match.group(1)), entry.name, entry.read_text("utf-8"))
            )
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"duplicate migration numbers in {component.folder}")
    return sorted(found, key=lambda m: m.version)


async def pending(conn: asyncpg.Connection, components: Sequence[Component]) -> list[Migration]:
    """The migrations of `components` not applied yet (reads only: any role may ask)."""
    done: set[tuple[str, int]] = set()
    if await conn.fetchval("SELECT to_regclass('intake_migrations') IS NOT NULL"):
        done = {(r["component"], r["version"])
                for r in await conn.fetch("SELECT component, version FROM intake_migrations")}
    return [m for c in components for m in discover(c) if (m.component, m.version) not in done]


async def migrate(conn: asyncpg.Connection, components: Sequence[Component]) -> list[Migration]:
    """Apply every migration of `components`, in their order, not yet applied; return those applied now.

    With nothing to apply it writes nothing, so the application's role (which
    may not create tables, `roles.sql`) starts on a database its owner migrated.
    """
    if not await pending(conn, components):
        return []
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS intake_migrations (
               component text NOT NULL, version integer NOT NULL, name text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (component, version))"""
    )
    applied: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        done = {
            (r["component"], r["version"])
            for r in await conn.fetch("SELECT component, version FROM intake_migrations")
        }
        for component in components:
            for migration in discover(component):
                if (migration.component, migration.version) in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO intake_migrations (component, version, name) VALUES ($1, $2, $3)",
                        migration.component,
                        migration.version,
                        migration.name,
                    )
                log.info("migration_applied", component=migration.component, migration=migration.name)
                applied.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied
