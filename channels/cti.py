"""Generic CTI adapter: `POST /channels/cti/events` JSON from any PBX.

Body: `{event_id, type: offered|answered|abandoned|ended, call_id, caller,
queue, agent?, recording?, at}` (`recording`: the PBX's id or path of the call's recording);
idempotent on `event_id`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from channels.errors import BadInput
from channels.times import parse_time
from dispatch.cases.events import CallerInfo
from dispatch.intake.calls import CALL_KINDS, RecordCall
from dispatch.intake.contact import InboundContact

_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise BadInput(f"field {name!r} is required", code="missing_field")
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise BadInput(f"field {name!r} must be a string of at most 256 characters", code="bad_field")
    return value


def parse_event(body: Mapping[str, Any], received_at: datetime) -> RecordCall:
    """Validate a CTI event and turn it into a `RecordCall` command."""
    event_id = _text(body, "event_id")
    kind = _text(body, "type")
    call_id = _text(body, "call_id")
    caller = _text(body, "caller", required=False)  # none: a withheld number, still a contact
    queue = _text(body, "queue")
    agent = _text(body, "agent", required=False)
    recording = _text(body, "recording", required=False)
    at = parse_time(str(_text(body, "at")))
    assert event_id and kind and call_id and queue
    if kind not in CALL_KINDS:
        raise BadInput(f"field 'type' must be one of {', '.join(CALL_KINDS)}", code="bad_field")
    if not _ID.match(call_id):
        raise BadInput("field 'call_id' may hold only letters, digits and _ . : -", code="bad_field")
    contact = InboundContact(
        channel="phone",
        kind=f"call_{kind}",
        idempotency_key=f"cti:{event_id}",
        caller=CallerInfo(phone=caller),
        occurred_at=at,
        received_at=received_at,
        raw=dict(body),
        extra={"source": "cti", "event_id": event_id},
    )
    return RecordCall(kind=kind, call_id=call_id, contact=contact, queue=queue, agent=agent,
                      recording=recording, one_event_per_key=True)
