"""`intake retention [--dry-run]` and `intake export-subject SUBJECT [--out FILE]`.

`retention` runs today's retention job now (`dispatch/personal/retention.py`), unless a worker
already ran it today; `--dry-run` only counts what it would erase - people, identifiers, cases
by category - and prints no personal data. `export-subject` writes everything held about one
person as JSON (`dispatch/personal/access.py`), to FILE or standard output; the file is
created readable by its owner only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter

from gateway.settings import Settings


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `retention` and `export-subject` commands."""
    retention = sub.add_parser("retention", help="erase the people whose retention period ended (daily job)")
    retention.add_argument("--dry-run", action="store_true", help="count what would be erased, erase nothing")
    export = sub.add_parser("export-subject", help="everything held about one person, as JSON")
    export.add_argument("subject", help="a phone number, or openid:..., elder:..., device:..., email:...")
    export.add_argument("--out", help="write to this file (default: standard output)")


async def retention(args: argparse.Namespace, settings: Settings) -> int:
    """Run (or, with --dry-run, count) the retention job."""
    from dispatch.personal.retention import RetentionJob, plan
    from gateway.bootstrap import build_services, close_services
    from gateway.cli.stores import stores

    cfg = settings.retention
    async with stores(settings) as live:
        services = await build_services(live)
        try:
            if args.dry_run:
                async with services.pool.acquire() as conn:
                    people = await plan(conn, cfg, services.clock.now())
                cases = Counter(c for due in people for c in due.categories)
                print(f"retention ({cfg}): would erase {len(people)} person(s), "
                      f"{sum(d.identifiers for d in people)} identifier(s), {sum(cases.values())} case(s)")
                for category, n in sorted(cases.items()):
                    print(f"  {category}: {n} case(s)")
                return 0
            done = await RetentionJob(services.pool, services.clock, services.bus.handle, cfg).run_once()
        finally:
            await close_services(services)
    if done is None:
        print("retention: already run today (or running in another process); nothing done")
    else:
        print(f"retention ({cfg}): erased {done.erased} person(s) with {done.cases} case(s); "
              f"{done.skipped} skipped (a new case or a legal hold since they were chosen)")
    return 0


async def export_subject(args: argparse.Namespace, settings: Settings) -> int:
    """Write the person's export; exit 2 when the subject names nobody (a phone number or `kind:value`)."""
    from dispatch.core.errors import InvalidCommand
    from dispatch.core.personal import parse_subject
    from dispatch.personal.access import export_subject as export
    from gateway.bootstrap import build_services, close_services
    from gateway.cli.stores import stores

    try:
        parse_subject(args.subject)
    except InvalidCommand as exc:
        print(f"intake export-subject: {exc}", file=sys.stderr)
        return 2
    async with stores(settings) as live:
        services = await build_services(live)
        try:
            async with services.pool.acquire() as conn:
                found = await export(conn, args.subject, services.clock.now())
        finally:
            await close_services(services)
    text = json.dumps(found, ensure_ascii=False, indent=2)
    if args.out is None:
        sys.stdout.write(text + "\n")
        return 0
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text + "\n")
    print(f"exported {len(found['identifiers'])} identifier(s), {len(found['cases'])} case(s), "
          f"{len(found['streams'])} other stream(s) to {args.out}")
    return 0
