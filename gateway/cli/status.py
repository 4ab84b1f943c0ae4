"""`intake status`: each runner's partitions, the worker process holding each, checkpoints and lag."""

from __future__ import annotations

import argparse
import dataclasses
import json

from eventstore.errors import EventStoreError
from eventstore.postgres import create_pool
from eventstore.status import format_status, status
from gateway.cli.stores import stores
from gateway.settings import Settings


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the status (text, or the API's JSON with `--json`); reads PostgreSQL only."""
    needs = dataclasses.replace(settings, stores=dataclasses.replace(
        settings.stores, redis_url=settings.stores.redis_url or "redis://unused"))
    async with stores(needs) as live:
        if live.stores.database_url is None:
            raise EventStoreError("intake status needs a database URL")
        pool = await create_pool(live.stores.database_url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                found = await status(conn)
        finally:
            await pool.close()
    print(json.dumps(found.as_json(), ensure_ascii=False, indent=2) if args.json else format_status(found))
    return 0
