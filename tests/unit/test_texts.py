"""What the system sends people (SMS, WeChat) comes from one catalogue per language: Chinese by
default, English with `INTAKE_LANGUAGE=en`, every key the code says present in both."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.wechat import to_push
from dispatch.cases.events import CallerInfo
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.core.clock import FakeClock
from dispatch.core.texts import CHINESE, LANGUAGES, texts_for
from dispatch.elderly.alarms import AlarmReceived, Elder, alert_text, decide_case
from dispatch.intake.wechat import Conversation, WeChatMessageReceived, reply
from dispatch.linking.incidents import IncidentState, broadcast_text
from dispatch.notify.outbox import AcknowledgementPolicy, RequestNotification
from eventstore.memory import MemoryEventStore
from gateway.settings import from_env

ROOT = Path(__file__).resolve().parents[2]


def _said_keys() -> tuple[set[str], set[str]]:
    """Message keys named in the domain's code: every string literal that starts with a group of
    the catalogue (`"notify.ack"`, `"wechat.welcome"`...), and the groups `name()` looks values up in."""
    code = "\n".join(p.read_text("utf-8") for p in (ROOT / "dispatch").rglob("*.py"))
    prefixes = "|".join(sorted({key.split(".")[0] for key in CHINESE.messages}))
    groups = set(re.findall(r'\.name\(\s*"([a-z_.]+)"', code))
    keys = set(re.findall(rf'"((?:{prefixes})\.[a-z_.]+)"', code)) - groups
    return keys, groups


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_the_code_sends_is_in_each_catalogue(language: str) -> None:
    messages = texts_for(language).messages
    keys, groups = _said_keys()
    assert {"notify.ack", "notify.done", "wechat.event", "elderly.alert"} <= keys
    assert sorted(keys - messages.keys()) == []
    assert sorted(f"{g}.other" for g in groups if f"{g}.other" not in messages) == []
    assert sorted(messages.keys() ^ CHINESE.messages.keys()) == []
    for key, text in messages.items():  # the same fields, whatever their order
        assert set(re.findall(r"\{(\w+)", text)) == set(re.findall(r"\{(\w+)", CHINESE.messages[key])), key


def test_chinese_by_default_english_by_setting() -> None:
    assert from_env({}).process.language == "zh-CN"
    english = texts_for(from_env({"INTAKE_LANGUAGE": "en"}).process.language)
    assert english.language == "en"
    with pytest.raises(ValueError, match="one of"):
        texts_for("fr")


async def test_acknowledgements_are_sent_in_the_configured_language() -> None:
    store = MemoryEventStore()
    sent: list[RequestNotification] = []

    async def handle(cmd: object) -> None:
        assert isinstance(cmd, RequestNotification)
        sent.append(cmd)

    done = await register_case(
        RegisterCase(category="power_fault", channel="phone", description="停电",
                     caller=CallerInfo(name="张三", phone="13912345678")),
        store=store, clock=FakeClock())
    records = [record for _, record in await store.read_all(await store.load_checkpoint("x"))]
    for texts in (CHINESE, texts_for("en")):
        policy = AcknowledgementPolicy(handle, store, texts)
        for record in records:
            await policy.react(record)
    assert sent[0].text == f"您的诉求已受理，受理编号 {done.case_id}，我们将尽快处理。"
    assert sent[1].text.startswith("Your request has been accepted, case number " + done.case_id)


def test_incident_alarm_and_wechat_texts_follow_the_language() -> None:
    state = IncidentState("INC-1", category="power_fault", cause="变压器故障",
                          expected_restoration_at=datetime(2026, 12, 6, 10, 30, tzinfo=UTC))
    assert broadcast_text(state, "C-1") == ("您反映的停电故障（案件号C-1）已查明原因：变压器故障。"
                                            "预计12月06日18:30恢复，无需重复来电。")
    assert "power outage you reported (case C-1)" in broadcast_text(state, "C-1", texts_for("en"))
    assert "06 Dec 18:30" in broadcast_text(state, "C-1", texts_for("en"))
    other = IncidentState("INC-2", category="street_light", cause="线路老化",
                          expected_restoration_at=datetime(2026, 12, 6, 10, 30, tzinfo=UTC))
    assert broadcast_text(other, "C-2").startswith("您反映的问题")
    assert CHINESE.say("wechat.welcome") in reply(Conversation(), _subscribe())
    assert "Welcome!" in reply(Conversation(), _subscribe(), texts_for("en"))
    elder = Elder(id="E1", name="王奶奶", phone="13900000000", address="人民路1号", lat=34.3, lon=108.7)
    assert alert_text(elder, "C-3", _alarm()).startswith("【一键通紧急求助】王奶奶于09:00按下紧急呼叫")
    assert alert_text(elder, "C-3", _alarm(), texts_for("en")).startswith(
        "[Emergency button] 王奶奶 pressed the emergency button at 09:00")


def test_the_case_an_alarm_opens_is_described_in_the_configured_language() -> None:
    pressed = replace(_alarm(), zone="1")
    elder = Elder(id="E1", name="王奶奶", phone="13900000000", address="人民路1号", lat=34.3, lon=108.7,
                  conditions=("糖尿病", "行动不便"))
    assert decide_case(pressed, elder).description == (
        "一键通紧急求助：老人E1的设备E0001报警（SIA-DCS MA，防区1）；健康状况：糖尿病、行动不便")
    unknown = decide_case(pressed, None).description
    assert unknown.startswith("一键通紧急求助：未登记设备E0001报警（SIA-DCS MA，防区1）")
    assert decide_case(pressed, elder, texts_for("en")).description == (
        "One-touch alarm SIA-DCS MA zone 1 from elder E1 (device E0001); conditions: 糖尿病, 行动不便")
    assert "UNREGISTERED device E0001" in decide_case(pressed, None, texts_for("en")).description


def _subscribe() -> WeChatMessageReceived:
    push = to_push({"ToUserName": "gh", "FromUserName": "oU", "CreateTime": "9", "MsgType": "event",
                    "Event": "subscribe"})
    return WeChatMessageReceived(push, "")


def _alarm() -> AlarmReceived:
    """Pressed at 01:00 UTC: 09:00 in Beijing, the time the contacts read."""
    return AlarmReceived("A1", "E0001", "SIA-DCS", "MA", "alarm", "tcp",
                         datetime(2026, 12, 6, 1, 0, tzinfo=UTC))
