"""`intake bench channels`: the Twilio SMS webhook (signature check included) on one gateway process.

Starts the production topology on a fresh database: ONE `intake serve` with
`INTAKE_ROLE=gateway` (HTTP and channel listeners) and one with
`INTAKE_ROLE=worker` (projections, policies, timers, sender). `wrk` (C, one
thread) drives the gateway with `--connections` keep-alive connections for
`--seconds`; a Lua script cycles through a pool of distinct inbound SMS, each
signed with Twilio's own `RequestValidator` beforehand (the signature covers
the body). Alongside, CTI `abandoned` events arrive at `--abandon-rate` per
second; abandon-to-task latency is `recorded_at(CallbackTaskOpened) -
recorded_at(CallAbandoned)` from the log, for the abandons recorded during
the load. When the load ends, the SMS the worker's `sms-intake` policy has
not yet taken in are counted and the time until it has is measured (how
far the worker fell behind). Then the same load once more with the worker stopped: the
gateway's own capacity. Baseline of the same run: the same wrk load on an
aiohttp process answering with an empty 200 (the ceiling of one Python process).

    .venv/bin/python -m bench.channels [--dsn URL] [--redis URL] [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
from twilio.request_validator import RequestValidator

from bench.scratch import add_server_arguments, create_database, drop_database, load_average
from bench.worker import SMS_BACKLOG_SQL, SMS_PENDING_SQL

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
LUA = """
local pool = {{
{entries}
}}
local requests = {{}}
local i = 0
init = function(args)
  for n, entry in ipairs(pool) do
    requests[n] = wrk.format("POST", nil, {{["Content-Type"] = "application/x-www-form-urlencoded",
                                           ["X-Twilio-Signature"] = entry[2]}}, entry[1])
  end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %.3f %.3f %.3f\\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000))
end
"""
TEXTS = ("停电了，整栋楼没电", "请问什么时候来电", "电压不稳灯一直闪")


@dataclass(frozen=True, slots=True)
class Run:
    """What one wrk run measured (latencies in ms)."""

    name: str
    requests: int
    errors: int
    seconds: float
    p50: float
    p99: float
    mean: float

    def row(self) -> str:
        """A Markdown table row."""
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (f"| {self.name} | {self.requests:,} | {self.errors} | {rate:,.0f} | "
                f"{self.p50:.1f} | {self.p99:.1f} | {self.mean:.1f} |")


def write_script(path: Path, url: str, count: int, senders: int) -> None:
    """The wrk Lua script with `count` distinct signed SMS requests."""
    validator = RequestValidator(TOKEN)
    entries = []
    run = uuid.uuid4().hex[:8]
    for n in range(count):
        params = {"MessageSid": f"SM{run}{n:024d}", "AccountSid": "ACbench",
                  "From": f"+86139{n % senders:08d}", "To": "+8695598", "NumMedia": "0",
                  "Body": TEXTS[n % 3]}
        signature = validator.compute_signature(url, params)
        entries.append(f'{{"{urlencode(params)}", "{signature}"}},')
    path.write_text(LUA.format(entries="\n".join(entries)), encoding="utf-8")


async def wrk(name: str, url: str, script: Path, seconds: float, connections: int) -> Run:
    """Run wrk with one thread against `url`; parse the script's RESULT line."""
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "-s", str(script), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    line = next((x for x in out.decode().splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.decode()[-500:]}")
    requests, errors, micros, p50, p99, mean = line.split()[1:]
    return Run(name, int(requests), int(errors), int(micros) / 1e6, float(p50), float(p99), float(mean))


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


_LATENCY_SQL = """SELECT extract(epoch FROM t.recorded_at - a.recorded_at) AS s
    FROM events a LEFT JOIN events t ON t.type = 'CallbackTaskOpened'
     AND t.data->>'call_id' = a.data->>'call_id'
    WHERE a.type = 'CallAbandoned'"""


async def _abandon_latencies(dsn: str) -> tuple[list[float], int]:
    """Abandon-to-task seconds of every abandon that has its task, and how many have none."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(_LATENCY_SQL)
    finally:
        await conn.close()
    found = sorted(float(r["s"]) for r in rows if r["s"] is not None)
    return found, len(rows) - len(found)


async def _drain(dsn: str, patience: float) -> tuple[int, float | None]:
    """SMS the worker had not taken in when the load ended, and the seconds until it had."""
    conn = await asyncpg.connect(dsn)
    try:
        start = time.perf_counter()
        backlog = int(await conn.fetchval(SMS_BACKLOG_SQL))
        left = backlog > 0
        while left and time.perf_counter() - start < patience:
            await asyncio.sleep(0.05)
            left = bool(await conn.fetchval(SMS_PENDING_SQL))
        return backlog, None if left else time.perf_counter() - start
    finally:
        await conn.close()


def _serve(env: dict[str, str], role: str, port: int, nice: int | None = None) -> subprocess.Popen[bytes]:
    """`intake serve` in `role`; `nice`: its INTAKE_NICE (None: the role's default)."""
    code = "from gateway.cli.main import main; raise SystemExit(main(['serve']))"
    settings = {"INTAKE_ROLE": role, "INTAKE_HTTP_PORT": str(port)}
    if nice is not None:
        settings["INTAKE_NICE"] = str(nice)
    return subprocess.Popen([sys.executable, "-c", code], env={**env, **settings})


async def _baseline(args: argparse.Namespace, script: Path) -> Run:
    base = f"http://127.0.0.1:{PORT}"
    baseline = subprocess.Popen([sys.executable, "-c", BASELINE.format(port=PORT)])  # noqa: ASYNC220
    try:
        await _wait_ready(base, baseline)
        return await wrk("baseline: empty aiohttp 200", f"{base}/channels/twilio/sms", script,
                         args.seconds, args.connections)
    finally:
        _stop(baseline)


@dataclass(slots=True)
class Measured:
    """The intake runs and the abandon-to-task latencies of the main one."""

    runs: list[Run]
    abandoned: int = 0
    latencies: list[float] = field(default_factory=list)
    missing: int = 0
    backlog: int = 0
    drained: float | None = None


async def _intake(args: argparse.Namespace, scripts: tuple[Path, Path]) -> Measured:
    base = f"http://127.0.0.1:{PORT}"
    name = f"intake_bench_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, name)
    env = {**os.environ, "INTAKE_DATABASE_URL": dsn, "INTAKE_REDIS_URL": args.redis,
           "INTAKE_REDIS_PREFIX": f"bench-{name}:", "INTAKE_SIA_PORT": "0",
           "INTAKE_TOKENS": "bench-channel:channel:bench", "INTAKE_TWILIO_AUTH_TOKEN": TOKEN,
           "INTAKE_LOG_LEVEL": "warning", "INTAKE_SMS_PROVIDER": "log"}
    gateway = _serve(env, "gateway", PORT)
    worker = None
    try:
        await _wait_ready(base, gateway)  # the gateway applied the migrations
        worker = _serve(env, "worker", PORT + 1, args.worker_nice)
        await _wait_ready(f"http://127.0.0.1:{PORT + 1}", worker)
        measured = await _with_worker(args, base, scripts[0], gateway, worker)
        measured.backlog, measured.drained = await _drain(dsn, args.drain_timeout)
        await asyncio.sleep(args.grace)
        measured.latencies, measured.missing = await _abandon_latencies(dsn)
        _stop(worker)  # the gateway's own capacity: nothing else of intake runs
        measured.runs.append(await _measure("the same, worker stopped", base, scripts[1], args, gateway))
    finally:
        for proc in (gateway, worker):
            if proc is not None:
                _stop(proc)
        await drop_database(args.dsn, name)
    return measured


async def _with_worker(args: argparse.Namespace, base: str, script: Path,
                       gateway: subprocess.Popen[bytes], worker: subprocess.Popen[bytes]) -> Measured:
    before = _cpu_seconds(worker.pid)
    run, abandoned = await asyncio.gather(
        _measure("Twilio SMS webhook (signed), INTAKE_ROLE=gateway + worker", base, script, args, gateway),
        _abandons(base, args.abandon_rate, args.seconds))
    print(f"worker CPU during the load: {_cpu_seconds(worker.pid) - before:.1f} s")
    return Measured([run], abandoned)


async def _measure(name: str, base: str, script: Path, args: argparse.Namespace,
                   gateway: subprocess.Popen[bytes]) -> Run:
    before = _cpu_seconds(gateway.pid)
    run = await wrk(name, f"{base}/channels/twilio/sms", script, args.seconds, args.connections)
    used = _cpu_seconds(gateway.pid) - before
    print(f"{name}: gateway CPU {used:.1f} s in {run.seconds:.1f} s, "
          f"{used * 1e3 / max(run.requests, 1):.2f} ms per request")
    return run


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def _bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("intake bench channels needs wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        url = f"http://127.0.0.1:{PORT}/channels/twilio/sms"
        scripts = (Path(tmp) / "sms.lua", Path(tmp) / "alone.lua")
        for script in scripts:  # distinct message ids in each
            write_script(script, url, int(args.seconds * args.pool_rate), args.senders)
        base_run = await _baseline(args, scripts[0])
        measured = await _intake(args, scripts)
    print(f"load average before: {args.load}; after: {load_average()}")
    print("| scenario | requests | errors | req/s | p50 ms | p99 ms | mean ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in (base_run, *measured.runs):
        print(run.row())
    drained = "not within --drain-timeout" if measured.drained is None else f"{measured.drained:.1f} s"
    print(f"\nworker backlog when the load ended: {measured.backlog:,} SMS not yet taken in "
          f"(sms-intake policy); all taken in after {drained}")
    lat = measured.latencies
    if lat:
        print(f"\nabandon-to-task during the load (gateway + worker): {len(lat)} of {measured.abandoned} "
              f"abandons have their task ({measured.missing} without, {args.grace:g} s after the load), "
              f"p50 {statistics.median(lat) * 1000:.0f} ms, p99 {_pct(lat, 0.99):.0f} ms, "
              f"max {lat[-1] * 1000:.0f} ms")
    return 0


def main(argv: list[str]) -> int:
    """Run the channels benchmark; print Markdown tables."""
    p = argparse.ArgumentParser(prog="intake bench channels")
    add_server_arguments(p)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--abandon-rate", type=float, default=20.0)
    p.add_argument("--senders", type=int, default=1000)
    p.add_argument("--pool-rate", type=int, default=4000,
                   help="distinct signed SMS per second of load (wrk cycles through them)")
    p.add_argument("--worker-nice", type=int, default=None,
                   help="INTAKE_NICE of the worker process (default: the worker role's own, "
                        "gateway.settings.WORKER_NICE; the gateway runs at 0)")
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="seconds to wait for the worker to take in the SMS of the load")
    p.add_argument("--grace", type=float, default=3.0, help="seconds to wait for the last tasks")
    args = p.parse_args(argv)
    args.load = load_average()
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
