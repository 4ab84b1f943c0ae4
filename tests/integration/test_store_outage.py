"""With PostgreSQL or Redis gone, intake answers as CONTRACT.md says and recovers by itself.

Five ways PostgreSQL goes away, each against every channel's write endpoint at
once: (a) it refuses connections (`ALLOW_CONNECTIONS false`, sessions
terminated), (b) its sessions are terminated under writes in flight, (c) the
server stopped (a TCP proxy in front of it closed), (d) packets dropped (the
proxy accepts bytes and forwards nothing), (e) it answers read-only (a standby
after a failover). Every write answers 503 with
`Retry-After` within 2 s of its arrival, a DC-09 frame gets no ACK, and once
the database is back the same endpoints answer 2xx without a restart. The 503 is
the JSON error envelope, or GeoReport v2's error array (in JSON or XML, as the
path asks) on the Open311 endpoints.

Bugs these catch: a deadline missing or longer than 2 s (main allowed 5 s and
hung on (a) and (d)); a refusal at connect time (SQLSTATE 55000) that leaves
group-committed appends unanswered; a terminated session's error answered 500;
a connection stuck in an abandoned statement handed out again after recovery.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.etree import ElementTree

import asyncpg
import pytest
from twilio.request_validator import RequestValidator

from bench.scratch import database_dsn
from channels import sia
from eventstore.postgres import create_pool
from gateway.app import create_app
from gateway.bootstrap import build_services, close_services
from gateway.services import SERVICES
from gateway.settings import Settings, TwilioSettings
from gateway.sia_listener import SiaReceiver
from tests.conftest import auth
from tests.integration.alarm_helpers import events_of
from tests.integration.tcp_proxy import TcpProxy

DEADLINE = 2.0
TWILIO_TOKEN = "twilio-outage-token"
PUBLIC = "https://hotline.example.cn"

CASE = {
    "category": "consultation",
    "channel": "phone",
    "caller": {"name": "赵六", "phone": "13800000001"},
    "description": "咨询电费",
}


def _target(dsn: str) -> tuple[str, int]:
    parts = urlsplit(dsn)
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    if socket_dir and socket_dir.startswith("/"):
        return str(Path(socket_dir) / f".s.PGSQL.{parts.port or 5432}"), 0
    return parts.hostname or "127.0.0.1", parts.port or 5432


@pytest.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(*_target(pg_dsn))
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def outage_client(
    aiohttp_client: Any, settings: Settings, pg_dsn: str, proxy: TcpProxy
) -> AsyncIterator[Any]:
    database = urlsplit(pg_dsn).path
    proxied = dataclasses.replace(
        settings,
        stores=dataclasses.replace(
            settings.stores, database_url=f"postgresql://postgres@127.0.0.1:{proxy.port}{database}"),
        twilio=TwilioSettings(TWILIO_TOKEN),
        http=dataclasses.replace(settings.http, public_url=PUBLIC),
    )
    services = await build_services(proxied)
    try:
        yield await aiohttp_client(create_app(proxied, services=services))
    finally:
        await close_services(services)


def _sia_frame(seq: int, account: str = "5555") -> bytes:
    body = b'"SIA-DCS"%04dL0#%s[#%s|Nri1/MA01]' % (seq, account.encode(), account.encode())
    return b"\n%04X0%03X" % (sia.crc16_arc(body), len(body)) + body + b"\r"


Write = Callable[[Any, str], Awaitable[Any]]


async def _case(client: Any, n: str) -> Any:
    return await client.post("/api/v1/cases", json=CASE, headers=auth("t-agent"))


async def _cti(client: Any, n: str) -> Any:
    body = {"event_id": f"cti-{n}", "type": "offered", "call_id": f"call-{n}", "caller": "13912345678",
            "queue": "95598", "at": "2026-11-23T08:00:00Z"}
    return await client.post("/channels/cti/events", json=body, headers=auth("t-channel"))


async def _sms(client: Any, n: str) -> Any:
    params = {"MessageSid": f"SM{uuid.uuid5(uuid.NAMESPACE_URL, n).hex}", "From": "+8613912345678",
              "To": "+8695598", "Body": "我家停电了", "NumMedia": "0"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + "/channels/twilio/sms", params)
    return await client.post("/channels/twilio/sms", data=urlencode(params).encode(), headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})


async def _alarm(client: Any, n: str) -> Any:
    body = {"event_id": f"alarm-{n}", "account": "9999", "code": "MA", "at": "2026-11-23T08:00:00Z"}
    return await client.post("/channels/alarm/events", json=body, headers=auth("t-channel"))


async def _open311(client: Any, n: str, fmt: str = "json") -> Any:
    form = {"api_key": "t-channel", "service_code": "complaint", "description": f"噪音扰民 {n}",
            "address_string": "秦都区人民路1号"}
    return await client.post(f"/open311/v2/requests.{fmt}", data=form, headers={"Idempotency-Key": n})


async def _open311_xml(client: Any, n: str) -> Any:
    return await _open311(client, f"{n}-xml", "xml")


WRITES: dict[str, Write] = {
    "POST /api/v1/cases": _case, "CTI": _cti, "Twilio SMS": _sms, "alarm HTTP": _alarm, "Open311": _open311,
    "Open311 XML": _open311_xml,
}


def refused_for_the_store(name: str, body: Any) -> bool:
    """The store's 503 as each endpoint words it: the envelope, or GeoReport v2's error array."""
    if name == "Open311 XML":
        return ElementTree.fromstring(body).findtext("error/code") == "503"
    if name == "Open311":
        return [e["code"] for e in body] == [503]
    return bool(body["error"]["code"] == "store_unavailable")


async def _timed(write: Write, client: Any, n: str) -> tuple[int, dict[str, str], Any, float]:
    started = time.monotonic()
    response = await write(client, n)
    elapsed = time.monotonic() - started
    body = await response.json() if response.content_type == "application/json" else await response.text()
    return response.status, dict(response.headers), body, elapsed


async def _sia(client: Any, seq: int) -> tuple[bytes | None, float]:
    receiver = SiaReceiver(client.app[SERVICES])
    started = time.monotonic()
    answer = await receiver.handle(_sia_frame(seq), "sia-tcp", "127.0.0.1:40000", "127.0.0.1")
    return answer, time.monotonic() - started


async def assert_all_refused(client: Any, tag: str) -> None:
    """Every write endpoint at once: 503 + Retry-After within 2 s; the DC-09 frame unanswered."""
    frame = asyncio.create_task(_sia(client, 1))
    results = await asyncio.gather(*(_timed(w, client, f"{tag}-{i}")
                                     for i, w in enumerate(WRITES.values())))
    for name, (status, headers, body, elapsed) in zip(WRITES, results, strict=True):
        assert status == 503, (name, status, body)
        assert elapsed < DEADLINE, (name, elapsed)
        assert "Retry-After" in headers, name
        assert refused_for_the_store(name, body), (name, body)
    answer, elapsed = await frame
    assert answer is None  # no ACK: the device retries
    assert elapsed < DEADLINE


async def assert_recovered(client: Any, tag: str) -> None:
    """Without a restart: /health is 200 again and every endpoint commits (DC-09 gets its ACK)."""
    deadline = time.monotonic() + 10
    while (await _case(client, tag)).status != 201:
        assert time.monotonic() < deadline, "no recovery within 10 s"
        await asyncio.sleep(0.1)
    results = await asyncio.gather(*(_timed(w, client, f"{tag}-ok-{i}")
                                     for i, w in enumerate(WRITES.values())))
    for name, (status, _, body, _) in zip(WRITES, results, strict=True):
        assert 200 <= status < 300, (name, status, body)
    answer, _ = await _sia(client, 2)
    assert answer is not None and b'"ACK"' in answer
    assert (await client.get("/health")).status == 200


@pytest.fixture
async def admin(pg_admin_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_admin_dsn)
    yield conn
    await conn.close()


async def _terminate(admin: asyncpg.Connection, database: str, spare: int = 0) -> int:
    """Terminate every session of `database` but the admin's own (and `spare`'s)."""
    return int(await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid() AND pid <> $2", database, spare))


async def test_connections_refused(outage_client: Any, admin: asyncpg.Connection, pg_dsn: str) -> None:
    """(a) The database refuses connections and its sessions are gone."""
    database = urlsplit(pg_dsn).path.lstrip("/")
    assert (await _case(outage_client, "warm")).status == 201
    await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    try:
        await _terminate(admin, database)
        await assert_all_refused(outage_client, "refused")
        health = await (await outage_client.get("/health")).json()
        assert health["dependencies"]["postgres"]["ok"] is False
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    await assert_recovered(outage_client, "refused")


async def test_sessions_terminated_under_writes_in_flight(
    outage_client: Any, admin: asyncpg.Connection, pg_dsn: str, pg_admin_dsn: str
) -> None:
    """(b) Sessions are killed while writes wait in them (and again as they reconnect)."""
    database = urlsplit(pg_dsn).path.lstrip("/")
    assert (await _case(outage_client, "warm")).status == 201
    locker = await asyncpg.connect(database_dsn(pg_admin_dsn, database))
    killing = True

    async def keep_killing() -> None:
        while killing:  # the locker survives: with its lock gone, a write could commit between kills
            await _terminate(admin, database, spare=locker.get_server_pid())
            await asyncio.sleep(0.05)

    try:
        await locker.execute("BEGIN; LOCK TABLE events IN SHARE MODE")  # appends now wait in their sessions
        writes = asyncio.gather(*(_timed(w, outage_client, f"killed-{i}")
                                  for i, w in enumerate(WRITES.values())))
        deadline = time.monotonic() + DEADLINE
        while not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' "
                "AND pid <> $2", database, locker.get_server_pid()):
            assert time.monotonic() < deadline, "no write reached the database"
            await asyncio.sleep(0.01)
        killer = asyncio.create_task(keep_killing())
        try:
            for name, (status, headers, body, elapsed) in zip(WRITES, await writes, strict=True):
                assert status == 503 and "Retry-After" in headers, (name, status, body)
                assert elapsed < DEADLINE, (name, elapsed)
            answer, _ = await _sia(outage_client, 1)
            assert answer is None
        finally:
            killing = False
            await killer
    finally:
        await locker.close()
    await assert_recovered(outage_client, "killed")


async def test_server_stopped(outage_client: Any, proxy: TcpProxy) -> None:
    """(c) The server is gone: connections dropped, new ones refused."""
    assert (await _case(outage_client, "warm")).status == 201
    await proxy.cut()
    await assert_all_refused(outage_client, "stopped")
    health = await outage_client.get("/health")
    assert health.status == 503
    assert (await health.json())["dependencies"]["postgres"]["ok"] is False
    await proxy.start()
    await assert_recovered(outage_client, "stopped")


async def test_packets_dropped(outage_client: Any, proxy: TcpProxy, pg_dsn: str) -> None:
    """(d) Packets dropped: connections open but silent, new ones accepted and never answered."""
    assert (await _case(outage_client, "warm")).status == 201
    await proxy.blackhole()
    await assert_all_refused(outage_client, "blackhole")
    await assert_all_refused(outage_client, "blackhole-again")  # no connection stuck from the first round
    await proxy.start()
    await assert_recovered(outage_client, "blackhole")
    notifier = await asyncpg.connect(pg_dsn)
    try:
        await assert_listening_again(outage_client.app[SERVICES], notifier)
    finally:
        await notifier.close()


async def assert_listening_again(services: Any, notifier: asyncpg.Connection) -> None:
    """Another process's NOTIFY wakes this one's readers again: the lost LISTEN came back."""
    wakeup = services.store.wakeup(frozenset({"probe"}))
    deadline = time.monotonic() + 5
    while True:
        wakeup.clear()
        await notifier.execute("NOTIFY intake_events, 'probe'")
        if await wakeup.wait(0.2):
            return
        assert time.monotonic() < deadline, "the store does not LISTEN again"


async def test_intake_works_without_redis(aiohttp_client: Any, settings: Settings) -> None:
    no_redis = dataclasses.replace(
        settings, stores=dataclasses.replace(settings.stores, redis_url="redis://127.0.0.1:1/0"))
    services = await build_services(no_redis)
    try:
        client = await aiohttp_client(create_app(no_redis, services=services))
        created = await client.post("/api/v1/cases", json=CASE, headers=auth("t-agent"))
        assert created.status == 201
        health = await client.get("/health")
        assert health.status == 200
        body = await health.json()
        assert body["status"] == "degraded"
        assert body["dependencies"]["redis"]["ok"] is False
    finally:
        await close_services(services)



async def test_an_abandoned_statement_drops_its_connection(pg_dsn: str, proxy: TcpProxy) -> None:
    """A view's own `pool.acquire()` gives up at once when packets are dropped.

    asyncpg would send a CancelRequest and wait for the server's acknowledgement
    (up to the command timeout, 4 s) before releasing the connection; the pool's
    connections drop themselves instead (`eventstore.unavailable.DroppingConnection`).
    """
    database = urlsplit(pg_dsn).path
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}{database}"
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await proxy.blackhole()
        started = time.monotonic()

        async def query() -> None:
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await query()
        assert time.monotonic() - started < 1.0
        await proxy.start()
        assert await pool.fetchval("SELECT 1") == 1  # a fresh connection, not the abandoned one
    finally:
        await pool.close()


async def test_a_presence_change_refused_during_an_outage_is_recorded_when_it_is_retried(
    outage_client: Any, proxy: TcpProxy
) -> None:
    """The live board must not change before the change is on record: a PUT answered 503 had
    already set Redis, so its retry found nothing changed and the change never reached the log."""
    async def put(status: str) -> int:
        response = await outage_client.put("/api/v1/agents/A001/presence", json={"status": status},
                                           headers=auth("t-agent"))
        return int(response.status)

    assert await put("online") == 200
    await proxy.cut()
    assert await put("busy") == 503
    await proxy.start()
    deadline = time.monotonic() + 10
    while await put("busy") != 200:  # the agent's console retries
        assert time.monotonic() < deadline, "no recovery within 10 s"
        await asyncio.sleep(0.1)
    recorded = await outage_client.app[SERVICES].store.read_stream("presence-A001")
    changes = [(e.data["previous"], e.data["status"]) for e in recorded]
    assert changes == [("offline", "online"), ("online", "busy")]


async def test_bad_input_refused_while_the_store_is_down_is_retried_not_lost(
    outage_client: Any, proxy: TcpProxy
) -> None:
    """Bad input is answered 4xx only once its `InputRejected` is on record: with the store away it
    gets 503 (a DC-09 frame no answer), as a blackholed store already answered, and its retry is
    recorded. (Connections refused answered 400 at once and the rejection was only logged.)"""
    bad = {"event_id": "cti-bad", "type": "offered", "caller": "13912345678", "at": "2026-11-23T08:00:00Z"}

    async def post() -> Any:
        return await outage_client.post("/channels/cti/events", json=bad, headers=auth("t-channel"))

    assert (await _case(outage_client, "warm")).status == 201
    await proxy.cut()
    refused = await post()
    assert refused.status == 503 and "Retry-After" in refused.headers, await refused.text()
    corrupt = bytearray(_sia_frame(3))
    corrupt[1:5] = b"0000"  # a wrong CRC: NAKed only once on record
    receiver = SiaReceiver(outage_client.app[SERVICES])
    assert await receiver.handle(bytes(corrupt), "sia-tcp", "127.0.0.1:40000", "127.0.0.1") is None
    await proxy.start()
    deadline = time.monotonic() + 10
    while (response := await post()).status == 503:
        assert time.monotonic() < deadline, "no recovery within 10 s"
        await asyncio.sleep(0.1)
    assert response.status == 400
    rejected = await events_of(outage_client.app[SERVICES], "InputRejected")
    assert [e["data"]["channel"] for e in rejected] == ["cti"]


async def test_a_read_only_database(outage_client: Any, admin: asyncpg.Connection, pg_dsn: str) -> None:
    """(e) The database answers but refuses writes (SQLSTATE 25006): a standby after a failover, or
    `default_transaction_read_only`. Writes answered 500 store_error (the grouped append's refusal
    carried its message only), and an erasure a bare 500."""
    database = urlsplit(pg_dsn).path.lstrip("/")
    assert (await _case(outage_client, "warm")).status == 201
    await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    try:
        await _terminate(admin, database)
        await assert_all_refused(outage_client, "read-only")
        erase = await outage_client.post("/api/v1/subjects/13800000001/erase", headers=auth("t-admin"),
                                         json={"legal_basis": "request", "reason": "asked"})
        assert erase.status == 503, await erase.text()
        health = await outage_client.get("/health")
        assert health.status == 503
        assert (await health.json())["dependencies"]["postgres"] == {"ok": False, "error": "read_only"}
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        await _terminate(admin, database)
    await assert_recovered(outage_client, "read-only")
