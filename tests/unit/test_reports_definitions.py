"""The reports' names agree everywhere: the console's pickers and the server's groupings, the
texts catalogues' headers, and every sum a fact contributes has its place in its report's vector."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from dispatch.cases.events import (
    CallbackRecorded,
    CallerInfo,
    CaseCompleted,
    CaseConfirmed,
    CaseDispatched,
    CaseMoved,
    CaseRegistered,
    CaseRejected,
)
from dispatch.core.personal import ERASED
from dispatch.core.texts import LANGUAGES, texts_for
from dispatch.reports.definitions import PERIODS, REPORTS
from dispatch.reports.facts import CallFact, CaseFact, caller_key, delta, org_key

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)  # 00:30 on 1 December in Beijing, still 30 November in UTC


def test_the_console_offers_the_servers_reports_and_groupings() -> None:
    code = (ROOT / "gateway" / "static" / "console" / "reports.js").read_text("utf-8")
    block = re.search(r"const REPORTS = \{(.*?)\};", code, re.S).group(1)  # type: ignore[union-attr]
    pairs = re.findall(r"(\w+): \[([^\]]*)\]", block)
    found = {name: re.findall(r"'(\w+)'", groups) for name, groups in pairs}
    assert found == {name: list(r.groups) for name, r in REPORTS.items()}
    assert re.search(r"const PERIODS = \[(.*?)\]", code).group(1) == ", ".join(f"'{p}'" for p in PERIODS)  # type: ignore[union-attr]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_header_is_in_the_texts_catalogue(lang: str) -> None:
    texts = texts_for(lang)
    for name, report in REPORTS.items():
        assert texts.say(f"report.name.{name}")
        for column in report.columns:
            assert texts.say(f"report.column.{column}")
        for group in report.groups:
            assert texts.say(f"report.group.{group}")
    assert {texts.say(f"report.period.{p}") for p in PERIODS}
    assert json.loads((ROOT / "dispatch" / "core" / "texts" / f"{lang}.json").read_text("utf-8"))


def _case() -> CaseFact:
    fact = CaseFact("C1")
    fact.apply(CaseRegistered("C1", "complaint", 3, "phone", "x", CallerInfo(phone="13900000000"), T0, T0),
               "agent:A1")
    fact.apply(CaseDispatched("C1", "U1", "unit", T0, T0 + timedelta(minutes=30)))
    fact.apply(CaseRejected("C1", "U1", "not ours", T0 + timedelta(minutes=5)))
    fact.apply(CaseDispatched("C1", "U1", "unit", T0 + timedelta(minutes=10), T0 + timedelta(minutes=40),
                              wrong_rejection_of="U1"))
    fact.apply(CaseConfirmed("C1", "U1", T0 + timedelta(minutes=40), T0 + timedelta(days=3)))
    fact.apply(CaseCompleted("C1", T0 + timedelta(days=3, seconds=1), T0 + timedelta(days=4), T0,
                             handler="U1"))
    fact.apply(CallbackRecorded("C1", "unsatisfied", T0 + timedelta(days=4), "U1", case_score=2,
                                unit_score=1))
    return fact


def test_every_contribution_has_a_place_in_its_reports_vector() -> None:
    call = CallFact("K1")
    for kind, at, data in [("offered", T0, {"queue": "q"}), ("answered", T0, {"agent": "A1"}),
                           ("answered", T0, {"agent": "A2"}), ("abandoned", T0, {}),
                           ("ended", T0 + timedelta(seconds=90), {"answered": True})]:
        call.apply(kind, at, data)
    for bucket in [*call.contributions(), *_case().contributions()]:
        report, _, _, _, measure = bucket
        assert measure in REPORTS[report].measures, bucket


def test_erased_callers_read_by_a_rebuild_are_not_one_caller() -> None:
    # Catches: a rebuild after erasures reading every erased caller as the same "[erased]", so
    # all their cases became repeat contacts of each other (on the probe's log, intake rebuild
    # raised the repeat contacts from 2 to 7 of 13 cases and halved first-contact resolution).
    def registered(case_id: str, caller: CallerInfo) -> CaseRegistered:
        return CaseRegistered(case_id, "complaint", 3, "phone", "x", caller, T0, T0)

    erased = [caller_key(registered(c, CallerInfo(name=ERASED, phone=ERASED))) for c in ("C1", "C2")]
    assert erased[0] != erased[1] and None not in erased  # each still a case with a caller
    erased_openid = caller_key(registered("C3", CallerInfo(phone=None, openid=ERASED)))
    assert erased_openid not in (*erased, None)
    same = {caller_key(registered(c, CallerInfo(phone="13900000000"))) for c in ("C4", "C5")}
    assert same == {"13900000000"}


def test_a_case_counts_on_the_days_of_what_happened_in_beijing_time() -> None:
    out = _case().contributions()
    day = date(2026, 12, 1)  # the Beijing date, not the UTC one
    assert out["cases", "unit", "U1", day, "cases"] == 1
    assert out["units", "unit", "U1", day, "dispatched"] == 2
    assert out["units", "unit", "U1", day, "wrong_rejections"] == 1
    assert out["units", "unit", "U1", day, "confirmed_on_time"] == 1  # at its deadline exactly
    assert out["units", "unit", "U1", day, "completed_on_time"] == 0  # a second late
    assert out["units", "unit", "U1", day, "complaints_responded_7d"] == 1
    later = day + timedelta(days=4)  # the call-back, 4 days later
    assert out["satisfaction", "agent", "A1", later, "case_score"] == 2
    assert out["units", "unit", "U1", later, "unit_score"] == 1
    assert {b[3] for b in out} == {day, later}
    assert delta(out, out) == {}


def test_a_case_counts_for_the_node_holding_it_and_the_unit_it_is_dispatched_to() -> None:
    fact = CaseFact("C2")
    fact.apply(CaseRegistered("C2", "complaint", 3, "sms", "x", CallerInfo(phone="13900000000"), T0, T0))
    day = date(2026, 12, 1)

    def held() -> set[str]:
        return {key for (report, dim, key, _, measure) in fact.contributions()
                if (report, dim, measure) == ("cases", "category@org", "cases")}

    assert held() == {org_key(None, None, "complaint")}
    fact.apply(CaseMoved("C2", "SC-A", "routed", T0))
    assert held() == {org_key("SC-A", None, "complaint")}
    fact.apply(CaseDispatched("C2", "U2", "unit", T0, T0 + timedelta(minutes=30), level="SC-B"))
    assert held() == {org_key("SC-B", "U2", "complaint")}  # dispatched down to SC-B's unit
    fact.apply(CaseRejected("C2", "U2", "not ours", T0 + timedelta(minutes=5)))
    assert held() == {org_key("SC-B", None, "complaint")}
    out = fact.contributions()
    assert out["cases", "all@org", org_key("SC-B", None, ""), day, "cases"] == 1
    assert out["cases", "channel@org", org_key("SC-B", None, "sms"), day, "cases"] == 1
    assert not any(dim.endswith("@org") for (report, dim, *_) in out if report != "cases")


def test_a_case_reassigned_and_rejected_by_its_new_unit_is_held_by_no_unit() -> None:
    """A case taken from U1 (dispatched again to U2) and rejected by U2 waits for dispatch: no unit
    holds it, so the case and complaint counts are not U1's (U1 no longer had it)."""
    fact = CaseFact("C3")
    fact.apply(CaseRegistered("C3", "complaint", 3, "phone", "x", CallerInfo(phone="13900000000"), T0, T0))
    fact.apply(CaseDispatched("C3", "U1", "unit", T0, T0 + timedelta(minutes=30)))
    fact.apply(CaseConfirmed("C3", "U1", T0 + timedelta(minutes=5), T0 + timedelta(hours=72)))
    later = T0 + timedelta(hours=1)
    fact.apply(CaseDispatched("C3", "U2", "unit", later, later + timedelta(minutes=30)))
    fact.apply(CaseRejected("C3", "U2", "not ours", T0 + timedelta(hours=2)))
    out = fact.contributions()
    day = date(2026, 12, 1)
    assert fact.unit is None
    assert out["cases", "unit", "-", day, "cases"] == 1 and out["cases", "unit", "U1", day, "cases"] == 0
    assert out["units", "unit", "-", day, "complaints"] == 1
    assert out["units", "unit", "U1", day, "complaints"] == 0


def test_a_case_completed_without_a_confirmation_is_late_by_its_limits() -> None:
    """A unit that completed straight from `dispatched` (no confirmation) always counted as on
    time, 20 days late as well: it was under its confirmation limit plus the completion limit."""
    from dispatch.cases.actions import CompleteCase, decide_complete
    from dispatch.cases.sla import SlaConfig
    from dispatch.cases.state import CaseState
    from dispatch.cases.status import CaseStatus

    cfg = SlaConfig()
    state = CaseState("C4", status=CaseStatus.DISPATCHED, priority=3, assigned_to="U1",
                      assignee_kind="unit", confirm_by=T0 + timedelta(minutes=30))
    for late, on_time in ((timedelta(days=20), 0), (timedelta(hours=1), 1)):
        fact = CaseFact("C4")
        caller = CallerInfo(phone="13900000000")
        fact.apply(CaseRegistered("C4", "complaint", 3, "phone", "x", caller, T0, T0))
        fact.apply(CaseDispatched("C4", "U1", "unit", T0, T0 + timedelta(minutes=30)))
        complete = CompleteCase(case_id="C4", expected_version=0, actor="unit:U1", result="修好了")
        [done] = decide_complete(state, complete, T0 + late, cfg)
        assert done.due == T0 + timedelta(minutes=30) + cfg.complete_limit(3)
        fact.apply(done)
        out = fact.contributions()
        assert out["units", "unit", "U1", date(2026, 12, 1), "completed_on_time"] == on_time
