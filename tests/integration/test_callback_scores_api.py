"""Call-back scores over HTTP: recorded with the outcome and shown in the case; a bad score
answers 400 `bad_score` and records nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import auth
from tests.integration.test_cases_api import FAULT, post


async def completed_case(api: Any) -> tuple[str, int]:
    case = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    base = f"/api/v1/cases/{case['case_id']}"
    case = await post(api, f"{base}/dispatch", {"expected_version": 0, "to": "U001"})
    case = await post(api, f"{base}/complete", {"expected_version": case["version"]}, "t-unit")
    return base, case["version"]


@pytest.mark.parametrize("bad", [0, 6, 4.5, "5", True, [5]])
async def test_a_bad_score_is_refused_with_its_code(api: Any, bad: Any) -> None:
    base, version = await completed_case(api)
    for field in ("case_score", "unit_score"):
        err = await post(api, f"{base}/callback", {"expected_version": version, "outcome": "satisfied",
                                                   field: bad}, "t-agent", 400)
        assert err["error"]["code"] == "bad_score" and field in err["error"]["message"]
    resp = await api.get(base, headers=auth("t-agent"))
    assert (await resp.json())["callback"]["outcome"] is None


async def test_scores_show_in_the_case(api: Any) -> None:
    base, version = await completed_case(api)
    case = await post(api, f"{base}/callback", {"expected_version": version, "outcome": "satisfied",
                                                "case_score": 5, "unit_score": 4}, "t-agent")
    assert case["callback"] == {"outcome": "satisfied", "at": case["callback"]["at"], "handler": "U001",
                                "case_score": 5, "unit_score": 4}
    resp = await api.get(base, headers=auth("t-auditor"))
    assert (await resp.json())["callback"]["unit_score"] == 4


async def test_scores_may_be_left_out_or_null(api: Any) -> None:
    base, version = await completed_case(api)
    case = await post(api, f"{base}/callback", {"expected_version": version, "outcome": "not_confirmed",
                                                "case_score": None}, "t-agent")
    assert (case["callback"]["case_score"], case["callback"]["unit_score"]) == (None, None)
