"""SIA DC-09 framing: frames built by my-dc09-spt, answers parsed strictly by siadc09."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from my_dc09_spt.msg.dc03_msg import dc03_msg
from my_dc09_spt.msg.dc05_msg import dc05_msg
from my_dc09_spt.msg.dc09_msg import dc09_msg
from siadc09 import message

from channels import sia
from channels.contact_id import AlarmSignal
from channels.errors import ChannelError
from gateway.settings import parse_sia_keys

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
KEY32 = bytes(range(32))
NOW = datetime.now(UTC).replace(microsecond=0)


def cid_frame(seq: int = 7, key: bytes | None = None, account: str = "1234", extra: str = "") -> bytes:
    payload = dc05_msg.dc05event(account, {"code": 101, "q": 1, "zone": 1}) + extra
    return dc09_msg(account, key=key, line=0).dc09block(seq, "ADM-CID", payload).encode()


def sia_frame(code: str = "MA", seq: int = 3, key: bytes | None = None) -> bytes:
    payload = dc03_msg.dc03event("1234", {"code": code, "zone": 1})
    return dc09_msg("1234", key=key, line=0).dc09block(seq, "SIA-DCS", payload).encode()


class Receiver:
    """Collects what `answer_frame` delivers and rejects."""

    def __init__(self, keys: dict[str, bytes] | None = None) -> None:
        self.keys = keys or {}
        self.delivered: list[tuple[sia.Frame, AlarmSignal]] = []
        self.rejected: list[str] = []

    async def deliver(self, frame: sia.Frame, signal: AlarmSignal) -> None:
        self.delivered.append((frame, signal))

    async def reject(self, exc: ChannelError, raw: bytes) -> None:
        self.rejected.append(exc.code)

    async def answer(self, raw: bytes, now: datetime = NOW) -> bytes:
        return await sia.answer_frame(raw, keys=self.keys, now=now, deliver=self.deliver,
                                      reject=self.reject)


def test_crc16_arc_check_value() -> None:
    assert sia.crc16_arc(b"123456789") == 0xBB3D


async def test_plain_contact_id_is_acked_and_strictly_parseable() -> None:
    rx = Receiver()
    answer = await rx.answer(cid_frame())
    parsed = message.parse_frame(answer)
    assert isinstance(parsed, message.AckMessage)
    assert parsed.seq == 7
    assert parsed.account.acct == 0x1234
    assert dc09_msg("1234", line=0).dc09answer(7, answer.decode())[0] == "ACK"
    frame, signal = rx.delivered[0]
    assert (signal.protocol, signal.code, signal.kind, signal.zone) == ("ADM-CID", "101", "alarm", "001")
    assert frame.timestamp is None and frame.line == "0"


@pytest.mark.parametrize("key", [KEY, KEY32])
async def test_encrypted_frame_gets_encrypted_ack(key: bytes) -> None:
    rx = Receiver({"1234": key})
    answer = await rx.answer(cid_frame(key=key), now=datetime.now(UTC))
    assert answer.startswith(b"\n") and b'"*ACK"0007L0#1234[' in answer
    parsed = message.parse_frame(answer, keys=key)
    assert isinstance(parsed, message.AckMessage) and parsed.encrypted and parsed.timestamp
    assert dc09_msg("1234", key=key, line=0).dc09answer(7, answer.decode())[0] == "ACK"
    frame, signal = rx.delivered[0]
    assert frame.encrypted and frame.timestamp is not None and signal.code == "101"


async def test_sia_dcs_with_position_extended_data() -> None:
    rx = Receiver()
    payload = dc03_msg.dc03event("1234", {"code": "MA", "zone": 2}) + "[X108.7][Y34.3]"
    raw = dc09_msg("1234", line=0).dc09block(9, "SIA-DCS", payload).encode()
    await rx.answer(raw)
    frame, signal = rx.delivered[0]
    assert signal.code == "MA" and signal.kind == "alarm" and signal.zone == "2"
    assert frame.xdata == ("X108.7", "Y34.3")


async def test_bad_crc_gets_nak_with_receiver_time_and_is_rejected() -> None:
    raw = bytearray(cid_frame())
    raw[1:5] = b"0000" if raw[1:5] != b"0000" else b"FFFF"
    rx = Receiver()
    answer = await rx.answer(bytes(raw))
    parsed = message.parse_frame(answer)
    assert isinstance(parsed, message.NakMessage)
    assert parsed.timestamp == NOW
    assert rx.rejected == ["bad_frame"] and rx.delivered == []


@pytest.mark.parametrize("raw", [
    b"", b"garbage\r", b"\n00000000\r", b"\nZZZZ0010\"SIA-DCS\"0001L0#1234[]\r",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", cid_frame()[1:], cid_frame()[:-1],
])
async def test_what_is_not_dc09_at_all_is_neither_answered_nor_recorded(raw: bytes) -> None:
    rx = Receiver()
    with pytest.raises(sia.NotDc09):
        await rx.answer(raw)
    assert rx.rejected == [] and rx.delivered == []


@pytest.mark.parametrize("raw", [
    b"\n" + b"A" * 3000 + b"\r",
    b"\n0000001A\"SIA-DCS\"0001L0#1234[]_00:00:00,01-01-2026\r",
])
async def test_malformed_dc09_frames_get_nak(raw: bytes) -> None:
    rx = Receiver()
    parsed = message.parse_frame(await rx.answer(raw))
    assert isinstance(parsed, message.NakMessage)
    assert rx.rejected == ["bad_frame"]


async def test_plain_frame_for_an_account_with_a_key_gets_nak_and_opens_nothing() -> None:
    rx = Receiver({"1234": KEY})
    parsed = message.parse_frame(await rx.answer(cid_frame(account="1234")))
    assert isinstance(parsed, message.NakMessage)
    assert rx.rejected == ["encryption_required"] and rx.delivered == []
    encrypted = message.parse_frame(
        await rx.answer(cid_frame(account="1234", key=KEY), now=datetime.now(UTC)), keys=KEY)
    assert isinstance(encrypted, message.AckMessage) and len(rx.delivered) == 1


def _wrap(body: bytes) -> bytes:
    return b"\n%04X0%03X" % (sia.crc16_arc(body), len(body)) + body + b"\r"


async def test_timestamp_outside_window_gets_nak_with_our_time() -> None:
    old = NOW - timedelta(minutes=5)
    body = b'"SIA-DCS"0004L0#1234[#1234|NMA1]_' + old.strftime("%H:%M:%S,%m-%d-%Y").encode()
    rx = Receiver()
    answer = await rx.answer(_wrap(body))
    parsed = message.parse_frame(answer)
    assert isinstance(parsed, message.NakMessage) and parsed.timestamp == NOW
    assert rx.rejected == ["timestamp_window"]
    inside = NOW - timedelta(seconds=30)
    body = b'"SIA-DCS"0004L0#1234[#1234|NMA1]_' + inside.strftime("%H:%M:%S,%m-%d-%Y").encode()
    assert isinstance(message.parse_frame(await rx.answer(_wrap(body))), message.AckMessage)


async def test_unsupported_type_and_unknown_key_get_duh() -> None:
    rx = Receiver()
    answer = await rx.answer(_wrap(b'"SIA-PUL"0005L0#1234[12]'))
    parsed = message.parse_frame(answer)
    assert isinstance(parsed, message.DuhMessage) and parsed.seq == 5
    answer = await rx.answer(cid_frame(seq=6, key=KEY))
    assert isinstance(message.parse_frame(answer), message.DuhMessage)
    assert rx.rejected == ["unsupported", "unsupported"] and rx.delivered == []


@pytest.mark.parametrize("raw", [
    sia.nak(NOW), sia.duh(None, "0002"), sia.ack(sia.parse_frame(cid_frame(), {}), NOW),
    sia.ack(sia.parse_frame(cid_frame(key=KEY, account="1234"), {"1234": KEY}), NOW, KEY),
    _wrap(b'"NAK"0000R0L0A0[]_12:00:00,12-07-2026'), _wrap(b'"DUH"0009L0#1234[]'),
    b"\nFFFF0012\"ACK\"0001L0#1234[]\r",  # even a damaged one
])
async def test_an_answer_is_never_answered(raw: bytes) -> None:
    """ACK, NAK and DUH are a receiver's answers: one arriving here (a datagram whose source
    was forged as another receiver's, a misrouted answer) goes unanswered and unrecorded.
    Bug: a DUH was answered with a DUH and a NAK with a NAK, so one forged datagram set this
    receiver and another (another intake) answering each other for ever."""
    rx = Receiver({"1234": KEY})
    with pytest.raises(sia.NotDc09):
        await rx.answer(raw)
    assert rx.rejected == [] and rx.delivered == []


async def test_bad_contact_id_data_gets_nak() -> None:
    rx = Receiver()
    answer = await rx.answer(_wrap(b'"ADM-CID"0008L0#1234[#1234|9999]'))
    assert isinstance(message.parse_frame(answer), message.NakMessage)
    assert rx.rejected == ["bad_contact_id"]


async def test_null_link_test_is_acked_without_an_event() -> None:
    rx = Receiver()
    answer = await rx.answer(dc09_msg("1234", line=0).dc09poll().encode())
    assert isinstance(message.parse_frame(answer), message.AckMessage)
    assert rx.delivered == []


async def test_delivery_failure_means_no_ack() -> None:
    async def failing(frame: sia.Frame, signal: AlarmSignal) -> None:
        raise ConnectionError("store down")

    rx = Receiver()
    with pytest.raises(ConnectionError):
        await sia.answer_frame(cid_frame(), keys={}, now=NOW, deliver=failing, reject=rx.reject)


def test_receiver_and_account_are_echoed() -> None:
    frame = sia.parse_frame(_wrap(b'"SIA-DCS"0011R1AL2#ABC123[#ABC123|NMA1]'), {})
    assert (frame.receiver, frame.line, frame.account) == ("1A", "2", "ABC123")
    parsed = message.parse_frame(sia.ack(frame, NOW))
    assert parsed.account.rcvr == 0x1A and parsed.account.pref == 2 and parsed.seq == 11


async def test_the_account_is_echoed_as_the_frame_wrote_it() -> None:
    """Keys, dedup and the registry read `e0a1` as `E0A1`, but the answer echoes it as sent: a
    device may compare the echo as a string, and a mismatch reads as no answer (it retries)."""
    rx = Receiver()
    for answer in (await rx.answer(cid_frame(account="e0a1")),
                   sia.nak(NOW, sia.peek_route(_wrap(b'"SIA-DCS"0011L0#e0a1[#e0a1|NMA1]')))):
        assert b"#e0a1[" in answer and message.parse_frame(answer).account.acct == 0xE0A1
    assert rx.delivered[0][0].account == "E0A1"


async def test_a_key_listed_under_a_lowercase_account_binds_that_accounts_frames() -> None:
    rx = Receiver(parse_sia_keys("e0005:" + KEY.hex()))
    refused = message.parse_frame(await rx.answer(cid_frame(account="E0005")))
    assert isinstance(refused, message.NakMessage)
    assert rx.rejected == ["encryption_required"] and rx.delivered == []
    answer = await rx.answer(cid_frame(seq=8, account="e0005", key=KEY), now=datetime.now(UTC))
    acked = message.parse_frame(answer, keys=KEY)
    assert isinstance(acked, message.AckMessage) and acked.encrypted
    assert rx.delivered[0][0].account == "E0005"
