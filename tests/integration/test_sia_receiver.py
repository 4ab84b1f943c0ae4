"""The DC-09 receiver over real TCP and UDP: my-dc09-spt sends, siadc09 checks our answers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from my_dc09_spt.dc09_spt import dc09_spt
from my_dc09_spt.msg.dc05_msg import dc05_msg
from my_dc09_spt.msg.dc09_msg import dc09_msg
from siadc09 import message

from channels import sia
from dispatch.core.personal import pseudonym
from gateway import sia_listener
from gateway.sia_listener import SiaReceiver
from tests.integration.alarm_helpers import ELDER_ACCOUNT, events_of, outbox, register_elder

KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


@pytest.fixture
async def receiver(services: Any) -> AsyncIterator[tuple[int, int]]:
    """A receiver where the elder's device has an AES key (it must send encrypted frames)."""
    services.settings = dataclasses.replace(
        services.settings, sia=dataclasses.replace(services.settings.sia, keys={ELDER_ACCOUNT: KEY}))
    rx = SiaReceiver(services)
    ports = await rx.start("127.0.0.1", 0)
    yield ports
    await rx.close()


@pytest.fixture
async def plain_receiver(services: Any) -> AsyncIterator[tuple[int, int]]:
    """A receiver with no keys: every account sends plain frames."""
    rx = SiaReceiver(services)
    ports = await rx.start("127.0.0.1", 0)
    yield ports
    await rx.close()


def dropped(services: Any, reason: str) -> float:
    value = services.metrics.registry.get_sample_value(
        "intake_dropped_inputs_total", {"channel": "alarm", "reason": reason})
    return value or 0.0


def null_frame(seq: int, account: str = "5555") -> bytes:
    body = b'"NULL"%04dL0#%s[]' % (seq, account.encode())
    return b"\n%04X0%03X" % (sia.crc16_arc(body), len(body)) + body + b"\r"


def send(port: int, kind: str, mtype: str, params: dict[str, Any], key: bytes | None = None,
         account: str = ELDER_ACCOUNT) -> None:
    spt = dc09_spt(account, line=0)
    spt.set_path("main", "primary", "127.0.0.1", port, type=kind, key=key)
    spt.send_msg(mtype, params)


def exchange(port: int, frame: bytes, *, udp: bool = False, timeout: float = 3.0) -> bytes:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(timeout)
        if udp:
            sock.sendto(frame, ("127.0.0.1", port))
            return sock.recvfrom(1024)[0]
        sock.connect(("127.0.0.1", port))
        sock.sendall(frame)
        return sock.recv(1024)


async def _alarms(services: Any) -> list[Any]:
    return await events_of(services, "AlarmReceived")


async def test_plain_tcp_contact_id_alarm_opens_case_and_alerts_contacts(
    services: Any, plain_receiver: tuple[int, int]
) -> None:
    await register_elder(services)
    await asyncio.to_thread(send, plain_receiver[0], "TCP", "ADM-CID", {"code": 101, "q": 1, "zone": 1})
    [alarm] = await _alarms(services)
    assert alarm["data"]["kind"] == "alarm" and alarm["data"]["account"] == ELDER_ACCOUNT
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["priority"] == 1 and case["data"]["elder_id"] == "ELD00001"
    assert case["data"]["category"] == "elderly_emergency"
    rows = await outbox(services, case["data"]["case_id"])
    assert {r["to_addr"] for r in rows} == {"16666767796", "19590093254", "13800138000"}
    assert all(r["channel"] == "sms" for r in rows)


async def test_the_device_account_is_stored_nowhere_in_plain(
    services: Any, plain_receiver: tuple[int, int]
) -> None:
    """An alarm device names the elder who carries it, and keys outlive an erasure: the events hold
    the account sealed, and the SIA key, the actor and the burst's case key name it by its
    pseudonym. Bugs: `sia:<account>:...` as the key, `device:<account>` as the actor, the burst key
    `alarm-case:account:<account>`, the account in an event's data unsealed."""
    await register_elder(services)
    await asyncio.to_thread(send, plain_receiver[0], "TCP", "ADM-CID", {"code": 101, "q": 1, "zone": 1})
    [alarm] = await _alarms(services)
    assert alarm["data"]["account"] == ELDER_ACCOUNT  # read back opened
    assert alarm["metadata"]["actor"] == f"device:{pseudonym(ELDER_ACCOUNT)}"
    assert alarm["metadata"]["idempotency_key"].startswith(f"sia:{pseudonym(ELDER_ACCOUNT)}:")
    async with services.pool.acquire() as conn:
        plain = await conn.fetch(
            "SELECT stream, type FROM events WHERE stream || data::text || metadata::text LIKE $1", "%E0001%")
        keys = await conn.fetch("SELECT key FROM idempotency_keys WHERE key LIKE $1", "%E0001%")
        burst = await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key LIKE $1",
                                    f"alarm-case:device:{pseudonym(ELDER_ACCOUNT)}:%")
    assert plain == [] and keys == [] and burst == 1


async def test_encrypted_udp_and_tcp_frames_are_acked(services: Any, receiver: tuple[int, int]) -> None:
    await register_elder(services)
    spt = dc09_spt(ELDER_ACCOUNT, line=0)  # one sender: the sequence moves on between frames
    spt.set_path("main", "primary", "127.0.0.1", receiver[1], type="UDP", key=KEY)
    await asyncio.to_thread(spt.send_msg, "SIA-DCS", {"code": "MA", "zone": 1})
    spt.set_path("main", "primary", "127.0.0.1", receiver[0], type="TCP", key=KEY)
    await asyncio.to_thread(spt.send_msg, "ADM-CID", {"code": 120, "q": 1, "zone": 2})
    alarms = await _alarms(services)
    assert [a["data"]["transport"] for a in alarms] == ["sia-udp", "sia-tcp"]
    assert all(a["data"]["occurred_at"] for a in alarms)  # encrypted frames carry a timestamp


async def test_retransmitted_frame_is_acked_again_without_new_event(
    services: Any, plain_receiver: tuple[int, int]
) -> None:
    await register_elder(services)
    frame = dc09_msg(ELDER_ACCOUNT, line=0).dc09block(
        42, "ADM-CID", dc05_msg.dc05event(ELDER_ACCOUNT, {"code": 101, "q": 1, "zone": 1})).encode()
    first = await asyncio.to_thread(exchange, plain_receiver[0], frame)
    second = await asyncio.to_thread(exchange, plain_receiver[1], frame, udp=True)
    for answer in (first, second):
        parsed = message.parse_frame(answer)
        assert isinstance(parsed, message.AckMessage) and parsed.seq == 42
    assert len(await _alarms(services)) == 1
    assert len(await events_of(services, "CaseRegistered")) == 1


async def test_unknown_account_is_acked_and_flagged(services: Any, receiver: tuple[int, int]) -> None:
    await asyncio.to_thread(send, receiver[0], "TCP", "SIA-DCS", {"code": "PA", "zone": 1},
                            None, "ABC999")
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["flags"] == ["unregistered_device"] and case["data"]["priority"] == 1
    assert await outbox(services, case["data"]["case_id"]) == []


async def test_test_signal_is_recorded_but_opens_no_case(
    services: Any, plain_receiver: tuple[int, int]
) -> None:
    await register_elder(services)
    await asyncio.to_thread(send, plain_receiver[0], "TCP", "ADM-CID", {"code": 602, "q": 1})
    await asyncio.to_thread(send, plain_receiver[1], "UDP", "SIA-DCS", {"code": "RP"})
    assert [a["data"]["kind"] for a in await _alarms(services)] == ["test", "test"]
    assert await events_of(services, "CaseRegistered") == []


async def test_bad_frames_get_nak_noise_is_dropped_and_listener_survives(
    services: Any, plain_receiver: tuple[int, int]
) -> None:
    crc_wrong = b"\nFFFF0010\"SIA-DCS\"0001L0#1234[]\r"
    answer = await asyncio.to_thread(exchange, plain_receiver[0], crc_wrong)
    assert isinstance(message.parse_frame(answer), message.NakMessage)
    oversized = await asyncio.to_thread(exchange, plain_receiver[0], b"\n" + b"A" * 5000)
    assert isinstance(message.parse_frame(oversized), message.NakMessage)
    for noise in (b"hello\r", b"\n" + b"\xff" * 40 + b"\r"):
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(exchange, plain_receiver[0], noise, timeout=0.5)
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(exchange, plain_receiver[1], noise, udp=True, timeout=0.5)
    assert dropped(services, "not_dc09") == 4
    rejected = await events_of(services, "InputRejected")
    assert len(rejected) == 2 and {r["data"]["channel"] for r in rejected} == {"alarm"}
    await asyncio.to_thread(send, plain_receiver[0], "TCP", "ADM-CID", {"code": 101, "q": 1, "zone": 1})
    assert len(await _alarms(services)) == 1


async def test_another_receivers_answers_get_no_answer(
    services: Any, plain_receiver: tuple[int, int]
) -> None:
    """A DUH or NAK arriving by UDP (its source forged as another receiver's) is dropped, counted
    and not recorded: answering it started two receivers answering each other for ever."""
    for answer in (sia.duh(None, "0002"), sia.nak(datetime.now(UTC))):
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(exchange, plain_receiver[1], answer, udp=True, timeout=0.5)
    assert dropped(services, "dc09_answer") == 2
    assert await events_of(services, "InputRejected") == []


async def test_a_spoofed_plain_frame_for_a_keyed_account_gets_nak_and_opens_nothing(
    services: Any, receiver: tuple[int, int]
) -> None:
    await register_elder(services)
    body = b'"SIA-DCS"0044L0#' + ELDER_ACCOUNT.encode() + b"[#" + ELDER_ACCOUNT.encode() + b"|Nri1/MA01]"
    spoof = b"\n%04X0%03X" % (sia.crc16_arc(body), len(body)) + body + b"\r"
    for udp in (True, False):
        answer = await asyncio.to_thread(exchange, receiver[int(udp)], spoof, udp=udp)
        assert isinstance(message.parse_frame(answer), message.NakMessage)
    assert await _alarms(services) == []
    assert await events_of(services, "CaseRegistered") == []
    rejected = await events_of(services, "InputRejected")
    assert [r["data"]["code"] for r in rejected] == ["encryption_required"] * 2


async def test_a_flood_from_one_source_is_dropped_unanswered(
    services: Any, plain_receiver: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    rx = SiaReceiver(services)
    monkeypatch.setattr(rx, "_frames", sia_listener.SourceLimiter(0.01, 3))
    tcp, udp = await rx.start("127.0.0.1", 0)
    try:
        answers = 0
        for seq in range(1, 9):
            try:
                await asyncio.to_thread(exchange, udp, null_frame(seq), udp=True, timeout=0.4)
                answers += 1
            except TimeoutError:
                pass
        assert answers == 3
        assert dropped(services, "rate_limited") == 5
        with pytest.raises(TimeoutError):  # the same source over TCP shares the budget
            await asyncio.to_thread(exchange, tcp, null_frame(9), timeout=0.5)
    finally:
        await rx.close()


async def test_tcp_connections_are_capped_per_source(
    services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sia_listener, "MAX_CONNECTIONS_PER_SOURCE", 3)
    rx = SiaReceiver(services)
    tcp, _ = await rx.start("127.0.0.1", 0)
    try:
        held = [await asyncio.open_connection("127.0.0.1", tcp) for _ in range(3)]
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed at once
        writer.close()
        assert dropped(services, "too_many_connections_from_source") == 1
        held[0][1].close()
        await held[0][1].wait_closed()
        await asyncio.sleep(0.1)  # the receiver notices the hang-up
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
        writer.write(null_frame(1))
        assert await asyncio.wait_for(reader.readuntil(b"\r"), 2)  # admitted and answered
        writer.close()
        for _, w in held[1:]:
            w.close()
    finally:
        await rx.close()


async def test_a_connection_that_sends_nothing_is_closed(
    services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sia_listener, "FIRST_FRAME_TIMEOUT", 0.3)
    rx = SiaReceiver(services)
    tcp, _ = await rx.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
    finally:
        await rx.close()


async def test_noise_does_not_keep_a_connection_open(
    services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection must send a DC-09 frame within FIRST_FRAME_TIMEOUT of connecting and another
    within IDLE_TIMEOUT of the last: bytes that are no frame (a CR now and then) count for
    neither. Bug: any CR restarted the timer, so a peer trickling noise held one of the
    receiver's connections (16 per address, 512 in all) for ever without sending a frame."""
    monkeypatch.setattr(sia_listener, "FIRST_FRAME_TIMEOUT", 0.6)
    monkeypatch.setattr(sia_listener, "IDLE_TIMEOUT", 0.6)
    rx = SiaReceiver(services)
    tcp, _ = await rx.start("127.0.0.1", 0)
    try:
        for frame_first in (False, True):  # noise from the start, and after a frame
            reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
            if frame_first:
                writer.write(null_frame(1))
                assert b'"ACK"' in await asyncio.wait_for(reader.readuntil(b"\r"), 3)
            start = asyncio.get_running_loop().time()

            async def noise(w: asyncio.StreamWriter = writer) -> None:
                with contextlib.suppress(ConnectionError):
                    for _ in range(15):  # 3 s of noise, a CR every 0.2 s
                        w.write(b"noise\r")
                        await w.drain()
                        await asyncio.sleep(0.2)

            sender = asyncio.create_task(noise())
            with contextlib.suppress(ConnectionError):  # a reset: noise was in flight at the hang-up
                assert await asyncio.wait_for(reader.read(), 5) == b""
            assert asyncio.get_running_loop().time() - start < 1.2
            sender.cancel()
            writer.close()
    finally:
        await rx.close()


async def test_stale_timestamp_gets_nak_and_sender_corrects_its_clock(
    services: Any, receiver: tuple[int, int]
) -> None:
    spt = dc09_msg(ELDER_ACCOUNT, key=KEY, line=0, offset=-600)
    payload = dc05_msg.dc05event(ELDER_ACCOUNT, {"code": 101, "q": 1, "zone": 1})
    answer = await asyncio.to_thread(exchange, receiver[0], spt.dc09block(5, "ADM-CID", payload).encode())
    nak = message.parse_frame(answer)
    assert isinstance(nak, message.NakMessage)
    assert abs((nak.timestamp - datetime.now(UTC)).total_seconds()) < 5
    assert await _alarms(services) == []
    spt.set_offset(spt.dc09answer(5, answer.decode())[1] or 0)
    again = await asyncio.to_thread(exchange, receiver[0], spt.dc09block(5, "ADM-CID", payload).encode())
    assert isinstance(message.parse_frame(again, keys=KEY), message.AckMessage)


async def test_database_down_means_no_answer(services: Any, plain_receiver: tuple[int, int]) -> None:
    frame = dc09_msg(ELDER_ACCOUNT, line=0).dc09block(
        9, "ADM-CID", dc05_msg.dc05event(ELDER_ACCOUNT, {"code": 101, "q": 1, "zone": 1})).encode()
    await services.pool.close()
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(exchange, plain_receiver[0], frame, timeout=1.5)


async def test_close_hangs_up_idle_device_connections_at_once(services: Any) -> None:
    receiver = SiaReceiver(services)
    tcp, _ = await receiver.start("127.0.0.1", 0)
    _reader, writer = await asyncio.open_connection("127.0.0.1", tcp)  # an idle device
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(receiver.close(), 5)
    assert asyncio.get_running_loop().time() - started < 2
    writer.close()


async def test_a_flood_under_one_account_goes_unanswered_past_its_limit(
    services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames of one account from many addresses (spoofed UDP) are limited per account: past the
    burst they get no answer (the device retransmits later) and are counted, not recorded."""
    monkeypatch.setattr(sia_listener, "ACCOUNT_FRAME_BURST", 4)
    monkeypatch.setattr(sia_listener, "ACCOUNT_FRAMES_PER_SECOND", 0.01)
    rx = SiaReceiver(services)

    def test_signal(seq: int, account: str) -> bytes:
        event = dc05_msg.dc05event(account, {"code": 602, "q": 1, "zone": 1})
        return dc09_msg(account, line=0).dc09block(seq, "ADM-CID", event).encode()

    answers = [await rx.handle(test_signal(seq, "7777"), "sia-udp", f"10.0.0.{seq}:5000", f"10.0.0.{seq}")
               for seq in range(1, 8)]
    assert [a is not None for a in answers] == [True] * 4 + [False] * 3
    assert dropped(services, "account_rate_limited") == 3
    assert len(await _alarms(services)) == 4
    other = await rx.handle(test_signal(1, "8888"), "sia-udp", "10.0.0.9:5000", "10.0.0.9")
    assert other is not None  # another account is not held back
