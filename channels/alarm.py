"""One-touch alarm adapter: SIA DC-09 frames and HTTPS vendor events into `ReceiveAlarm`.

Both parse into the intake contact (the device account as the caller, its
position, the raw frame) and send the one `ReceiveAlarm`. Idempotency
(CONTRACT): a SIA frame is `sia:<account>:sequence:timestamp` when it has a
timestamp; without one it is account + sequence + a hash of the content, and
counts as a repeat only within 10 minutes of the first (the handler decides
that against the log). The account is named by its keyed pseudonym
(`dispatch.core.personal.pseudonym`): a key is stored for ever and outlives an
erasure of the elder, so it may not hold the account itself; so is the actor,
`device:<pseudonym>`. HTTPS events use the vendor's `event_id`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from channels.contact_id import AlarmSignal, decode_http_code
from channels.errors import BadInput
from channels.sia import Frame
from channels.times import parse_time
from dispatch.cases.events import CallerInfo, Place
from dispatch.core.personal import pseudonym
from dispatch.elderly.alarms import HTTPS, ReceiveAlarm, device_actor
from dispatch.gis.geo import to_wgs84
from dispatch.intake.contact import InboundContact

_ACCOUNT = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_DMS = re.compile(r"^(\d{1,3})([NSEW])(\d{1,2}(?:\.\d+)?)$")


def _coordinate(text: str) -> float | None:
    match = _DMS.match(text)
    if match:
        degrees, hemisphere, minutes = match.groups()
        value = int(degrees) + float(minutes) / 60
        return -value if hemisphere in "SW" else value
    try:
        return float(text)
    except ValueError:
        return None


def frame_position(xdata: tuple[str, ...]) -> tuple[float, float] | None:
    """The WGS84 (GPS) position in `[X..]` (longitude) / `[Y..]` (latitude) blocks, if both."""
    found = {x[0]: _coordinate(x[1:]) for x in xdata if x[:1] in ("X", "Y")}
    lat, lon = found.get("Y"), found.get("X")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def _frame_key(frame: Frame) -> tuple[str, bool]:
    """The retransmission key of a frame, and whether it holds only within the repeat window."""
    base = f"sia:{pseudonym(frame.account)}:{frame.sequence}"
    if frame.timestamp is not None:
        return f"{base}:{frame.timestamp:%Y%m%dT%H%M%S}", False
    digest = hashlib.sha256(f"{frame.token}|{frame.data}|{'|'.join(frame.xdata)}".encode()).hexdigest()[:16]
    return f"{base}:{digest}", True


def _contact(key: str, account: str, at: datetime | None, received_at: datetime,
             position: tuple[float, float] | None, text: str | None, raw: Any) -> InboundContact:
    return InboundContact(
        channel="alarm", kind="alarm", idempotency_key=key, caller=CallerInfo(device_account=account),
        occurred_at=at or received_at, received_at=received_at, text=text,
        location=Place(*position) if position else None, raw=raw,
    )


def command_from_frame(
    frame: Frame, signal: AlarmSignal, transport: str, received_at: datetime
) -> ReceiveAlarm:
    """The command for a decoded DC-09 frame."""
    key, windowed = _frame_key(frame)
    raw = frame.raw.decode("ascii", "backslashreplace")
    contact = _contact(key, frame.account, frame.timestamp, received_at, frame_position(frame.xdata),
                       signal.text, raw)
    return ReceiveAlarm(
        contact=contact, protocol=signal.protocol, code=signal.code, kind=signal.kind,
        transport=transport, device_time=frame.timestamp, zone=signal.zone, qualifier=signal.qualifier,
        repeat_window=windowed, actor=device_actor(frame.account),
    )


def _text(body: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadInput(f"field {name!r} is required", code="missing_field")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadInput(f"field {name!r} must be a string", code="bad_field")
    return str(value)


def _number(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"field {name!r} must be a number", code="bad_field")
    return float(value)


def _position(body: Mapping[str, Any]) -> tuple[float | None, float | None]:
    lat, lon = _number(body, "lat"), _number(body, "lon")
    if (lat is None) != (lon is None):
        raise BadInput("lat and lon go together", code="bad_field")
    if lat is None or lon is None:
        return None, None
    try:
        return to_wgs84(lat, lon, _text(body, "crs", required=False) or "wgs84")
    except ValueError as exc:
        raise BadInput(str(exc), code="bad_location") from exc


def command_from_json(body: Mapping[str, Any], actor: str, received_at: datetime) -> ReceiveAlarm:
    """The command for `POST /channels/alarm/events`.

    Body: `{event_id, account, code, zone?, lat?, lon?, crs?, at}`.
    """
    event_id = _text(body, "event_id", required=True) or ""
    account = (_text(body, "account", required=True) or "").upper()
    if not _ACCOUNT.match(account) or not 0 < len(event_id) <= 200:
        raise BadInput("account must be 1-64 letters, digits or _.:- and event_id 1-200 chars",
                       code="bad_field")
    signal = decode_http_code(_text(body, "code", required=True) or "", _text(body, "zone", required=False))
    at_text = _text(body, "at", required=True) or ""
    at = parse_time(at_text)
    lat, lon = _position(body)
    position = None if lat is None or lon is None else (lat, lon)
    contact = _contact(f"alarm:{event_id}", account, at, received_at, position, None, dict(body))
    return ReceiveAlarm(
        contact=contact, protocol=signal.protocol, code=signal.code, kind=signal.kind,
        transport=HTTPS, device_time=at, zone=signal.zone, qualifier=signal.qualifier, actor=actor,
    )
