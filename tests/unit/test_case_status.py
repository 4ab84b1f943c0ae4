"""The case status enum: its groups, and that a stored state reads back as the enum."""

from __future__ import annotations

from dispatch.cases.read_model import state_from_json
from dispatch.cases.state import CaseState
from dispatch.cases.status import BUSY, DONE, OPEN, WAITING, WORKING, CaseStatus
from dispatch.core.messages import to_data


def test_every_registered_status_is_either_open_or_done() -> None:
    assert set(CaseStatus) - {CaseStatus.NEW} == OPEN | DONE
    assert not OPEN & DONE
    assert WAITING | BUSY == OPEN and not WAITING & BUSY
    assert WORKING < BUSY


def test_a_stored_state_reads_back_with_the_enum() -> None:
    stored = to_data(CaseState("C1", status=CaseStatus.IN_PROGRESS))
    assert stored["status"] == "in_progress"
    again = state_from_json(stored)
    assert again.status is CaseStatus.IN_PROGRESS
