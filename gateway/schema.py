"""The database schema this build applies: each component's migrations, in order, and the app's role."""

from __future__ import annotations

import asyncpg

from dispatch.migrations import DISPATCH
from eventstore.migrate import Component, Migration, migrate
from eventstore.migrations import EVENTSTORE
from eventstore.roles import grant_app_role

SCHEMA: tuple[Component, ...] = (EVENTSTORE, DISPATCH)
"""What `migrate` applies at every start (and for replay, tests and benchmarks), in this order."""


async def prepare(conn: asyncpg.Connection, app_role: str, *, password: str | None = None) -> list[Migration]:
    """As the owner: apply the migrations, then (again) the application role's grants (`roles.sql`)."""
    applied = await migrate(conn, SCHEMA)
    await grant_app_role(conn, app_role, password=password)
    return applied
