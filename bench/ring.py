"""`python -m bench.ring`: how long after a CTI `offered` event the agent's console hears the ring.

One process serves the whole app (HTTP, projections, the live stream) on a fresh database with
real PostgreSQL and Redis. An agent's live stream (`GET /api/v1/stream`, as the console reads it)
is open; `--calls` CTI `offered` events naming that agent are posted one after another,
`--pause` seconds apart. Latency = from sending the POST to reading the `ring` change of that
call on the stream (which is when the console fetches the caller card), i.e. commit, the
`callers` projection, Redis fan-out and SSE together. The card fetch itself is timed after.
The issue asks for the card within 1 s.

    .venv/bin/python -m bench.ring [--dsn URL] [--redis URL] [--calls 200] [--pause 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from bench.scratch import add_server_arguments, create_database, drop_database, load_average
from gateway.app import create_app, make_runner
from gateway.bootstrap import build_services, close_services
from gateway.logging import configure
from gateway.settings import from_env

PORT = 18191
AGENT, CHANNEL = "bench-agent", "bench-channel"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _follow(http: aiohttp.ClientSession, base: str, heard: dict[str, float],
                  ready: asyncio.Event) -> None:
    async with http.get(f"{base}/api/v1/stream", headers={"Authorization": f"Bearer {AGENT}"}) as stream:
        buffer = ""
        while True:
            buffer += (await stream.content.readany()).decode()
            *blocks, buffer = buffer.split("\n\n")
            for block in blocks:
                if "event: mode" in block:
                    ready.set()
                data = next((line[6:] for line in block.splitlines() if line.startswith("data: ")), None)
                if data and '"ring"' in data:
                    change = json.loads(data)
                    heard.setdefault(change["data"]["call_id"], time.perf_counter())


async def _run(args: argparse.Namespace) -> int:
    configure("json", "warning")
    name = f"intake_bench_ring_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, name)
    settings = from_env({"INTAKE_DATABASE_URL": dsn, "INTAKE_REDIS_URL": args.redis,
                         "INTAKE_REDIS_PREFIX": f"{name}:", "INTAKE_SIA_PORT": "0",
                         "INTAKE_TOKENS": f"{AGENT}:agent:A001,{CHANNEL}:channel:pbx"})
    services = await build_services(settings)
    runner = make_runner(create_app(settings, services=services), shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT).start()
    base = f"http://127.0.0.1:{PORT}"
    sent: dict[str, float] = {}
    heard: dict[str, float] = {}
    card: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            ready = asyncio.Event()
            follower = asyncio.create_task(_follow(http, base, heard, ready))
            await asyncio.wait_for(ready.wait(), 10)
            for n in range(args.calls):
                call_id = f"ring-{n}"
                body = {"event_id": call_id, "type": "offered", "call_id": call_id, "queue": "12345",
                        "caller": f"+86 139 {n % 10_000:04d} {n % 7:04d}", "agent": "A001",
                        "at": datetime.now(UTC).isoformat()}
                sent[call_id] = time.perf_counter()
                async with http.post(f"{base}/channels/cti/events", json=body,
                                     headers={"Authorization": f"Bearer {CHANNEL}"}) as response:
                    assert response.status == 201, await response.text()
                await asyncio.sleep(args.pause)
            deadline = time.perf_counter() + 10
            while len(heard) < len(sent) and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # (the follower fills `heard`; a poll keeps it simple)
            for n in range(0, args.calls, max(1, args.calls // 50)):
                started = time.perf_counter()
                async with http.get(f"{base}/api/v1/callers/+86 139 {n % 10_000:04d} {n % 7:04d}",
                                    headers={"Authorization": f"Bearer {AGENT}"}) as response:
                    assert response.status == 200
                    await response.read()
                card.append(time.perf_counter() - started)
            follower.cancel()
    finally:
        await runner.cleanup()
        await close_services(services)
        await drop_database(args.dsn, name)
    latencies = [(heard[c] - sent[c]) * 1000 for c in sent if c in heard]
    print(f"load average {load_average()}; {len(sent)} calls, {len(latencies)} rings heard")
    print(f"ring latency ms: p50 {_pct(latencies, .5):.1f}  p95 {_pct(latencies, .95):.1f}  "
          f"p99 {_pct(latencies, .99):.1f}  max {max(latencies):.1f}  mean {statistics.fmean(latencies):.1f}")
    card_ms = [c * 1000 for c in card]
    print(f"card fetch ms ({len(card_ms)}): p50 {_pct(card_ms, .5):.1f}  p99 {_pct(card_ms, .99):.1f}")
    return 0 if len(latencies) == len(sent) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_arguments(parser)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--pause", type=float, default=0.05)
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
