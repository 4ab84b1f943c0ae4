"""`intake rebuild [NAME]`: drop read models and rebuild them from the log.

A name is a projection's, or a policy's that keeps working state of its own
(`Recalling`, e.g. `linking` and its `link_candidates`): that state is
refolded from the recorded events; nothing is decided or sent again.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.settings import Settings


def _progress_bar(name: str) -> Any:
    from tqdm import tqdm

    bar = tqdm(desc=f"rebuild {name}", unit="event", file=sys.stderr)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    update.close = bar.close  # type: ignore[attr-defined]
    return update


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild one projection or policy state, or all; exit 2 naming the known ones when unknown.

    Stop the serving processes first: a projection rebuilt while a server also
    runs it would be applied twice, and a policy would decide on half-rebuilt state.
    """
    from eventstore.subscriptions import ProjectionRunner, ReactorRunner, Recalling
    from gateway.bootstrap import build_services, close_services, projections, reactors
    from gateway.cli.stores import stores

    async with stores(settings) as live:
        services = await build_services(live)
        try:
            available: dict[str, ProjectionRunner | ReactorRunner] = {
                p.name: ProjectionRunner(services.store, p) for p in projections(services)}
            available |= {r.name: ReactorRunner(services.store, r)
                          for r in reactors(services) if isinstance(r, Recalling)}
            chosen = {args.projection: available[args.projection]} if args.projection in available else {}
            if args.projection is None:
                chosen = available
            if not chosen:
                print(f"intake rebuild: unknown projection {args.projection!r}; "
                      f"known: {', '.join(sorted(available))}", file=sys.stderr)
                return 2
            for name, runner in chosen.items():
                progress = _progress_bar(name)
                count = await runner.rebuild(progress)
                progress.close()
                print(f"rebuilt {name}: {count} events applied")
        finally:
            await close_services(services)
    return 0
