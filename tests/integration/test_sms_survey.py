"""The SMS satisfaction survey on the real app: the completion SMS asks for a 1-5 score and the
citizen's reply is the call-back, or joins the case when an agent has called already."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from dispatch.cases.actions import CompleteCase, ConfirmCase, DispatchCase
from dispatch.cases.events import CallerInfo
from dispatch.cases.read_model import CasesProjection
from dispatch.cases.registration import RegisterCase
from dispatch.core.clock import FakeClock
from dispatch.intake.survey import outcome_of, survey_score, surveyed_case
from eventstore.subscriptions import ProjectionRunner
from gateway.services import SERVICES
from gateway.settings import Settings, TwilioSettings
from tests.conftest import auth, stored_events
from tests.integration.test_sms import TOKEN, poll, post_sms

PHONE = "13911112222"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, twilio=TwilioSettings(TOKEN))


@pytest.mark.parametrize(("text", "score"), [
    ("5", 5), ("５", 5), (" 4分 ", 4), ("3星。", 3), ("1颗星", 1), ("2!", 2),
    ("6", None), ("0", None), ("55", None), ("5楼停电了", None), ("", None), (None, None), ("五", None),
])
def test_only_a_bare_score_is_an_answer(text: str | None, score: int | None) -> None:
    assert survey_score(text) == score


def test_three_and_up_is_satisfied() -> None:
    assert [outcome_of(s) for s in (1, 2, 3, 4, 5)] == ["unsatisfied"] * 2 + ["satisfied"] * 3


async def _act(client: Any, case_id: str, action: str, token: str, **body: Any) -> dict[str, Any]:
    case = await (await client.get(f"/api/v1/cases/{case_id}", headers=auth("t-dispatcher"))).json()
    response = await client.post(f"/api/v1/cases/{case_id}/{action}", headers=auth(token),
                                 json={"expected_version": case["version"], **body})
    answer: dict[str, Any] = await response.json()
    assert response.status == 200, answer
    return answer


async def _completed_case(client: Any, sid: str) -> str:
    pool = client.app[SERVICES].pool
    assert (await post_sms(client, sid, "小区路灯坏了一个星期了")).status == 200

    async def opened() -> Any:
        return await pool.fetchval("SELECT case_id FROM cases WHERE caller_phone = $1 "
                                   "ORDER BY created_at DESC LIMIT 1", PHONE)

    case_id = str(await poll(opened))
    await _act(client, case_id, "dispatch", "t-dispatcher", to="U001")
    await _act(client, case_id, "confirm", "t-unit")
    await _act(client, case_id, "complete", "t-unit", result="已更换灯具")

    async def completed_in_read_model() -> Any:
        return await pool.fetchval("SELECT 1 FROM cases WHERE case_id = $1 AND completed_at IS NOT NULL",
                                   case_id)

    await poll(completed_in_read_model)
    return case_id


async def test_a_score_reply_is_the_call_back_and_opens_no_case(client: Any) -> None:
    pool = client.app[SERVICES].pool
    case_id = await _completed_case(client, "SMsv1")

    async def done_sms() -> Any:
        found = await stored_events(pool, "type = 'NotificationRequested' AND data->>'dedup_key' = $1",
                                    f"done:{case_id}")
        return found[0].data["text"] if found else None

    assert "回复数字1-5" in await poll(done_sms)  # the completion SMS asks for the score
    assert (await post_sms(client, "SMsv2", "4分")).status == 200
    assert (await post_sms(client, "SMsv2", "4分")).status == 200  # a redelivery changes nothing

    async def called_back() -> Any:
        case = await (await client.get(f"/api/v1/cases/{case_id}", headers=auth("t-agent"))).json()
        return case if case["callback"]["outcome"] else None

    case = await poll(called_back)
    assert case["status"] == "called_back"
    callback = case["callback"]
    assert (callback["outcome"], callback["case_score"], callback["unit_score"]) == ("satisfied", 4, None)
    recorded = await pool.fetch("SELECT data, metadata FROM events WHERE type = 'CallbackRecorded'")
    assert len(recorded) == 1 and recorded[0]["data"]["by"] == "citizen:sms"
    assert await pool.fetchval("SELECT count(*) FROM cases WHERE caller_phone = $1", PHONE) == 1


async def test_after_an_agent_called_back_a_score_joins_the_case(client: Any) -> None:
    pool = client.app[SERVICES].pool
    case_id = await _completed_case(client, "SMsv3")
    await _act(client, case_id, "callback", "t-agent", outcome="satisfied", case_score=5, unit_score=5)
    assert (await post_sms(client, "SMsv4", "2")).status == 200

    async def joined() -> Any:
        found = await stored_events(pool, "type = 'CaseMessageReceived' AND stream = $1", f"case-{case_id}")
        return found[0].data["text"] if found else None

    assert await poll(joined) == "2"
    case = await (await client.get(f"/api/v1/cases/{case_id}", headers=auth("t-agent"))).json()
    assert (case["callback"]["outcome"], case["callback"]["case_score"]) == ("satisfied", 5)  # the agent's
    assert await pool.fetchval("SELECT count(*) FROM cases WHERE caller_phone = $1", PHONE) == 1


async def test_a_score_with_nothing_completed_is_an_ordinary_contact(client: Any) -> None:
    pool = client.app[SERVICES].pool
    assert (await post_sms(client, "SMsv5", "5")).status == 200

    async def opened() -> Any:
        return await pool.fetchval("SELECT description FROM cases WHERE caller_phone = $1", PHONE)

    assert await poll(opened) == "5"
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'CallbackRecorded'") == 0


async def test_the_survey_window_is_seven_days_from_completion(wired: Any, clock: FakeClock) -> None:
    bus = wired.bus
    case_id = (await bus.handle(RegisterCase(category="complaint", channel="sms", description="噪音扰民",
                                             caller=CallerInfo(phone=PHONE)))).case_id
    state = await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    state = await bus.handle(ConfirmCase(case_id=case_id, expected_version=state.version, actor="unit:U001"))
    await bus.handle(CompleteCase(case_id=case_id, expected_version=state.version, actor="unit:U001"))
    await ProjectionRunner(wired.store, CasesProjection(clock)).run_until_caught_up()
    clock.advance(timedelta(days=7) - timedelta(minutes=1))
    found = await surveyed_case(wired.store, wired.pool, PHONE, clock)
    assert found is not None and found.case_id == case_id
    clock.advance(timedelta(minutes=2))
    assert await surveyed_case(wired.store, wired.pool, PHONE, clock) is None
    assert await surveyed_case(wired.store, wired.pool, "13900000000", clock) is None
