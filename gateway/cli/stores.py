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
    """Settings with URLs, starting embedded servers for what is not configured."""
    servers = await asyncio.to_thread(
        embedded.start,
        settings.data_dir,
        postgres=settings.database_url is None,
        redis=settings.redis_url is None,
    )
    try:
        yield dataclasses.replace(
            settings,
            database_url=settings.database_url or servers.database_url,
            redis_url=settings.redis_url or servers.redis_url,
        )
    finally:
        await asyncio.to_thread(servers.stop)


T = TypeVar("T")


def run_command(main: Coroutine[object, None, T]) -> T:
    """Run a command's coroutine on uvloop (libuv: less CPU per request than asyncio's loop)."""
    return uvloop.run(main)
