"""`intake bench channels`: the Twilio SMS webhook (signature check included) on one gateway process.

Starts `intake serve` as ONE child process on a fresh database, then drives it
with `--connections` concurrent keep-alive HTTP connections for `--seconds`:
every request is a distinct inbound SMS signed with Twilio's own
`RequestValidator`. Alongside, CTI `abandoned` events arrive at `--abandon-rate`
per second; abandon-to-task latency is `recorded_at(CallbackTaskOpened) -
recorded_at(CallAbandoned)` read from the log afterwards. Baseline of the same
run: an aiohttp process answering the same requests with an empty 200.

    .venv/bin/python -m bench.channels [--dsn URL] [--redis URL] [--seconds 15] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import asyncpg
from twilio.request_validator import RequestValidator

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
TOKEN = "bench-twilio-token"
PORT = 18181
BASELINE = """
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text='<Response></Response>', content_type='text/xml')
app = web.Application(); app.router.add_post('/channels/twilio/sms', ok)
app.router.add_get('/health', lambda r: ok(r))
web.run_app(app, host='127.0.0.1', port={port}, print=None, access_log=None)
"""


@dataclass(slots=True)
class Run:
    """What one load run measured."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def row(self) -> str:
        """A Markdown table row."""
        lat = sorted(self.latencies) or [0.0]

        def p(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

        rate = len(self.latencies) / self.seconds if self.seconds else 0.0
        return (f"| {self.name} | {len(self.latencies):,} | {self.errors} | {rate:,.0f} | "
                f"{p(0.5):.1f} | {p(0.99):.1f} | {statistics.fmean(lat) * 1000:.1f} |")


def _sms(url: str, validator: RequestValidator, n: int, senders: int) -> tuple[bytes, dict[str, str]]:
    params = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": "ACbench",
              "From": f"+86139{n % senders:08d}", "To": "+8695598", "NumMedia": "0",
              "Body": ["停电了，整栋楼没电", "请问什么时候来电", "电压不稳灯一直闪"][n % 3]}
    headers = {"X-Twilio-Signature": validator.compute_signature(url, params),
               "Content-Type": "application/x-www-form-urlencoded"}
    return urlencode(params).encode(), headers


async def _load(name: str, base: str, seconds: float, connections: int, senders: int) -> Run:
    url = f"{base}/channels/twilio/sms"
    validator = RequestValidator(TOKEN)
    bodies = [_sms(url, validator, n, senders) for n in range(int(seconds * 4000) + 1000)]
    run, cursor = Run(name), iter(bodies)
    stop = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < stop:
            body, headers = next(cursor)
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    run.latencies.append(time.perf_counter() - started)
                else:
                    run.errors += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        run.seconds = time.perf_counter() - began
    return run


async def _abandons(base: str, rate: float, seconds: float) -> int:
    sent = 0
    headers = {"Authorization": "Bearer bench-channel"}
    async with aiohttp.ClientSession() as session:
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            body = {"event_id": f"ab{sent}", "type": "abandoned", "call_id": f"ab{sent}",
                    "caller": f"1378{sent:07d}", "queue": "fault",
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            async with session.post(f"{base}/channels/cti/events", json=body, headers=headers) as r:
                await r.read()
            sent += 1
            await asyncio.sleep(1 / rate)
    return sent


async def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with session.get(f"{base}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not become ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _abandon_latencies(dsn: str) -> list[float]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT extract(epoch FROM t.recorded_at - a.recorded_at) AS s
               FROM events a JOIN events t ON t.type = 'CallbackTaskOpened'
                AND t.data->>'call_id' = a.data->>'call_id'
               WHERE a.type = 'CallAbandoned'""")
    finally:
        await conn.close()
    return sorted(float(r["s"]) for r in rows)


async def _fresh_db(admin: str) -> tuple[str, str]:
    name = f"intake_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(admin)
    return name, urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


async def _drop_db(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _bench(args: argparse.Namespace) -> int:
    base = f"http://127.0.0.1:{PORT}"
    baseline = subprocess.Popen([sys.executable, "-c", BASELINE.format(port=PORT)])  # noqa: ASYNC220
    try:
        await _wait_ready(base, baseline)
        base_run = await _load("baseline: empty aiohttp 200", base, args.seconds, args.connections, 1000)
    finally:
        _stop(baseline)
    name, dsn = await _fresh_db(args.dsn)
    env = {**os.environ, "INTAKE_DATABASE_URL": dsn, "INTAKE_REDIS_URL": args.redis,
           "INTAKE_REDIS_PREFIX": f"bench-{name}:", "INTAKE_HTTP_PORT": str(PORT), "INTAKE_SIA_PORT": "0",
           "INTAKE_TOKENS": "bench-channel:channel:bench", "INTAKE_TWILIO_AUTH_TOKEN": TOKEN,
           "INTAKE_LOG_LEVEL": "warning", "INTAKE_SMS_PROVIDER": "log"}
    serve = "from gateway.cli import main; raise SystemExit(main(['serve']))"
    server = subprocess.Popen([sys.executable, "-c", serve], env=env)  # noqa: ASYNC220
    try:
        await _wait_ready(base, server)
        sms_run, abandoned = await asyncio.gather(
            _load("Twilio SMS webhook (signed)", base, args.seconds, args.connections, 1000),
            _abandons(base, args.abandon_rate, args.seconds))
        await asyncio.sleep(3)
        latencies = await _abandon_latencies(dsn)
    finally:
        _stop(server)
        await _drop_db(args.dsn, name)
    print("| scenario | requests | errors | req/s | p50 ms | p99 ms | mean ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(base_run.row())
    print(sms_run.row())
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        print(f"\nabandon-to-task during the load: {len(latencies)}/{abandoned} tasks, "
              f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
              f"max {latencies[-1] * 1000:.0f} ms")
    return 0


def main(argv: list[str]) -> int:
    """Run the channels benchmark; print Markdown tables."""
    p = argparse.ArgumentParser(prog="intake bench channels")
    p.add_argument("--dsn", default=os.environ.get("INTAKE_BENCH_DATABASE_URL", DEFAULT_DSN))
    p.add_argument("--redis", default=os.environ.get("INTAKE_BENCH_REDIS_URL", DEFAULT_REDIS))
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--abandon-rate", type=float, default=20.0)
    return asyncio.run(_bench(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
