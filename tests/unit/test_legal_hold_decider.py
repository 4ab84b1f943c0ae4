"""The legal hold's rules (`dispatch/personal/hold.py`) and how it folds into a case's state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatch.cases.events import CaseLegalHoldReleased, CaseLegalHoldSet
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import CaseState
from dispatch.core.errors import InvalidCommand, NotAllowed
from dispatch.core.messages import to_data
from dispatch.personal.hold import SetLegalHold, decide_legal_hold, held

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _hold(actor: str, on: bool = True, reason: str = "诉讼中") -> SetLegalHold:
    return SetLegalHold(case_id="C1", actor=actor, hold=on, reason=reason)


def test_a_hold_is_set_then_released_and_folds_into_the_state() -> None:
    s = CaseState("C1")
    [set_] = decide_legal_hold(s, _hold("dispatcher:D1"), NOW, SlaConfig())
    assert set_ == CaseLegalHoldSet("C1", "诉讼中", "dispatcher:D1", NOW)
    s.apply(set_, 1)
    assert s.legal_hold is not None and s.legal_hold.reason == "诉讼中" and held([s]) == ["C1"]
    [released] = decide_legal_hold(s, _hold("auditor:AU1", False, "结案"), NOW, SlaConfig())
    assert isinstance(released, CaseLegalHoldReleased)
    s.apply(released, 2)
    assert s.legal_hold is None and held([s]) == []


@pytest.mark.parametrize(("on", "actor", "is_held", "error"), [
    (True, "agent:A1", False, NotAllowed),        # agents do not set holds
    (True, "unit:U1", False, NotAllowed),
    (True, "admin:root", True, NotAllowed),       # already held
    (False, "dispatcher:D1", True, NotAllowed),   # a dispatcher does not release
    (False, "admin:root", False, NotAllowed),     # nothing to release
])
def test_who_may_set_and_release(on: bool, actor: str, is_held: bool, error: type[Exception]) -> None:
    s = CaseState("C1")
    if is_held:
        s.apply(CaseLegalHoldSet("C1", "r", "admin:root", NOW), 1)
    with pytest.raises(error):
        decide_legal_hold(s, _hold(actor, on), NOW, SlaConfig())


def test_a_reason_is_required() -> None:
    with pytest.raises(InvalidCommand):
        decide_legal_hold(CaseState("C1"), _hold("admin:root", reason="  "), NOW, SlaConfig())
    with pytest.raises(InvalidCommand):
        decide_legal_hold(CaseState("C1"), _hold("admin:root", reason="x" * 501), NOW, SlaConfig())


def test_the_hold_survives_the_read_models_json() -> None:
    from dispatch.cases.read_model import state_from_json as from_json

    s = CaseState("C1")
    s.apply(CaseLegalHoldSet("C1", "r", "admin:root", NOW), 1)
    assert from_json(to_data(s)).legal_hold == s.legal_hold
