"""What every command shares: the stores (embedded servers for what is not configured) and the loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Coroutine
from typing import TypeVar

import uvloop

from gateway import embedded
from gateway.settings import Settings


@contextlib.asynccontextmanager
async def stores(settings: Settings) -> AsyncIterator[Settings]:
    """Settings with URLs, starting embedded servers for what is not configured.

    An embedded PostgreSQL is migrated by its owner and used as the application
    role (`INTAKE_APP_ROLE`), as a production deployment is: the demo has the
    same protection of the log.
    """
    configured = settings.stores
    servers = await asyncio.to_thread(
        embedded.start,
        configured.data_dir,
        postgres=configured.database_url is None,
        redis=configured.redis_url is None,
    )
    try:
        database_url = configured.database_url
        if servers.database_url is not None:
            database_url = await embedded.prepare(servers.database_url, configured.app_role)
        yield dataclasses.replace(settings, stores=dataclasses.replace(
            configured,
            database_url=database_url,
            redis_url=configured.redis_url or servers.redis_url,
        ))
    finally:
        await asyncio.to_thread(servers.stop)


T = TypeVar("T")


def run_command(main: Coroutine[object, None, T]) -> T:
    """Run a command's coroutine on uvloop (libuv: less CPU per request than asyncio's loop)."""
    return uvloop.run(main)
