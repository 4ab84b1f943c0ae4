"""Versioned, idempotent schema migrations applied at start.

Each component (the event store, the read models of `dispatch`, ...) keeps
numbered SQL files `NNNN_name.sql` in a `migrations/` folder. A file is applied
once, in a transaction, and recorded in `intake_migrations`; an advisory lock
keeps two starting processes from applying the same file twice.
"""

from __future__ import annotations

import importlib
import re
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


def discover(component: str, package: str) -> list[Migration]:
    """The migrations shipped in `<package>/migrations/`, in version order."""
    module_file = importlib.import_module(package).__file__
    assert module_file is not None
    folder = Path(module_file).parent / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(component, int(match.group(1)), entry.name, entry.read_text("utf-8")))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"duplicate migration numbers in {package}/migrations")
    return sorted(found, key=lambda m: m.version)


COMPONENTS: tuple[tuple[str, str], ...] = (
    ("eventstore", "eventstore"),
    ("dispatch", "dispatch"),
)
"""(component, package) pairs whose migrations every start applies, in this order."""


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every migration not yet applied; return the ones applied now."""
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
        for component, package in COMPONENTS:
            for migration in discover(component, package):
                if (component, migration.version) in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO intake_migrations (component, version, name) VALUES ($1, $2, $3)",
                        component,
                        migration.version,
                        migration.name,
                    )
                log.info("migration_applied", component=component, migration=migration.name)
                applied.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied
