"""The `intake` command: serve, demo, load, replay, verify, migrate, rebuild, status, erase,
retention, export-subject, bench."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable

import asyncpg

from eventstore.errors import StoreUnavailable
from gateway import logging as intake_logging
from gateway.cli.serve import lower_priority, serve
from gateway.cli.stores import run_command
from gateway.settings import MIN_TOKEN_LENGTH, Settings, SettingsError, from_env

BENCHMARKS = ("eventstore", "channels", "worker", "storm", "nearest", "linking", "knowledge", "places",
              "reports", "rebalance", "retention", "shredding")


def weak_tokens(settings: Settings) -> str | None:
    """Why the configured tokens cannot be served with (None: they can).

    Names the role and subject of a short token, never any part of the token itself.
    """
    short = sorted(f"{who.role}:{who.subject}" for token, who in settings.http.tokens.items()
                   if len(token) < MIN_TOKEN_LENGTH)
    if short:
        return (f"INTAKE_TOKENS has tokens shorter than {MIN_TOKEN_LENGTH} characters (for "
                f"{', '.join(short)}); use long random ones, e.g. `openssl rand -hex 24`")
    return None


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.http.tokens:
        print("intake serve: INTAKE_TOKENS is not set; refusing to start without tokens "
              "(`intake demo` prints demo tokens)", file=sys.stderr)
        return 2
    weak = weak_tokens(settings)
    if weak is not None:
        print(f"intake serve: {weak}; refusing to start", file=sys.stderr)
        return 2
    lower_priority(settings.process.nice)
    return run_command(serve(settings))


# The commands below import their modules when run: a command's start-up pays only for itself.
def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    weak = weak_tokens(settings)
    if weak is not None:
        print(f"intake demo: {weak}; refusing to start", file=sys.stderr)
        return 2
    from gateway.cli import demo
    return run_command(demo.run(args, settings))


def _cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli import loader
    return run_command(loader.run(args, settings))


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli import replay
    return run_command(replay.run(args, settings))


def _cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli import verify
    return run_command(verify.run(args, settings))


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli import migrate
    return run_command(migrate.run(args, settings))


def _cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli import rebuild
    return run_command(rebuild.run(args, settings))


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli import status
    return run_command(status.run(args, settings))


def _cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli import erase
    return run_command(erase.run(args, settings))


def _cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli import personal
    return run_command(personal.retention(args, settings))


def _cmd_export_subject(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli import personal
    return run_command(personal.export_subject(args, settings))


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    names = [args.scenario] if args.scenario else list(BENCHMARKS)
    code = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        result = module.main(args.rest)
        code |= int(asyncio.run(result) if asyncio.iscoroutine(result) else result)
    return code


def parser() -> argparse.ArgumentParser:
    """The argument parser of `intake`."""
    p = argparse.ArgumentParser(prog="intake", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="HTTP API + console, channel listeners, projections, timers")
    demo = sub.add_parser("demo", help="serve after loading demo data")
    demo.add_argument("--storm", action="store_true", help="play a simulated storm")
    load = sub.add_parser("load", help="import reference data (GeoJSON or CSV) as events")
    load.add_argument("paths", nargs="+")
    replay = sub.add_parser("replay", help="a case's history")
    replay.add_argument("case_id")
    replay.add_argument("--as-of", dest="as_of")
    replay.add_argument("--json", action="store_true")
    sub.add_parser("verify", help="check tamper evidence of the whole store")
    sub.add_parser("migrate", help="as the owner: apply migrations, grant the app role (INTAKE_APP_ROLE)")
    rebuild = sub.add_parser("rebuild", help="rebuild read models from the log")
    rebuild.add_argument("projection", nargs="?",
                         help="a projection, or a policy with state of its own (linking); default all")
    status = sub.add_parser("status", help="runners: partitions, owner processes, checkpoints, lag")
    status.add_argument("--json", action="store_true", help="the JSON of GET /api/v1/status")
    from gateway.cli import erase
    erase.add_arguments(sub.add_parser("erase", help="erase a data subject: its keys, its read-model rows"))
    from gateway.cli import personal
    personal.add_arguments(sub)
    bench = sub.add_parser("bench", help="the benchmarks")
    bench.add_argument("scenario", nargs="?", choices=BENCHMARKS)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    return p


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "serve": _cmd_serve,
    "demo": _cmd_demo,
    "load": _cmd_load,
    "replay": _cmd_replay,
    "verify": _cmd_verify,
    "migrate": _cmd_migrate,
    "rebuild": _cmd_rebuild,
    "status": _cmd_status,
    "erase": _cmd_erase,
    "retention": _cmd_retention,
    "export-subject": _cmd_export_subject,
    "bench": _cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parser().parse_args(argv)
    try:
        settings = from_env()
    except SettingsError as exc:
        print(f"intake: configuration error: {exc}", file=sys.stderr)
        return 2
    intake_logging.configure(settings.process.log_format, settings.process.log_level)
    try:
        return COMMANDS[args.command](args, settings)
    except UNREACHABLE as exc:
        print(f"intake {args.command}: {unreachable(exc)}", file=sys.stderr)
        return STORE_UNREACHABLE


STORE_UNREACHABLE = 3
"""Exit code of a command that could not reach PostgreSQL (2: a setting is invalid; `verify`'s 1: altered)."""

UNREACHABLE = (StoreUnavailable, ConnectionError, asyncpg.PostgresConnectionError,
               asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError)
"""What connecting to an `INTAKE_DATABASE_URL` that is wrong or down raises."""


def unreachable(exc: BaseException) -> str:
    """One line saying the database could not be reached, and why."""
    if isinstance(exc, StoreUnavailable):
        return str(exc)
    return f"cannot connect to PostgreSQL: {exc}"


if __name__ == "__main__":
    sys.exit(main())
