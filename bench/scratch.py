"""Scratch databases on a server: created for one benchmark run or one test, then dropped."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg


def database_dsn(dsn: str, name: str) -> str:
    """The same server and options as `dsn`, database `name`."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def create_database(admin_dsn: str, name: str, *, template: str | None = None) -> str:
    """Create database `name` (a copy of `template`, if given) and return its DSN."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        clone = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clone}')
    finally:
        await admin.close()
    return database_dsn(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database `name`, closing the sessions still connected to it."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
