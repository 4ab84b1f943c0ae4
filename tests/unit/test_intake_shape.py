"""One intake shape (issue 19): every channel adapter parses into the intake contact and sends
one command that a domain handler decides; no adapter reads the event store."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from my_dc09_spt.msg.dc05_msg import dc05_msg
from my_dc09_spt.msg.dc09_msg import dc09_msg

import eventstore
from channels import alarm, ami, cti, open311, sia, twilio
from channels.contact_id import decode
from dispatch.core.capability import collect_handlers
from dispatch.intake.contact import InboundContact
from gateway.bootstrap import DOMAIN

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ROOT = Path(__file__).parents[2]


def _frame() -> object:
    payload = dc05_msg.dc05event("1234", {"code": 101, "q": 1, "zone": 1})
    frame = sia.parse_frame(dc09_msg("1234", line=0).dc09block(7, "ADM-CID", payload).encode(), {})
    return alarm.command_from_frame(frame, decode(frame.token, frame.data), "sia-udp", NOW)


ADAPTERS: dict[str, Callable[[], object]] = {
    "cti": lambda: cti.parse_event({"event_id": "e1", "type": "offered", "call_id": "c1",
                                    "caller": "13912345678", "queue": "q", "at": NOW.isoformat()}, NOW),
    "ami": lambda: ami.to_command({"Event": "QueueCallerJoin", "Uniqueid": "17.1",
                                   "CallerIDNum": "13912345678"}, NOW),
    "twilio sms": lambda: twilio.parse_sms(twilio.parse_form(b"MessageSid=SM" + b"a" * 32
                                                             + b"&From=%2B8613912345678&Body=x"), NOW),
    "open311": lambda: open311.to_command(
        open311.parse_form({"service_code": "complaint", "lat": "34.3", "long": "108.7"}),
        actor="channel:web", holder="web", idempotency_key=None, received_at=NOW),
    "alarm https": lambda: alarm.command_from_json(
        {"event_id": "v1", "account": "1234", "code": "MA", "at": NOW.isoformat()}, "channel:x", NOW),
    "sia": _frame,
}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_every_adapter_sends_one_domain_command_carrying_the_contact(adapter: str) -> None:
    command = ADAPTERS[adapter]()
    assert isinstance(getattr(command, "contact", None), InboundContact)
    assert type(command) in collect_handlers(DOMAIN)  # a dispatch handler decides what it means


def test_channels_never_touch_the_store() -> None:
    """Adapters verify and parse; whether the log already holds a contact is the domain's to ask.
    From `eventstore` a channel may import its errors only (to tell an outage from bad input)."""
    found = []
    for path in sorted((ROOT / "channels").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [f"{path.name}:{node.lineno}" for a in node.names if a.name.startswith("eventstore")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("eventstore"):
                found += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                          if not isinstance(getattr(eventstore, a.name, None), type)
                          or not issubclass(getattr(eventstore, a.name), Exception)]
    assert not found, found
