"""`intake verify`: check the tamper evidence of the whole store from the command line."""

from __future__ import annotations

import argparse
import dataclasses

from eventstore.errors import EventStoreError
from eventstore.postgres import create_pool
from eventstore.tamper import VERIFY_TIMEOUT, VerifyReport, verify
from gateway.cli.stores import stores
from gateway.settings import Settings


def format_report(report: VerifyReport) -> str:
    """A one-paragraph, human-readable summary for `intake verify`."""
    bad = report.first_bad
    if bad is None:
        head = f"intact: {report.checked} events, {report.seals} seals, {report.unsealed} unsealed"
    else:
        head = f"TAMPERED: stream {bad.stream!r} position {bad.position}: {bad.reason}"
    return "\n".join([head, *(f"warning: {w}" for w in report.warnings)])


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """`intake verify`: exit 0 when intact, 1 naming the first bad stream and position."""
    # Verification needs PostgreSQL only: never start an embedded Redis for it.
    needs = dataclasses.replace(settings, stores=dataclasses.replace(
        settings.stores, redis_url=settings.stores.redis_url or "redis://unused"))
    async with stores(needs) as live:
        if live.stores.database_url is None:
            raise EventStoreError("intake verify needs a database URL")
        pool = await create_pool(live.stores.database_url, min_size=1, max_size=2,
                                 command_timeout=VERIFY_TIMEOUT)
        try:
            report = await verify(pool, key=settings.stores.seal_key)
        finally:
            await pool.close()
    print(format_report(report))
    return 0 if report.ok else 1
