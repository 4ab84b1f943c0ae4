"""SIA DC-09 framing: parse inbound frames, build ACK / NAK / DUH answers.

A frame is `LF crc4 len4 "ID"seq[Rrcvr][Lpref]#acct[data][x..]_HH:MM:SS,MM-DD-YYYY CR`;
CRC-16/ARC and the length cover the text from the first `"` to just before CR.
An encrypted frame (`"*ID"`) carries the hex of AES-CBC (zero IV) over
`pad|data]...` with the mandatory timestamp inside. `answer_frame` runs the
receiver's rules: NAK (sequence 0000, receiver time) for a bad CRC, bad format,
a timestamp out of window or a plain frame from an account that has a key; DUH
for what is valid but unsupported; ACK only after `deliver` has durably
committed the signal; no answer at all for bytes that are not DC-09, nor for an
answer (ACK, NAK, DUH) that arrives as if it were a message.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from channels.contact_id import AlarmSignal, decode
from channels.errors import BadInput, ChannelError

LF, CR = b"\n", b"\r"
MAX_FRAME = 2048
"""Longest frame accepted (the standard allows a few hundred bytes)."""
WINDOW_AHEAD = timedelta(seconds=20)
WINDOW_BEHIND = timedelta(seconds=40)
"""Timestamp window of DC-09 (5.5.1.9): +20 s / -40 s around the receiver's clock."""
_TS_FORMAT = "%H:%M:%S,%m-%d-%Y"
_ZERO_IV = bytes(16)
_PAD_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEADER = re.compile(
    rb'^"(\*?)([A-Z0-9][A-Z0-9\-]{0,15})"(\d{4})(?:R([0-9A-Fa-f]{1,6}))?'
    rb"(?:L([0-9A-Fa-f]{1,6}))?#([0-9A-Fa-f]{3,16})\[(.*)$",
    re.DOTALL,
)
_PLAIN_TAIL = re.compile(rb"^((?:\[[^\[\]]*\])*)(?:_(\d\d:\d\d:\d\d,\d\d-\d\d-\d{4}))?$")
_XDATA = re.compile(rb"\[([^\[\]]*)\]")


class FrameError(BadInput):
    """The frame is malformed or its CRC / length is wrong (answered with NAK)."""

    code = "bad_frame"


class NotDc09(ChannelError):
    """Bytes that are not a DC-09 frame at all (no LF, hex header and CR): dropped unanswered.

    Answering noise would let anyone who can reach the port make the receiver
    write to the log and send datagrams to a forged source address.
    """

    code = "not_dc09"


class AnswerFrame(NotDc09):
    """An ACK, NAK or DUH: a receiver's answer, never a message to answer (dropped unanswered).

    Answering one would have two receivers answer each other for ever once a single datagram
    forged with the other's address started them.
    """

    code = "dc09_answer"


class EncryptionRequired(FrameError):
    """A plain frame from an account that has an AES key (answered with NAK).

    Only the key holder can make an encrypted frame; a plain one for a keyed
    account is either a misconfigured device or a forgery, and opens nothing.
    """

    code = "encryption_required"


class Unsupported(ChannelError):
    """A valid frame this receiver cannot handle (answered with DUH)."""

    code = "unsupported"


class OutOfWindow(ChannelError):
    """The frame's timestamp is outside the receiver's window (answered with NAK)."""

    code = "timestamp_window"


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (poly 0xA001 reflected, init 0): `b"123456789"` gives 0xBB3D."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded (and decrypted) DC-09 frame."""

    token: str
    sequence: str
    receiver: str | None
    line: str | None
    account: str
    data: str
    xdata: tuple[str, ...]
    timestamp: datetime | None
    encrypted: bool
    raw: bytes
    account_as_sent: str = ""
    """The account as the frame wrote it (`e0005`), echoed in answers: `account` is upper-cased for
    keys, dedup and the registry, but a device may compare the echo as a string."""

    @property
    def is_null(self) -> bool:
        """A link test (`NULL`) that carries no event."""
        return self.token == "NULL"


_ENVELOPE_HEAD = re.compile(rb"[0-9A-Fa-f]{4}0[0-9A-Fa-f]{3}")
_ANSWER = re.compile(rb'"\*?(?:ACK|NAK|DUH)"')


def is_envelope(raw: bytes) -> bool:
    """Whether bytes are shaped as a DC-09 frame (LF, CRC and length in hex, ..., CR), whatever
    they hold: what is not is noise (`NotDc09`)."""
    return len(raw) >= 20 and raw[:1] == LF and raw[-1:] == CR and bool(_ENVELOPE_HEAD.fullmatch(raw[1:9]))


def _check_envelope(raw: bytes) -> bytes:
    if len(raw) > MAX_FRAME:
        raise FrameError(f"frame longer than {MAX_FRAME} bytes")
    if not is_envelope(raw):
        raise NotDc09("a frame runs from LF to CR after a CRC and a length of 4 hex digits each")
    head, body = raw[1:9], raw[9:-1]
    if _ANSWER.match(body):
        raise AnswerFrame("an answer is not answered")
    if int(head[:4], 16) != crc16_arc(body):
        raise FrameError("CRC mismatch")
    if int(head[4:], 16) != len(body):
        raise FrameError("length mismatch")
    if CR in body or LF in body:
        raise FrameError("CR or LF inside the frame")
    return body


def _timestamp(text: bytes | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.strptime(text.decode("ascii"), _TS_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise FrameError("timestamp is not HH:MM:SS,MM-DD-YYYY") from exc


def _aes(key: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV))


def _decrypt(key: bytes, hex_text: bytes) -> bytes:
    try:
        cipher_text = bytes.fromhex(hex_text.decode("ascii"))
    except ValueError as exc:
        raise FrameError("encrypted block is not hex") from exc
    if not cipher_text or len(cipher_text) % 16:
        raise FrameError("encrypted block is not a multiple of 16 bytes")
    decryptor = _aes(key).decryptor()
    clear = decryptor.update(cipher_text) + decryptor.finalize()
    bar, close = clear.find(b"|"), clear.find(b"]")
    start = bar + 1 if 0 <= bar < close else close
    if close < 0:
        raise FrameError("decrypted block has no data field (wrong key?)")
    return clear[start:]


def _split_body(rest: bytes) -> tuple[bytes, tuple[str, ...], datetime | None]:
    if b"\x00" in rest:  # the log cannot hold one: an alarm that cannot be stored would never be ACKed
        raise FrameError("NUL inside the data")
    close = rest.find(b"]")
    if close < 0:
        raise FrameError("data field has no closing ]")
    tail = _PLAIN_TAIL.match(rest[close + 1 :])
    if tail is None:
        raise FrameError("malformed extended data or timestamp")
    xdata = tuple(x.decode("utf-8", "replace") for x in _XDATA.findall(tail.group(1)))
    return rest[:close], xdata, _timestamp(tail.group(2))


def parse_frame(raw: bytes, keys: Mapping[str, bytes]) -> Frame:
    """Decode one frame; raise `FrameError` (NAK) or `Unsupported` (DUH)."""
    body = _check_envelope(raw)
    match = _HEADER.match(body)
    if match is None:
        raise FrameError("header is not \"ID\"seq[R][L]#acct[")
    star, token, seq, rcvr, line, account, rest = match.groups()
    acct = account.decode("ascii").upper()
    encrypted = bool(star)
    if not encrypted and acct in keys:
        raise EncryptionRequired(f"account {acct} has a key: plain frames are refused")
    if encrypted:
        key = keys.get(acct)
        if key is None:
            raise Unsupported(f"no AES key for account {acct}")
        rest = _decrypt(key, rest)
    data, xdata, stamp = _split_body(rest)
    if encrypted and stamp is None:
        raise FrameError("encrypted frame without timestamp")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FrameError("data field is not ASCII") from exc
    return Frame(
        token=token.decode("ascii"), sequence=seq.decode("ascii"),
        receiver=rcvr.decode("ascii") if rcvr else None, line=line.decode("ascii") if line else None,
        account=acct, data=text, xdata=xdata, timestamp=stamp, encrypted=encrypted, raw=raw,
        account_as_sent=account.decode("ascii"),
    )


def check_window(frame: Frame, now: datetime) -> None:
    """Raise `OutOfWindow` when the frame's timestamp is too far from `now`."""
    if frame.timestamp is None:
        return
    if not now - WINDOW_BEHIND <= frame.timestamp <= now + WINDOW_AHEAD:
        raise OutOfWindow(f"timestamp {frame.timestamp:%H:%M:%S} outside the window")


def _wrap(message: bytes) -> bytes:
    return LF + b"%04X0%03X" % (crc16_arc(message), len(message) & 0xFFF) + message + CR


def _route(frame: Frame | None) -> bytes:
    if frame is None:
        return b"L0#0"
    receiver = b"R" + frame.receiver.encode() if frame.receiver else b""
    line = b"L" + (frame.line or "0").encode()
    return receiver + line + b"#" + (frame.account_as_sent or frame.account).encode()


def _stamp(now: datetime) -> bytes:
    return b"_" + now.astimezone(UTC).strftime(_TS_FORMAT).encode()


def ack(frame: Frame, now: datetime, key: bytes | None = None) -> bytes:
    """The ACK echoing sequence, receiver, line and account (`*ACK` when encrypted)."""
    seq = frame.sequence.encode()
    if not frame.encrypted or key is None:
        return _wrap(b'"ACK"' + seq + _route(frame) + b"[]")
    tail = b"]" + _stamp(now)
    pad_len = 16 + (-(16 + len(tail)) % 16)
    pad = bytes(secrets.choice(_PAD_ALPHABET) for _ in range(pad_len))
    encryptor = _aes(key).encryptor()
    block = encryptor.update(pad + tail) + encryptor.finalize()
    return _wrap(b'"*ACK"' + seq + _route(frame) + b"[" + block.hex().upper().encode())


def nak(now: datetime, frame: Frame | None = None) -> bytes:
    """A NAK: sequence 0000 and the receiver's time, so the sender can correct its clock."""
    return _wrap(b'"NAK"0000' + _route(frame) + b"[]" + _stamp(now))


def duh(frame: Frame | None, sequence: str = "0000") -> bytes:
    """A DUH: the frame was understood but this receiver does not support it."""
    seq = (frame.sequence if frame else sequence).encode()
    return _wrap(b'"DUH"' + seq + _route(frame) + b"[]")


def peek_route(raw: bytes) -> Frame | None:
    """The header of a frame that failed later checks, for echoing in NAK / DUH."""
    match = _HEADER.match(raw[9:-1]) if len(raw) > 10 else None
    if match is None:
        return None
    _, token, seq, rcvr, line, account, _ = match.groups()
    return Frame(token.decode(), seq.decode(), rcvr.decode() if rcvr else None,
                 line.decode() if line else None, account.decode().upper(), "", (), None, False, raw,
                 account.decode())


SUPPORTED = ("SIA-DCS", "ADM-CID")
Deliver = Callable[[Frame, AlarmSignal], Awaitable[None]]
Reject = Callable[[ChannelError, bytes], Awaitable[None]]


def _signal(frame: Frame) -> AlarmSignal:
    if frame.token not in SUPPORTED:
        raise Unsupported(f"message type {frame.token} is not supported")
    return decode(frame.token, frame.data)


async def answer_frame(
    raw: bytes, *, keys: Mapping[str, bytes], now: datetime, deliver: Deliver, reject: Reject
) -> bytes:
    """The receiver's answer to one frame.

    `deliver` durably commits the decoded signal before the ACK is built; any
    exception from it (the store is down) propagates and means no answer at all.
    `NotDc09` propagates too: noise is dropped by the caller, unanswered and unrecorded.
    """
    frame: Frame | None = None
    try:
        frame = parse_frame(raw, keys)
        check_window(frame, now)
        signal = None if frame.is_null else _signal(frame)
    except NotDc09:
        raise
    except Unsupported as exc:
        await reject(exc, raw)
        return duh(frame or peek_route(raw))
    except ChannelError as exc:
        await reject(exc, raw)
        return nak(now, frame)
    if signal is not None:
        await deliver(frame, signal)
    return ack(frame, now, keys.get(frame.account))
