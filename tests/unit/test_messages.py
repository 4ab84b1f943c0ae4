"""Events round-trip through their stored form; every event type is known to a fresh reader."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from dispatch.case import CallerInfo, CaseRegistered, Place
from dispatch.messages import from_recorded, to_new_event
from eventstore import RecordedEvent


def test_event_round_trips_with_nested_dataclasses_and_datetimes() -> None:
    at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    evt = CaseRegistered(case_id="C1", category="power_fault", priority=2, channel="phone",
                         description="停电", caller=CallerInfo(name="张三", phone="13912345678"),
                         accepted_at=at, deadline=at, location=Place(34.3, 108.7, "610402"),
                         flags=("vip",))
    new = to_new_event(evt, {"actor": "agent:A001"})
    record = RecordedEvent(1, "case-C1", 0, new.type, new.schema_version, new.data, new.metadata, at)
    assert from_recorded(record) == evt


def test_a_fresh_process_knows_event_types_of_modules_it_never_imported() -> None:
    code = (
        "from datetime import datetime, UTC\n"
        "from eventstore import RecordedEvent\n"
        "from dispatch.messages import from_recorded\n"
        "r = RecordedEvent(1, 'case-C1', 1, 'CaseLinked', 1, {'case_id': 'C1', 'other_case_id': 'C2',"
        " 'reason': 'same_place', 'score': 0.9}, {}, datetime.now(UTC))\n"
        "print(type(from_recorded(r)).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "CaseLinked"
