"""`intake bench channels`: the Twilio SMS webhook (signature check included) on one gateway process.

Starts the production topology on a fresh database: ONE `intake serve` with
`INTAKE_ROLE=gateway` (HTTP and channel listeners) and one with
`INTAKE_ROLE=worker` (projections, policies, timers, sender). `wrk` (C, one
thread) drives the gateway with `--connections` keep-alive connections for
`--seconds`; a Lua script makes every request a new inbound SMS: its own
`MessageSid` (a nonce of the wrk run and a counter, so no id is ever sent twice,
whatever the rate and duration) signed in the script with HMAC-SHA1 as Twilio
signs (the signature covers the body). Alongside, CTI `abandoned` events arrive at `--abandon-rate` per
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
local bit = require("bit")
local band, bor, bxor, bnot, rol, lshift, rshift, tobit =
  bit.band, bit.bor, bit.bxor, bit.bnot, bit.rol, bit.lshift, bit.rshift, bit.tobit
local byte, char, rep, format = string.byte, string.char, string.rep, string.format

local function be32(x)  -- 4 bytes, big-endian
  return char(band(rshift(x, 24), 255), band(rshift(x, 16), 255), band(rshift(x, 8), 255), band(x, 255))
end

local function sha1(msg)
  local h0, h1, h2, h3, h4 = tobit(0x67452301), tobit(0xEFCDAB89), tobit(0x98BADCFE),
    tobit(0x10325476), tobit(0xC3D2E1F0)
  local bits = #msg * 8
  msg = msg .. "\\128" .. rep("\\0", (55 - #msg) % 64) .. "\\0\\0\\0\\0" .. be32(bits)
  local w = {{}}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do
      local a, b, c, d = byte(msg, chunk + i * 4, chunk + i * 4 + 3)
      w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
    end
    for i = 16, 79 do
      w[i] = rol(bxor(w[i - 3], w[i - 8], w[i - 14], w[i - 16]), 1)
    end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for i = 0, 79 do
      local f, k
      if i < 20 then f, k = bor(band(b, c), band(bnot(b), d)), 0x5A827999
      elseif i < 40 then f, k = bxor(b, c, d), 0x6ED9EBA1
      elseif i < 60 then f, k = bor(band(b, c), band(b, d), band(c, d)), 0x8F1BBCDC
      else f, k = bxor(b, c, d), 0xCA62C1D6 end
      a, b, c, d, e = tobit(rol(a, 5) + f + e + k + w[i]), a, rol(b, 30), c, d
    end
    h0, h1, h2, h3, h4 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d), tobit(h4 + e)
  end
  return be32(h0) .. be32(h1) .. be32(h2) .. be32(h3) .. be32(h4)
end

local function pad(key, with)
  local out = {{}}
  for i = 1, 64 do out[i] = char(bxor(byte(key, i) or 0, with)) end
  return table.concat(out)
end
local ipad, opad = pad({token}, 0x36), pad({token}, 0x5c)

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(raw)
  local out = {{}}
  for i = 1, #raw, 3 do
    local a, b, c = byte(raw, i, i + 2)
    local n = bor(lshift(a, 16), lshift(b or 0, 8), c or 0)
    for j = 0, 3 do
      out[#out + 1] = j <= (c and 3 or b and 2 or 1)
        and alphabet:sub(band(rshift(n, 18 - 6 * j), 63) + 1, band(rshift(n, 18 - 6 * j), 63) + 1) or "="
    end
  end
  return table.concat(out)
end

-- per message text: the form body and the signed text, "%s" for the sender's
-- 8 digits and then the MessageSid (both orders checked when this was written)
local bodies = {{{bodies}}}
local signed = {{{signed}}}
local senders = {senders}
local nonce = {nonce}
local n = 0

request = function()
  n = n + 1
  local sid = format("SM%s%02d%022d", nonce, tid or 0, n)
  local sender, text = format("%08d", n % senders), n % #bodies + 1
  local signature = base64(sha1(opad .. sha1(ipad .. format(signed[text], sender, sid))))
  return wrk.format("POST", nil, {{["Content-Type"] = "application/x-www-form-urlencoded",
                                  ["X-Twilio-Signature"] = signature}},
                    format(bodies[text], sender, sid))
end

setup = function(thread)
  threads = (threads or 0) + 1
  thread:set("tid", threads)
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


_SENDER, _SID = "SENDERMARK", "SIDMARK"


def _lua(text: str) -> str:
    """`text` as a Lua string literal (its UTF-8 bytes as decimal escapes)."""
    return '"' + "".join(f"\\{b}" for b in text.encode()) + '"'


def _template(text: str) -> str:
    """`text` with the sender's digits, then the id, as `string.format` slots."""
    assert text.index(_SENDER) < text.index(_SID)
    return text.replace("%", "%%").replace(_SENDER, "%s").replace(_SID, "%s")


def write_script(path: Path, url: str, senders: int, nonce: str | None = None) -> None:
    """The wrk Lua script: every request a new SMS, its id `SM<nonce><thread><counter>`, signed.

    `nonce` (8 hex digits) names the wrk run; a fresh one unless given.
    """
    bodies, signed = [], []
    for text in TEXTS:
        params = {"From": f"+86139{_SENDER}", "MessageSid": _SID, "AccountSid": "ACbench",
                  "To": "+8695598", "NumMedia": "0", "Body": text}
        bodies.append(_lua(_template(urlencode(params))))
        # Twilio's signed text: the URL, then every key and its value, keys sorted.
        signed.append(_lua(_template(url + "".join(k + params[k] for k in sorted(params)))))
    path.write_text(LUA.format(
        token=_lua(TOKEN), bodies=", ".join(bodies), signed=", ".join(signed), senders=senders,
        nonce=_lua(nonce or uuid.uuid4().hex[:8])), encoding="utf-8")


async def wrk(name: str, url: str, seconds: float, connections: int, senders: int) -> Run:
    """Run wrk with one thread against `url`, with a script of its own; parse its RESULT line."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "sms.lua"
        write_script(script, url, senders)
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "-s", str(script),
            url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
    line = next((x for x in out.decode().splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.decode()[-500:]}")
    requests, errors, micros, p50, p99, mean = line.split()[1:]
    return Run(name, int(requests), int(errors), int(micros) / 1e6, float(p50), float(p99), float(mean))


async def _abandons(base: str, rate: float, seconds: float) -> int:
    sent = 0
    headers = {"Authorization": "Bearer bench-channel-token-01"}
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


async def _baseline(args: argparse.Namespace) -> Run:
    base = f"http://127.0.0.1:{PORT}"
    baseline = subprocess.Popen([sys.executable, "-c", BASELINE.format(port=PORT)])  # noqa: ASYNC220
    try:
        await _wait_ready(base, baseline)
        return await wrk("baseline: empty aiohttp 200", f"{base}/channels/twilio/sms",
                         args.seconds, args.connections, args.senders)
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


async def _intake(args: argparse.Namespace) -> Measured:
    base = f"http://127.0.0.1:{PORT}"
    name = f"intake_bench_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(args.dsn, name)
    env = {**os.environ, "INTAKE_DATABASE_URL": dsn, "INTAKE_REDIS_URL": args.redis,
           "INTAKE_REDIS_PREFIX": f"bench-{name}:", "INTAKE_SIA_PORT": "0",
           "INTAKE_TOKENS": "bench-channel-token-01:channel:bench", "INTAKE_TWILIO_AUTH_TOKEN": TOKEN,
           "INTAKE_PUBLIC_URL": base,
           "INTAKE_LOG_LEVEL": "warning", "INTAKE_SMS_PROVIDER": "log",
           "INTAKE_ALLOW_OWNER": "1"}  # a scratch database made through the given (owner's) DSN
    gateway = _serve(env, "gateway", PORT)
    worker = None
    try:
        await _wait_ready(base, gateway)  # the gateway applied the migrations
        worker = _serve(env, "worker", PORT + 1, args.worker_nice)
        await _wait_ready(f"http://127.0.0.1:{PORT + 1}", worker)
        measured = await _with_worker(args, base, gateway, worker)
        measured.backlog, measured.drained = await _drain(dsn, args.drain_timeout)
        await asyncio.sleep(args.grace)
        measured.latencies, measured.missing = await _abandon_latencies(dsn)
        _stop(worker)  # the gateway's own capacity: nothing else of intake runs
        measured.runs.append(await _measure("the same, worker stopped", base, args, gateway))
    finally:
        for proc in (gateway, worker):
            if proc is not None:
                _stop(proc)
        await drop_database(args.dsn, name)
    return measured


async def _with_worker(args: argparse.Namespace, base: str, gateway: subprocess.Popen[bytes],
                       worker: subprocess.Popen[bytes]) -> Measured:
    before = _cpu_seconds(worker.pid)
    run, abandoned = await asyncio.gather(
        _measure("Twilio SMS webhook (signed), INTAKE_ROLE=gateway + worker", base, args, gateway),
        _abandons(base, args.abandon_rate, args.seconds))
    print(f"worker CPU during the load: {_cpu_seconds(worker.pid) - before:.1f} s")
    return Measured([run], abandoned)


async def _measure(name: str, base: str, args: argparse.Namespace,
                   gateway: subprocess.Popen[bytes]) -> Run:
    before = _cpu_seconds(gateway.pid)
    run = await wrk(name, f"{base}/channels/twilio/sms", args.seconds, args.connections, args.senders)
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
    base_run = await _baseline(args)
    measured = await _intake(args)
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
