"""The shape of the tamper report as `GET /api/v1/audit/verify` answers it (CONTRACT.md)."""

from __future__ import annotations

from eventstore.tamper import BadEvent, VerifyReport


def test_an_intact_report() -> None:
    assert VerifyReport(True, 7, None, 2, 1, ("1 events are not sealed yet",), 4).as_json() == {
        "ok": True, "checked": 7, "first_bad": None, "seals": 2, "unsealed": 1,
        "warnings": ["1 events are not sealed yet"], "access_checked": 4,
    }


def test_a_report_naming_the_first_bad_event() -> None:
    bad = BadEvent("case-1", 42, "modified: content does not match its hash")
    assert bad.as_json() == {"stream": "case-1", "position": 42,
                             "reason": "modified: content does not match its hash"}
    assert VerifyReport(False, 3, bad).as_json() == {
        "ok": False, "checked": 3, "first_bad": bad.as_json(), "seals": 0, "unsealed": 0, "warnings": [],
        "access_checked": 0,
    }
