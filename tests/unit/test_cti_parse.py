"""The CTI JSON adapter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from channels.cti import parse_event
from channels.errors import BadInput

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
GOOD = {"event_id": "e1", "type": "abandoned", "call_id": "c-1", "caller": "13912345678",
        "queue": "95598", "at": "2026-11-23T08:00:00+08:00"}


def test_parses_a_good_event() -> None:
    cmd = parse_event(GOOD, NOW)
    assert (cmd.kind, cmd.call_id, cmd.queue) == ("abandoned", "c-1", "95598")
    assert cmd.contact.idempotency_key == "cti:e1"
    assert cmd.contact.occurred_at == datetime(2026, 11, 23, 0, tzinfo=UTC)
    assert cmd.contact.raw == GOOD


@pytest.mark.parametrize("at", ["2026-11-23T00:00:00Z", "2026-11-23t00:00:00z", "2026-11-23 08:00:00+08:00",
                                "2026-11-23T00:00:00.000000000Z"])
def test_every_rfc_3339_form_of_the_instant_is_that_instant(at: str) -> None:
    assert parse_event({**GOOD, "at": at}, NOW).contact.occurred_at == datetime(2026, 11, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize("withheld", [None, ""])
def test_a_call_with_its_number_withheld_is_still_a_contact(withheld: str | None) -> None:
    cmd = parse_event({**GOOD, "caller": withheld}, NOW)
    assert cmd.kind == "abandoned" and cmd.contact.caller.phone is None


@pytest.mark.parametrize(
    ("change", "message"),
    [({"event_id": None}, "event_id"), ({"type": "exploded"}, "type"), ({"caller": 5}, "caller"),
     ({"at": "yesterday"}, "at"), ({"at": "2026-11-23T08:00:00"}, "timezone"),
     ({"call_id": "a/b"}, "call_id"), ({"queue": ""}, "queue")],
)
def test_rejects_bad_fields(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_event({**GOOD, **change}, NOW)
