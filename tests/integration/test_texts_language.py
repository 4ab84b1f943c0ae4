"""`INTAKE_LANGUAGE` reaches what the system sends: the bus's handlers and the hooks' reactors."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from channels.wechat import to_push
from dispatch.intake.wechat import ReceiveWeChatPush
from dispatch.notify import outbox
from dispatch.supervision import chasing
from gateway.bootstrap import build_services, close_services
from gateway.settings import Settings


async def _reply(services: Any, who: str) -> str:
    push = to_push({"ToUserName": "gh", "FromUserName": who, "CreateTime": "9", "MsgType": "event",
                    "Event": "subscribe"})
    answer = await services.bus.handle(ReceiveWeChatPush(push, "<xml/>"))
    return str(answer.reply)


async def test_chinese_unless_the_setting_says_english(settings: Settings) -> None:
    chinese = await build_services(settings)
    try:
        assert (await _reply(chinese, "oZh")).startswith("欢迎关注")
    finally:
        await close_services(chinese)
    english = await build_services(replace(settings, process=replace(settings.process, language="en")))
    try:
        assert english.texts.language == "en"
        assert (await _reply(english, "oEn")).startswith("Welcome!")
        assert outbox.reactors(english)[0]._texts.language == "en"
        assert chasing.reactors(english)[0]._texts.language == "en"
    finally:
        await close_services(english)
