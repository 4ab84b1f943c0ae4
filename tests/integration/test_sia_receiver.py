"""The DC-09 receiver over real TCP and UDP: my-dc09-spt sends, siadc09 checks our answers."""

from __future__ import annotations

import asyncio
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

from gateway.sia_listener import SiaReceiver
from tests.integration.alarm_helpers import ELDER_ACCOUNT, events_of, outbox, register_elder

KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


@pytest.fixture
async def receiver(services: Any) -> AsyncIterator[tuple[int, int]]:
    services.settings = dataclasses.replace(
        services.settings, sia=dataclasses.replace(services.settings.sia, keys={ELDER_ACCOUNT: KEY}))
    rx = SiaReceiver(services)
    ports = await rx.start("127.0.0.1", 0)
    yield ports
    await rx.close()


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
    services: Any, receiver: tuple[int, int]
) -> None:
    await register_elder(services)
    await asyncio.to_thread(send, receiver[0], "TCP", "ADM-CID", {"code": 101, "q": 1, "zone": 1})
    [alarm] = await _alarms(services)
    assert alarm["data"]["kind"] == "alarm" and alarm["data"]["account"] == ELDER_ACCOUNT
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["priority"] == 1 and case["data"]["elder_id"] == "ELD00001"
    assert case["data"]["category"] == "elderly_emergency"
    rows = await outbox(services, case["data"]["case_id"])
    assert {r["to_addr"] for r in rows} == {"16666767796", "19590093254", "13800138000"}
    assert all(r["channel"] == "sms" for r in rows)


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
    services: Any, receiver: tuple[int, int]
) -> None:
    await register_elder(services)
    frame = dc09_msg(ELDER_ACCOUNT, line=0).dc09block(
        42, "ADM-CID", dc05_msg.dc05event(ELDER_ACCOUNT, {"code": 101, "q": 1, "zone": 1})).encode()
    first = await asyncio.to_thread(exchange, receiver[0], frame)
    second = await asyncio.to_thread(exchange, receiver[1], frame, udp=True)
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


async def test_test_signal_is_recorded_but_opens_no_case(services: Any, receiver: tuple[int, int]) -> None:
    await register_elder(services)
    await asyncio.to_thread(send, receiver[0], "TCP", "ADM-CID", {"code": 602, "q": 1})
    await asyncio.to_thread(send, receiver[1], "UDP", "SIA-DCS", {"code": "RP"})
    assert [a["data"]["kind"] for a in await _alarms(services)] == ["test", "test"]
    assert await events_of(services, "CaseRegistered") == []


async def test_bad_frames_get_nak_and_listener_survives(services: Any, receiver: tuple[int, int]) -> None:
    for junk in (b"\nFFFF0010\"SIA-DCS\"0001L0#1234[]\r", b"hello\r", b"\n" + b"\xff" * 40 + b"\r"):
        answer = await asyncio.to_thread(exchange, receiver[0], junk)
        assert isinstance(message.parse_frame(answer), message.NakMessage)
    oversized = await asyncio.to_thread(exchange, receiver[0], b"\n" + b"A" * 5000)
    assert isinstance(message.parse_frame(oversized), message.NakMessage)
    rejected = await events_of(services, "InputRejected")
    assert len(rejected) == 4 and {r["data"]["channel"] for r in rejected} == {"alarm"}
    await asyncio.to_thread(send, receiver[0], "TCP", "ADM-CID", {"code": 101, "q": 1, "zone": 1})
    assert len(await _alarms(services)) == 1


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


async def test_database_down_means_no_answer(services: Any, receiver: tuple[int, int]) -> None:
    frame = dc09_msg(ELDER_ACCOUNT, line=0).dc09block(
        9, "ADM-CID", dc05_msg.dc05event(ELDER_ACCOUNT, {"code": 101, "q": 1, "zone": 1})).encode()
    await services.pool.close()
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(exchange, receiver[0], frame, timeout=1.5)


async def test_close_hangs_up_idle_device_connections_at_once(services: Any) -> None:
    from gateway.sia_listener import SiaReceiver

    receiver = SiaReceiver(services)
    tcp, _ = await receiver.start("127.0.0.1", 0)
    _reader, writer = await asyncio.open_connection("127.0.0.1", tcp)  # an idle device
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(receiver.close(), 5)
    assert asyncio.get_running_loop().time() - started < 2
    writer.close()
