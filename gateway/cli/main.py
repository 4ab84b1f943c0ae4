"""The `intake` command: serve, demo, load, replay, verify, rebuild, bench."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import importlib
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import uvloop
from aiohttp import web

from gateway import embedded
from gateway import logging as intake_logging
from gateway.settings import Settings, SettingsError, Token, from_env

SHUTDOWN_TIMEOUT = 10.0
BENCHMARKS = ("eventstore", "channels", "worker", "nearest", "linking")


@contextlib.asynccontextmanager
async def stores(settings: Settings) -> AsyncIterator[Settings]:
    """Settings with URLs, starting embedded servers for what is not configured."""
    configured = settings.stores
    servers = await asyncio.to_thread(
        embedded.start,
        configured.data_dir,
        postgres=configured.database_url is None,
        redis=configured.redis_url is None,
    )
    try:
        yield dataclasses.replace(settings, stores=dataclasses.replace(
            configured,
            database_url=configured.database_url or servers.database_url,
            redis_url=configured.redis_url or servers.redis_url,
        ))
    finally:
        await asyncio.to_thread(servers.stop)


T = TypeVar("T")


def run_command(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop (libuv: less CPU per request than asyncio's loop)."""
    return uvloop.run(main)


def demo_tokens() -> dict[str, Token]:
    """Fresh random tokens for every role, printed by `intake demo`."""
    subjects = {"channel": "demo-channels", "agent": "A001", "dispatcher": "D001",
                "unit": "U001", "auditor": "AU01", "admin": "admin"}
    return {f"{role}-{secrets.token_urlsafe(12)}": Token(role, subject)
            for role, subject in subjects.items()}


def _describe(url: str | None) -> str:
    if url is None:
        return "none"
    return url.split("@")[-1] if "@" in url else url


GC_THRESHOLD = (10_000, 10, 10)
"""Young-generation collection every 10,000 net allocations instead of CPython's 700."""


def tune_collector() -> None:
    """Tune the cyclic garbage collector for a long-running server, once start-up is done.

    `gc.freeze()` takes what start-up built (modules, the app, reference data)
    out of the collector's sight: otherwise every full collection walks it
    again, pausing every request in flight. A young collection walks what is
    alive at that moment, mostly requests in flight, so at 700 allocations a
    busy gateway ran one every few milliseconds. Measured in `bench.channels`
    (bench/RESULTS.md, session 6): 13-16 full collections of the gateway in
    20 s of load took 20-90 ms each, and 1,250-2,030 young ones took
    0.5-0.7 s in all; tuned, 2 full and 172 young collections took 0.1 s.
    Reference cycles are still collected, only less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def lower_priority(nice: int) -> int:
    """Raise this process's niceness to at least `nice` (INTAKE_NICE); return the niceness now.

    Call it before any thread starts: Linux keeps a niceness per thread, and a new
    thread takes its creator's. Never lowers a niceness the process was started
    with (that needs privilege). Why the worker defaults to 10: on a host whose
    CPUs it shares with the gateway, accepting every contact goes first and the
    worker's reactions catch up; see `gateway.settings.WORKER_NICE`.
    """
    now = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > now:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        now = nice
    return now


AfterStart = Callable[[Settings, web.Application], Awaitable[None]]


async def serve(settings: Settings, *, after_start: AfterStart | None = None) -> int:
    """Run the gateway until SIGINT / SIGTERM, then drain and close."""
    from gateway.app import create_app

    async with stores(settings) as live:
        app = create_app(live)
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, live.http.host, live.http.port)
        await site.start()
        tune_collector()
        print(f"intake listening on http://{live.http.host}:{live.http.port}", flush=True)
        print(f"  postgres: {_describe(live.stores.database_url)}", flush=True)
        print(f"  redis:    {_describe(live.stores.redis_url)}", flush=True)
        print(f"  role:     {live.process.role}, niceness {os.getpriority(os.PRIO_PROCESS, 0)}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            if after_start is not None:
                await after_start(live, app)
            await stop.wait()
        finally:
            print("intake shutting down: draining requests", flush=True)
            await runner.cleanup()
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.http.tokens:
        print("intake serve: INTAKE_TOKENS is not set; refusing to start without tokens "
              "(`intake demo` prints demo tokens)", file=sys.stderr)
        return 2
    lower_priority(settings.process.nice)
    return run_command(serve(settings))


def _delegate(module: str, function: str) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        target: Callable[[argparse.Namespace, Settings], Any] = getattr(
            importlib.import_module(module), function)
        result = target(args, settings)
        return int(run_command(result) if asyncio.iscoroutine(result) else result)
    return run


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
    rebuild = sub.add_parser("rebuild", help="rebuild read models from the log")
    rebuild.add_argument("projection", nargs="?",
                         help="a projection, or a policy with state of its own (linking); default all")
    bench = sub.add_parser("bench", help="the benchmarks")
    bench.add_argument("scenario", nargs="?", choices=BENCHMARKS)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    return p


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "serve": _cmd_serve,
    "demo": _delegate("gateway.cli.demo", "run"),
    "load": _delegate("gateway.cli.loader", "run"),
    "replay": _delegate("gateway.cli.replay", "run"),
    "verify": _delegate("eventstore.tamper", "run_cli"),
    "rebuild": _delegate("gateway.cli.rebuild", "run"),
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
    return COMMANDS[args.command](args, settings)


if __name__ == "__main__":
    sys.exit(main())
