"""`intake serve`: the gateway and its background work until SIGINT / SIGTERM; demo tokens."""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from gateway.cli.stores import stores
from gateway.settings import Settings, Token

SHUTDOWN_TIMEOUT = 10.0


def demo_tokens() -> dict[str, Token]:
    """Fresh random tokens for every role, printed by `intake demo`; the citizen form's
    channel token may post web requests only (it sits in a public page's address)."""
    subjects = {"channel": "demo-channels", "agent": "A001", "dispatcher": "D001",
                "unit": "U001", "auditor": "AU01", "admin": "admin"}
    tokens = {f"{role}-{secrets.token_urlsafe(12)}": Token(role, subject)
              for role, subject in subjects.items()}
    tokens[f"web-{secrets.token_urlsafe(12)}"] = Token("channel", "citizen-form", frozenset({"web"}))
    tokens[f"subcentre-{secrets.token_urlsafe(12)}"] = Token("dispatcher", "D002", org=DEMO_SUBCENTRE)
    return tokens


DEMO_SUBCENTRE = "SC610402"
"""The demo's scoped dispatcher works for the 秦都区 sub-centre (gis_data/demo_org.geojson)."""


def _describe(url: str | None) -> str:
    if url is None:
        return "none"
    return url.split("@")[-1] if "@" in url else url


def _user(url: str | None) -> str:
    return (urlsplit(url).username or "the default user") if url else "-"


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


async def refusal_of(settings: Settings) -> str | None:
    """Why this process must not serve on its database, if it must not (one line).

    A superuser or the log's owner could disable the append-only triggers and
    rewrite history: production connects as the application role that
    `intake migrate` grants (INSERT and SELECT on the log). INTAKE_ALLOW_OWNER=1
    serves anyway (and applies pending migrations at start, as before).
    """
    if settings.stores.allow_owner or settings.stores.database_url is None:
        return None
    from eventstore.migrate import pending
    from eventstore.roles import too_privileged
    from gateway.schema import SCHEMA

    try:
        conn = await asyncpg.connect(settings.stores.database_url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None  # unreachable: the start fails as it would have, naming the store
    try:
        reason = await too_privileged(conn)
        if reason is not None:
            return (f"refusing to serve: {reason}; connect as the application role "
                    "(`intake migrate` grants it) or set INTAKE_ALLOW_OWNER=1")
        waiting = await pending(conn, SCHEMA)
    finally:
        await conn.close()
    if waiting:
        return f"{len(waiting)} migrations are pending: run `intake migrate` as the log's owner first"
    return None


AfterStart = Callable[[Settings, web.Application], Awaitable[None]]


async def serve(settings: Settings, *, after_start: AfterStart | None = None) -> int:
    """Run the gateway until SIGINT / SIGTERM, then drain and close."""
    from gateway.app import create_app, make_runner

    async with stores(settings) as live:
        refusal = await refusal_of(live)
        if refusal is not None:
            print(f"intake serve: {refusal}", file=sys.stderr, flush=True)
            return 2
        app = create_app(live)
        runner = make_runner(app, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, live.http.host, live.http.port)
        await site.start()
        tune_collector()
        print(f"intake listening on http://{live.http.host}:{live.http.port}", flush=True)
        print(f"  postgres: {_describe(live.stores.database_url)} as {_user(live.stores.database_url)}",
              flush=True)
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
