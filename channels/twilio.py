"""Twilio adapter: inbound SMS and voice status callbacks (signed form webhooks).

Idempotency keys: `MessageSid` for SMS, `CallSid` + `CallStatus` for voice.
An inbound call ending `no-answer`, `busy`, `canceled` or `failed` is a missed call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl

from channels.errors import BadInput, BadSignature, ChannelDisabled
from channels.signatures import twilio_algorithm, twilio_valid
from channels.times import plausible
from dispatch.cases.events import CallerInfo
from dispatch.intake.calls import RecordCall
from dispatch.intake.contact import InboundContact
from dispatch.intake.sms import ReceiveSms
from dispatch.notify.outbox import RecordDeliveryStatus

Form = dict[str, list[str]]
MISSED_STATUSES = frozenset({"no-answer", "busy", "canceled", "failed"})
_KIND_BY_STATUS = {
    "queued": "offered", "initiated": "offered", "ringing": "offered",
    "in-progress": "answered", "completed": "ended",
}
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
MAX_MEDIA = 10
"""Twilio attaches at most 10 media to a message (`MediaUrl0` .. `MediaUrl9`)."""
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
"""What the webhooks answer: no reply message, no call instructions."""


@dataclass(frozen=True, slots=True)
class TwilioKeys:
    """The secrets Twilio signs with: the Auth Token and, optionally, a SharedKey secret."""

    auth_token: str | None
    shared_key: str | None = None

    def secret_for(self, algorithm: str) -> str:
        """The secret a request signed with `algorithm` was signed with."""
        if self.auth_token is None:
            raise ChannelDisabled("Twilio is not configured (INTAKE_TWILIO_AUTH_TOKEN)")
        return self.shared_key if algorithm == "HMAC_SHA256" and self.shared_key else self.auth_token


def parse_form(body: bytes) -> Form:
    """An `application/x-www-form-urlencoded` body as lists of values per key."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput("body is not a UTF-8 form", code="bad_encoding") from exc
    form: Form = {}
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:  # `%00`: PostgreSQL text cannot hold one
            raise BadInput("form holds a NUL character", code="bad_text")
        form.setdefault(key, []).append(value)
    return form


def verify(keys: TwilioKeys, urls: list[str], form: Form, headers: Mapping[str, str]) -> None:
    """Raise `BadSignature` unless `X-Twilio-Signature` is Twilio's signature of this request."""
    algorithm = twilio_algorithm(headers.get("X-Twilio-Webhooks-Signature-Settings"))
    secret = keys.secret_for(algorithm)
    signature = headers.get("X-Twilio-Signature", "")
    if not twilio_valid(secret, urls, form, signature, algorithm):
        raise BadSignature("X-Twilio-Signature does not match the request")


def _one(form: Form, name: str, *, required: bool = True) -> str:
    values = form.get(name)
    if not values or (required and values[0] == ""):
        if required:
            raise BadInput(f"form field {name!r} is required", code="missing_field")
        return ""
    return values[0]


def _raw(form: Form) -> dict[str, str | list[str]]:
    return {k: v[0] if len(v) == 1 else v for k, v in form.items()}


def parse_sms(form: Form, received_at: datetime) -> ReceiveSms:
    """An inbound SMS webhook as a `ReceiveSms` command (recording it is the webhook's one write)."""
    sid = _one(form, "MessageSid")
    if not _SID.match(sid):
        raise BadInput("form field 'MessageSid' is not a Twilio SID", code="bad_field")
    sender = _one(form, "From")
    if "Body" not in form:
        raise BadInput("form field 'Body' is required", code="missing_field")
    contact = InboundContact(
        channel="sms", kind="sms", idempotency_key=f"twilio:sms:{sid}",
        caller=CallerInfo(phone=sender), occurred_at=received_at, received_at=received_at,
        text=_one(form, "Body", required=False), raw=_raw(form),
        extra={"source": "twilio", "message_sid": sid, "to": _one(form, "To", required=False),
               **({"media": media} if (media := _media(form)) else {})},
    )
    return ReceiveSms(contact=contact)


def _media(form: Form) -> list[str]:
    """An MMS's media URLs (`MediaUrl0`, `MediaUrl1`, ...: Twilio keeps the files)."""
    urls = (_one(form, f"MediaUrl{i}", required=False) for i in range(MAX_MEDIA))
    return [url for url in urls if url]


def _timestamp(form: Form, received_at: datetime) -> datetime:
    text = _one(form, "Timestamp", required=False)
    if not text:
        return received_at
    try:
        instant = parsedate_to_datetime(text)
    except (TypeError, ValueError) as exc:
        raise BadInput("form field 'Timestamp' is not an RFC 2822 date", code="bad_field") from exc
    if instant.tzinfo is None:  # `-0000`: UTC, the sender's own offset unknown (RFC 2822 3.3)
        instant = instant.replace(tzinfo=UTC)
    if not plausible(instant):
        raise BadInput("form field 'Timestamp' must lie in the years 2000-2099", code="bad_field")
    return instant


def _call_kind(status: str, direction: str) -> str:
    if status in MISSED_STATUSES:
        return "abandoned" if direction == "inbound" else "ended"
    kind = _KIND_BY_STATUS.get(status)
    if kind is None:
        raise BadInput(f"unknown CallStatus {status!r}", code="bad_field")
    return kind


def parse_voice_status(form: Form, received_at: datetime) -> RecordCall:
    """A voice status callback as a `RecordCall` command."""
    sid, status = _one(form, "CallSid"), _one(form, "CallStatus")
    if not _SID.match(sid):
        raise BadInput("form field 'CallSid' is not a Twilio SID", code="bad_field")
    sender = _one(form, "From")
    direction = _one(form, "Direction", required=False) or "inbound"
    kind = _call_kind(status, direction)
    contact = InboundContact(
        channel="phone", kind=f"call_{kind}", idempotency_key=f"twilio:call:{sid}:{status}",
        caller=CallerInfo(phone=sender), occurred_at=_timestamp(form, received_at),
        received_at=received_at, raw=_raw(form),
        extra={"source": "twilio", "call_status": status, "direction": direction},
    )
    return RecordCall(
        kind=kind, call_id=sid, contact=contact, queue=_one(form, "To", required=False) or None,
        reason=status, recording=_one(form, "RecordingSid", required=False) or None,
        answered=status in ("in-progress", "completed"),
    )


MESSAGE_STATUSES: frozenset[str] = frozenset({
    "accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed", "read",
    "canceled", "partially_delivered"})
"""The `MessageStatus` values of an outbound message's status callback."""


def parse_message_status(form: Form, received_at: datetime) -> RecordDeliveryStatus:
    """An outbound SMS status callback (`MessageSid`, `MessageStatus`, `ErrorCode`)."""
    sid, status = _one(form, "MessageSid"), _one(form, "MessageStatus")
    if not _SID.match(sid):
        raise BadInput("form field 'MessageSid' is not a Twilio SID", code="bad_field")
    if status not in MESSAGE_STATUSES:
        raise BadInput(f"unknown MessageStatus {status[:40]!r}", code="bad_field")
    code = _one(form, "ErrorCode", required=False)
    return RecordDeliveryStatus(provider_id=sid, status=status, error_code=code[:20] or None)
