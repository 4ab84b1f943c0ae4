"""The application's database role: least privilege on the log, and who may not serve.

The owner of the tables (who runs the migrations) can ALTER them, and so
disable the triggers that keep the log append-only; a superuser can do
anything. The application connects as a role that may only INSERT and SELECT
the log (`roles.sql`); `intake serve` refuses the others (`too_privileged`).
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

ROLES_SQL = Path(__file__).with_name("roles.sql")
DEFAULT_APP_ROLE = "intake_app"


async def grant_app_role(conn: asyncpg.Connection, role: str, *, password: str | None = None) -> None:
    """Create `role` if missing and give it what the application needs, and no more (run as the owner)."""
    async with conn.transaction():
        await conn.execute("SELECT set_config('intake.app_role', $1, true)", role)
        await conn.execute(ROLES_SQL.read_text("utf-8"))
        if password is not None:
            quoted = await conn.fetchval("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
                                         role, password)
            await conn.execute(quoted)


_PRIVILEGE = """
SELECT r.rolsuper, to_regclass('public.events') IS NOT NULL AS log_exists,
       coalesce(pg_has_role(current_user, c.relowner, 'USAGE'), false) AS owns_log
FROM pg_roles r LEFT JOIN pg_class c ON c.oid = to_regclass('public.events')
WHERE r.rolname = current_user
"""


async def too_privileged(conn: asyncpg.Connection) -> str | None:
    """Why this connection's role must not serve (None when it may): superuser, or the log's owner.

    A database without the log yet counts as the owner's: serving would create
    the tables (and own them).
    """
    row = await conn.fetchrow(_PRIVILEGE)
    user = await conn.fetchval("SELECT current_user")
    if row is None or row["rolsuper"]:
        return f"role {user!r} is a superuser"
    if not row["log_exists"]:
        return f"the log does not exist yet and role {user!r} would create (own) it"
    if row["owns_log"]:
        return f"role {user!r} owns the log (it could disable its append-only triggers)"
    return None
