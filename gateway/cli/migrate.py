"""`intake migrate`: as the tables' owner, apply the migrations and grant the application role.

Deployments run it once per release (docker-compose's one-shot `migrate`
service) with the owner's DSN; the processes then connect as the application
role, which may only INSERT and SELECT the log (`eventstore/roles.sql`).
"""

from __future__ import annotations

import argparse

import asyncpg

from gateway.cli.stores import stores
from gateway.schema import prepare
from gateway.settings import Settings


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Migrate and grant; the embedded default does both whenever it starts."""
    role = settings.stores.app_role
    if settings.stores.database_url is None:
        async with stores(settings):
            print(f"intake migrate: embedded PostgreSQL migrated; the app connects as {role}")
        return 0
    conn = await asyncpg.connect(settings.stores.database_url)
    try:
        applied = await prepare(conn, role, password=settings.stores.app_password)
    finally:
        await conn.close()
    print(f"intake migrate: {len(applied)} migrations applied; role {role} may INSERT and SELECT the log, "
          "not change it")
    return 0
