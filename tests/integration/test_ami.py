"""The AMI client against a fake Asterisk speaking the real wire protocol, on real PostgreSQL.

Event fields follow the Asterisk manager event documentation (QueueCallerJoin,
QueueCallerAbandon, AgentConnect, AgentComplete, Hangup with their channel snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from channels.ami import AmiClient, AmiConfig, parse_url, to_command
from channels.errors import BadInput
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import SystemClock
from dispatch.core.errors import InvalidCommand
from dispatch.intake.rejected import RecordRejectedInput
from dispatch.missed_calls.policy import MissedCallPolicy
from dispatch.missed_calls.read_model import CallsProjection
from eventstore import StoreUnavailable
from eventstore.postgres import PostgresEventStore
from eventstore.subscriptions import ProjectionRunner, ReactorRunner
from gateway.bootstrap import DOMAIN
from tests.conftest import stored_events
from tests.integration.fake_ami import FakeAmi, frame


def snapshot(uid: str, caller: str, channel: str = "PJSIP/trunk") -> dict[str, Any]:
    return {"Channel": f"{channel}-{uid[-4:]}", "ChannelState": "6", "ChannelStateDesc": "Up",
            "CallerIDNum": caller, "CallerIDName": "<unknown>", "ConnectedLineNum": "<unknown>",
            "ConnectedLineName": "<unknown>", "Language": "zh", "AccountCode": "",
            "Context": "from-trunk", "Exten": "95598", "Priority": "1", "Uniqueid": uid, "Linkedid": uid}


def join(uid: str, caller: str, position: int = 1) -> dict[str, Any]:
    return {"Event": "QueueCallerJoin", "Privilege": "agent,all", **snapshot(uid, caller),
            "Queue": "fault", "Position": str(position), "Count": str(position)}


def abandon(uid: str, caller: str) -> dict[str, Any]:
    return {"Event": "QueueCallerAbandon", "Privilege": "agent,all", **snapshot(uid, caller),
            "Queue": "fault", "Position": "1", "OriginalPosition": "1", "HoldTime": "42"}


def connect(uid: str, caller: str) -> dict[str, Any]:
    return {"Event": "AgentConnect", "Privilege": "agent,all", **snapshot(uid, caller),
            "DestChannel": "PJSIP/A001-0001", "DestUniqueid": f"{uid}9", "Queue": "fault",
            "MemberName": "A001", "Interface": "PJSIP/A001", "RingTime": "3", "HoldTime": "12"}


def called(uid: str, caller: str, agent: str) -> dict[str, Any]:
    return {"Event": "AgentCalled", "Privilege": "agent,all", **snapshot(uid, caller),
            "DestChannel": f"PJSIP/{agent}-0001", "Queue": "fault", "MemberName": agent,
            "Interface": f"PJSIP/{agent}"}


def complete(uid: str, caller: str) -> dict[str, Any]:
    return {"Event": "AgentComplete", "Privilege": "agent,all", **snapshot(uid, caller),
            "DestChannel": "PJSIP/A001-0001", "Queue": "fault", "MemberName": "A001",
            "Interface": "PJSIP/A001", "HoldTime": "12", "TalkTime": "95", "Reason": "caller",
            "ChanVariable": ["CDR(linkedid)=x", f"MIXMONITOR_FILENAME=/var/spool/asterisk/monitor/{uid}.wav"]}


def hangup(uid: str, caller: str) -> dict[str, Any]:
    return {"Event": "Hangup", "Privilege": "call,all", **snapshot(uid, caller),
            "Cause": "16", "Cause-txt": "Normal Clearing"}


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def follower(
    ami: FakeAmi, pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> AsyncIterator[AmiClient]:
    bus = MessageBus(collect_handlers(DOMAIN), {"store": pg_store, "clock": SystemClock(), "pool": pg_pool})
    client = AmiClient(AmiConfig("127.0.0.1", ami.port, "intake", "s3cret"), bus.handle,
                       now=SystemClock().now, backoff=(0.05, 0.2))
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(client.connected.wait(), 5)
    yield client
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def following(
    ami: FakeAmi, handle: Any, backoff: tuple[float, float] = (0.05, 0.2)
) -> AsyncIterator[AmiClient]:
    """An AMI client sending its commands to `handle`, connected to the fake Asterisk."""
    client = AmiClient(AmiConfig("127.0.0.1", ami.port, "intake", "s3cret"), handle,
                       now=SystemClock().now, backoff=backoff)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.connected.wait(), 5)
        yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def types_of(pool: asyncpg.Pool, stream: str) -> list[str]:
    async with pool.acquire() as conn:
        return [r["type"] for r in await conn.fetch(
            "SELECT type FROM events WHERE stream = $1 ORDER BY version", stream)]


async def until(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_parse_url() -> None:
    assert parse_url("ami://intake:p%40ss@pbx.local:5039") == AmiConfig("pbx.local", 5039, "intake", "p@ss")
    assert parse_url("ami://u:s@pbx").port == 5038
    with pytest.raises(BadInput):
        parse_url("http://pbx")


async def test_abandoned_and_answered_calls_with_garbage_in_between(
    ami: FakeAmi, follower: AmiClient, pg_pool: asyncpg.Pool
) -> None:
    assert ami.actions[0]["Action"] == "Login" and ami.actions[0]["Username"] == "intake"
    await ami.send(join("1700000001.1", "13912340001"),
                   {"Event": "QueueCallerJoin", "Queue": "fault"},  # no Uniqueid: recorded as rejected
                   raw=b"this line is not AMI at all\r\n\r\n")
    await ami.send(abandon("1700000001.1", "13912340001"),
                   join("1700000002.2", "13912340002"), connect("1700000002.2", "13912340002"),
                   complete("1700000002.2", "13912340002"), hangup("1700000002.2", "13912340002"),
                   hangup("1700000003.3", "8001"))  # an internal call: not a queue call

    async def recorded() -> bool:
        return len(await types_of(pg_pool, "call-1700000002.2")) == 3

    await until(recorded)
    assert await types_of(pg_pool, "call-1700000001.1") == ["CallOffered", "CallAbandoned"]
    assert await types_of(pg_pool, "call-1700000002.2") == ["CallOffered", "CallAnswered", "CallEnded"]
    assert await types_of(pg_pool, "call-1700000003.3") == []
    async with pg_pool.acquire() as conn:
        meta = await conn.fetchval(
            "SELECT metadata FROM events WHERE stream = 'call-1700000001.1' AND version = 1")
        [ended] = [e.data for e in await stored_events(conn, "type = 'CallEnded'")]
    assert meta["idempotency_key"] == "ami:1700000001.1:QueueCallerAbandon"
    assert ended["recording"] == "/var/spool/asterisk/monitor/1700000002.2.wav"
    assert ended["contact"]["raw"]["TalkTime"] == "95"
    assert ami.logins == 1  # the garbage did not cost the connection
    [rejected] = await stored_events(pg_pool, "type = 'InputRejected'")  # its payload is sealed
    assert (rejected.data["channel"], rejected.data["code"]) == ("ami", "bad_event")
    assert '"Queue": "fault"' in rejected.data["raw"] and "Uniqueid" in rejected.data["reason"]


async def test_pbx_restart_mid_stream_loses_and_duplicates_nothing(
    ami: FakeAmi, follower: AmiClient, pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    waiting, talking = ("1700000010.1", "13912340010"), ("1700000011.1", "13912340011")
    await ami.send(join(*waiting), join(*talking, position=2), connect(*talking))

    async def both_seen() -> bool:
        return bool(await types_of(pg_pool, "call-1700000010.1")) and len(
            await types_of(pg_pool, "call-1700000011.1")) == 2

    await until(both_seen)
    follower.connected.clear()
    await ami.restart()  # both calls die with the PBX
    await asyncio.wait_for(follower.connected.wait(), 5)
    assert ami.logins == 2
    await ami.send(join(*waiting))  # a stale replay of an event already recorded
    await ami.send(join("1700000020.1", "13912340020"), abandon("1700000020.1", "13912340020"))

    async def settled() -> bool:
        return len(await types_of(pg_pool, "call-1700000020.1")) == 2

    await until(settled)
    assert await types_of(pg_pool, "call-1700000010.1") == ["CallOffered", "CallAbandoned"]
    assert await types_of(pg_pool, "call-1700000011.1") == ["CallOffered", "CallAnswered", "CallEnded"]
    bus = MessageBus(collect_handlers(DOMAIN), {"store": pg_store, "clock": SystemClock(), "pool": pg_pool})
    await ReactorRunner(pg_store, MissedCallPolicy(bus.handle)).run_until_caught_up()
    await ProjectionRunner(pg_store, CallsProjection()).run_until_caught_up()
    async with pg_pool.acquire() as conn:
        callers = sorted(r["caller"] for r in await conn.fetch("SELECT caller FROM missed_calls"))
        offered = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'CallOffered'")
    assert callers == ["13912340010", "13912340020"]  # the caller cut off by the restart is not lost
    assert offered == 3


async def test_a_pbx_not_yet_able_to_answer_queue_status_after_a_restart_is_asked_again(
    ami: FakeAmi, follower: AmiClient, pg_pool: asyncpg.Pool
) -> None:
    """Asterisk's manager is up before `app_queue` is loaded: a `QueueStatus` asked right after a
    restart is answered `Response: Error`. It is asked again; the follower went on waiting for an
    event list that never came, then ended for good (every caller after the restart lost)."""
    await ami.send(join("1700000015.1", "13912340015"))

    async def seen() -> bool:
        return bool(await types_of(pg_pool, "call-1700000015.1"))

    await until(seen)
    follower.connected.clear()
    ami.queue_status_errors = 2
    await ami.restart()
    await asyncio.wait_for(follower.connected.wait(), 3)
    await ami.send(join("1700000016.1", "13912340016"), abandon("1700000016.1", "13912340016"))

    async def settled() -> bool:
        return len(await types_of(pg_pool, "call-1700000016.1")) == 2

    await until(settled)
    assert await types_of(pg_pool, "call-1700000015.1") == ["CallOffered", "CallAbandoned"]
    assert [a["Action"] for a in ami.actions].count("QueueStatus") == 3


async def test_a_queue_caller_let_go_unanswered_is_a_missed_call(
    ami: FakeAmi, follower: AmiClient, pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    """A caller the queue lets go unanswered (its timeout; Asterisk says `QueueCallerLeave`, not
    `QueueCallerAbandon`) and who then hangs up talked to no one: a missed call with a call-back
    task. It was recorded as a call that ended, and no one called back."""
    uid, caller = "1700000017.1", "13912340017"
    leave = {**join(uid, caller), "Event": "QueueCallerLeave", "Count": "0"}
    await ami.send(join(uid, caller), called(uid, caller, "A001"), leave, hangup(uid, caller))

    async def recorded() -> bool:
        return len(await types_of(pg_pool, f"call-{uid}")) == 3

    await until(recorded)
    assert await types_of(pg_pool, f"call-{uid}") == ["CallOffered", "CallOffered", "CallAbandoned"]
    bus = MessageBus(collect_handlers(DOMAIN), {"store": pg_store, "clock": SystemClock(), "pool": pg_pool})
    await ReactorRunner(pg_store, MissedCallPolicy(bus.handle)).run_until_caught_up()
    await ProjectionRunner(pg_store, CallsProjection()).run_until_caught_up()
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT caller FROM missed_calls") == caller
        assert await conn.fetchval("SELECT status FROM calls WHERE call_id = $1", uid) == "abandoned"


async def test_a_call_still_talking_when_the_connection_comes_back_is_not_ended(
    ami: FakeAmi, follower: AmiClient, pg_pool: asyncpg.Pool
) -> None:
    """Only the connection to the manager was lost (a network blip, a manager reload): a caller
    still talking to an agent is on the PBX's channels, and the call ends when its own events say
    so. It was ended at the reconnect (a caller still talking shown as gone, the talk cut short)."""
    uid, caller = "1700000018.1", "13912340018"
    await ami.send(join(uid, caller), connect(uid, caller))

    async def answered() -> bool:
        return len(await types_of(pg_pool, f"call-{uid}")) == 2

    await until(answered)
    follower.connected.clear()
    await ami.stop()  # the connection drops; the PBX keeps its calls
    await ami.start()
    await asyncio.wait_for(follower.connected.wait(), 5)
    await ami.send(join("1700000019.1", "13912340019"))

    async def next_one() -> bool:
        return bool(await types_of(pg_pool, "call-1700000019.1"))

    await until(next_one)
    assert await types_of(pg_pool, f"call-{uid}") == ["CallOffered", "CallAnswered"]
    await ami.send(complete(uid, caller), hangup(uid, caller))

    async def ended() -> bool:
        return len(await types_of(pg_pool, f"call-{uid}")) == 3

    await until(ended)
    async with pg_pool.acquire() as conn:
        [data] = [e.data for e in await stored_events(conn, f"stream = 'call-{uid}' AND type = 'CallEnded'")]
    assert (data["answered"], data["reason"]) == (True, "caller")


async def test_a_character_or_a_line_split_between_two_reads_is_read_whole(
    ami: FakeAmi, follower: AmiClient, pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """TCP may cut an event anywhere: inside a UTF-8 character of a caller's name (张三, as Asterisk
    sends it) or inside a line. The name was stored without the cut character (panoramisk decodes each
    read alone, dropping the halves) and the line's halves were logged as skipped lines."""
    uid, caller = "1700000014.1", "13912340014"
    wire = frame({**join(uid, caller), "CallerIDName": "张三"})
    cut = wire.index("张".encode()) + 1
    await ami.send(raw=wire[:cut])
    await asyncio.sleep(0.05)
    await ami.send(raw=wire[cut:])

    async def recorded() -> bool:
        return bool(await types_of(pg_pool, f"call-{uid}"))

    await until(recorded)
    async with pg_pool.acquire() as conn:
        [offered] = [e.data for e in await stored_events(conn, f"stream = 'call-{uid}'")]
    assert offered["contact"]["caller"]["name"] == "张三"
    assert "ami_line_skipped" not in caplog.text


async def test_a_refused_login_is_a_warning_naming_the_managers_answer(
    ami: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong user or secret in `INTAKE_AMI_URL` leaves the follower logging in again and again,
    every call unrecorded: each refusal is a warning with Asterisk's answer. It was an info line
    `ami_connection_ended error=ConnectionRefusedError`, the manager's words dropped."""
    refused = 0

    async def answer(action: dict[str, str], writer: asyncio.StreamWriter) -> None:
        nonlocal refused
        if action.get("Action", "").lower() != "login":
            return
        refused += 1
        writer.write(frame({"Response": "Error", "ActionID": action.get("ActionID", ""),
                            "Message": "Authentication failed"}))
        await writer.drain()
        writer.close()

    ami._answer = answer  # type: ignore[method-assign]

    async def unused(_cmd: Any) -> None:
        raise AssertionError("nothing is recorded")

    client = AmiClient(AmiConfig("127.0.0.1", ami.port, "intake", "wrong"), unused,
                       now=SystemClock().now, backoff=(0.01, 0.05))
    task = asyncio.create_task(client.run())
    try:
        await until(lambda: asyncio.sleep(0, refused >= 2))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    warnings = [r for r in caplog.records if "ami_login_refused" in r.getMessage()]
    assert warnings and all(r.levelname == "WARNING" for r in warnings)
    assert "Authentication failed" in warnings[0].getMessage()


async def test_the_queue_ringing_agents_is_recorded_per_agent(
    ami: FakeAmi, follower: AmiClient, pg_pool: asyncpg.Pool
) -> None:
    uid = "1700000009.9"
    await ami.send(join(uid, "13912340009"), called(uid, "13912340009", "A002"),
                   called(uid, "13912340009", "A001"), called(uid, "13912340009", "A001"),
                   connect(uid, "13912340009"))

    async def recorded() -> bool:
        return len(await types_of(pg_pool, f"call-{uid}")) == 4

    await until(recorded)
    assert await types_of(pg_pool, f"call-{uid}") == ["CallOffered", "CallOffered", "CallOffered",
                                                      "CallAnswered"]
    async with pg_pool.acquire() as conn:
        agents = [r["agent"] for r in await conn.fetch(
            "SELECT data->>'agent' AS agent FROM events WHERE stream = $1 ORDER BY version", f"call-{uid}")]
    assert agents == [None, "A002", "A001", "A001"]  # the repeated ring of A001 is recorded once


@pytest.mark.parametrize("stamp", ["1e20", "inf", "-1e12", "nan", "0"])
async def test_a_timestamp_out_of_range_neither_stops_the_follower_nor_is_kept(
    ami: FakeAmi, follower: AmiClient, pg_pool: asyncpg.Pool, stamp: str
) -> None:
    """Asterisk's `Timestamp` is epoch seconds; one a PBX garbles (year 33658, 1970, inf) must not
    end the follower (every later caller lost) nor be stored: the time of arrival stands for it."""
    await ami.send({**join("1700000030.1", "13912340030"), "Timestamp": stamp})
    await ami.send(join("1700000031.1", "13912340031"), abandon("1700000031.1", "13912340031"))

    async def recorded() -> bool:
        return len(await types_of(pg_pool, "call-1700000031.1")) == 2

    await until(recorded)
    async with pg_pool.acquire() as conn:
        [offered] = [e.data for e in await stored_events(conn, "stream = 'call-1700000030.1'")]
    assert "2000" <= offered["contact"]["occurred_at"] < "2100"



@pytest.mark.parametrize("withheld", ["<unknown>", "<Unknown>", "anonymous", "Anonymous", ""])
def test_asterisks_marker_of_no_caller_id_is_a_withheld_number_and_no_name(withheld: str) -> None:
    """Asterisk writes `<unknown>` where a channel has no caller id (SIP privacy: `anonymous`): it is
    a withheld number, not a caller named "<unknown>" with that number."""
    event = {**abandon("1700000050.1", withheld), "CallerIDName": withheld}
    caller = to_command(event, datetime.now(UTC)).contact.caller
    assert (caller.phone, caller.name) == (None, None)
    named = to_command({**abandon("1700000050.1", "13912340050"), "CallerIDName": "张三"},
                       datetime.now(UTC)).contact.caller
    assert (named.phone, named.name) == ("13912340050", "张三")


async def test_a_call_transferred_to_another_agent_is_answered_twice_and_a_replay_once(
    ami: FakeAmi, follower: AmiClient, pg_pool: asyncpg.Pool
) -> None:
    """An agent's blind transfer to a queue keeps the caller's `Uniqueid`: the second agent's
    `AgentConnect` is a transfer (the calls report counts it), not a repeat of the first one."""
    uid, caller = "1700000060.1", "13912340060"
    second = {**connect(uid, caller), "MemberName": "A002", "Interface": "PJSIP/A002"}
    await ami.send(join(uid, caller), connect(uid, caller), connect(uid, caller),  # the last: a replay
                   {**join(uid, caller), "Queue": "consult"}, second, complete(uid, caller))

    async def recorded() -> bool:
        return "CallEnded" in await types_of(pg_pool, f"call-{uid}")

    await until(recorded)
    assert await types_of(pg_pool, f"call-{uid}") == ["CallOffered", "CallAnswered", "CallAnswered",
                                                      "CallEnded"]
    async with pg_pool.acquire() as conn:
        agents = [r["agent"] for r in await conn.fetch(
            "SELECT data->>'agent' AS agent FROM events WHERE stream = $1 AND type = 'CallAnswered'"
            " ORDER BY version", f"call-{uid}")]
    assert agents == ["A001", "A002"]


@pytest.mark.parametrize("uid", ["1" * 250, "１７００.1", "1700000070.é"])
async def test_a_uniqueid_no_stream_can_be_named_by_is_rejected_and_the_next_call_recorded(
    ami: FakeAmi, follower: AmiClient, pg_pool: asyncpg.Pool, uid: str
) -> None:
    """Was retried for ever as if the store were down: every later call waited behind it."""
    await ami.send(join(uid, "13912340070"))
    await ami.send(join("1700000071.1", "13912340071"), abandon("1700000071.1", "13912340071"))

    async def recorded() -> bool:
        return len(await types_of(pg_pool, "call-1700000071.1")) == 2

    await until(recorded)
    [rejected] = await stored_events(pg_pool, "type = 'InputRejected'")
    assert (rejected.data["channel"], rejected.data["code"]) == ("ami", "bad_event")


async def test_an_event_the_domain_refuses_is_rejected_once_and_the_calls_after_it_recorded(
    ami: FakeAmi, pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    """Only a store that is down is waited for: a refusal (here the domain's, for one caller) is the
    same answer every time, and retrying it for ever would hold back every later call."""
    bus = MessageBus(collect_handlers(DOMAIN), {"store": pg_store, "clock": SystemClock(), "pool": pg_pool})
    tries: list[str] = []

    async def handle(cmd: Any) -> Any:
        tries.append(getattr(cmd, "call_id", type(cmd).__name__))
        if tries[-1] == "1700000080.1":
            raise InvalidCommand("refused for what it says")
        return await bus.handle(cmd)

    async with following(ami, handle):
        await ami.send(join("1700000080.1", "13912340080"))
        await ami.send(join("1700000081.1", "13912340081"), abandon("1700000081.1", "13912340081"))

        async def recorded() -> bool:
            return len(await types_of(pg_pool, "call-1700000081.1")) == 2

        await until(recorded)
    assert tries.count("1700000080.1") == 1
    [rejected] = await stored_events(pg_pool, "type = 'InputRejected'")
    assert (rejected.data["channel"], rejected.data["code"]) == ("ami", "invalid")


async def test_an_event_rejected_while_the_store_is_down_is_recorded_once_it_is_back(
    ami: FakeAmi, pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    """Its `InputRejected` is retried as a call's events are, not dropped with a log line."""
    bus = MessageBus(collect_handlers(DOMAIN), {"store": pg_store, "clock": SystemClock(), "pool": pg_pool})
    down = 3

    async def handle(cmd: Any) -> Any:
        nonlocal down
        if isinstance(cmd, RecordRejectedInput) and down:
            down -= 1
            raise StoreUnavailable("cannot connect to PostgreSQL")
        return await bus.handle(cmd)

    async with following(ami, handle, backoff=(0.01, 0.05)):
        await ami.send(join("x" * 200, "13912340072"))  # no stream can be named by it: bad_event
        await ami.send(join("1700000073.1", "13912340073"), abandon("1700000073.1", "13912340073"))

        async def recorded() -> bool:
            return len(await types_of(pg_pool, "call-1700000073.1")) == 2

        await until(recorded)
    [rejected] = await stored_events(pg_pool, "type = 'InputRejected'")
    assert (rejected.data["channel"], rejected.data["code"], down) == ("ami", "bad_event", 0)
