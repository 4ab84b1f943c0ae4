"""`intake rebuild [PROJECTION]`: drop read models and rebuild them from the log."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.settings import Settings


def _progress_bar(name: str) -> Any:
    from tqdm import tqdm

    bar = tqdm(desc=f"rebuild {name}", unit="event", file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    update.close = bar.close  # type: ignore[attr-defined]
    return update


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild one projection, or all; exit 2 naming the known ones when unknown.

    Stop the serving processes first: a projection rebuilt while a server also
    runs it would be applied twice.
    """
    from eventstore.subscriptions import ProjectionRunner
    from gateway.bootstrap import build_services, close_services, projections
    from gateway.cli import stores

    async with stores(settings) as live:
        services = await build_services(live)
        try:
            available = {p.name: p for p in projections(services)}
            chosen = [available[args.projection]] if args.projection in available else []
            if args.projection is None:
                chosen = list(available.values())
            if not chosen:
                print(f"intake rebuild: unknown projection {args.projection!r}; "
                      f"known: {', '.join(sorted(available))}", file=sys.stderr)
                return 2
            for projection in chosen:
                progress = _progress_bar(projection.name)
                runner = ProjectionRunner(services.store, projection)
                count = await runner.rebuild(progress)
                progress.close()
                print(f"rebuilt {projection.name}: {count} events applied")
        finally:
            await close_services(services)
    return 0
