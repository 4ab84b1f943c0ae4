"""Registering a phone case at the agent's desk, in headless Chromium, in both languages: the form
opened by the caller card's `intake:register` event with the ringing call's number and id, the
power-fault fields shown for the category and checked by the API (its field errors shown next to
the fields), the address located by the gazetteer, the duplicate candidate seen before saving, the
knowledge base's suggestion, and the saved case showing every intake field and its call's
recording; at a phone's width, by keyboard alone.
"""

# ruff: noqa: E501 (Chinese fixtures: each character counts two columns)

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from dispatch.knowledge.articles import ImportArticle
from gateway.services import SERVICES
from gateway.settings import ConsoleSettings, Settings
from tests.e2e.test_console_browser import CHROMIUM, _shot, browser, console  # noqa: F401 - fixtures
from tests.e2e.test_console_desk_browser import VISIBLE_TEXT, _english_words, _missing_keys, _page
from tests.e2e.test_knowledge_browser import OUTAGE
from tests.integration.test_places_pg import load_gazetteer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]

TEMPLATE = "https://pbx.example/rec/{call_id}.wav"
AGENT = {"Authorization": "Bearer t-agent"}
PHONE = "13912345678"
WORDS = {
    "zh-CN": {"title": "新建工单 · 电话受理", "required": "必填", "same_caller": "同一来电人", "fix": "有 4 处需要更正",
              "no_power": "停电", "matched": "地址匹配：渭阳超市", "recordings": "通话录音", "account": "用电户号",
              "button": "新建工单"},
    "en": {"title": "New case · phone intake", "required": "Required", "same_caller": "Same caller",
           "fix": "4 field(s) to correct", "no_power": "No power", "matched": "Address matched: 渭阳超市",
           "recordings": "Call recordings", "account": "Account number", "button": "New case"},
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with a recording-URL template."""
    return dataclasses.replace(settings, console=ConsoleSettings(recording_url=TEMPLATE))


async def _call(client: Any, kind: str, call_id: str, n: int) -> None:
    body = {"event_id": f"{call_id}-{n}", "type": kind, "call_id": call_id, "caller": PHONE, "queue": "95598",
            "agent": "A001", "at": f"2026-12-06T08:0{n}:00+08:00"}
    response = await client.post("/channels/cti/events", json=body, headers={"Authorization": "Bearer t-channel"})
    assert response.status == 201, await response.text()


async def _earlier_case(client: Any) -> dict[str, Any]:
    """The same caller's open power-fault case, an hour old at most: the duplicate to be seen."""
    body = {"category": "power_fault", "channel": "phone", "description": "下午开始停电，整栋楼没电",
            "caller": {"name": "张三", "phone": PHONE}, "account_number": "6100012345",
            "address": "渭阳超市旁", "location": {"lat": 34.3712, "lon": 108.7413},
            "fault": {"type": "no_power", "began_at": "2026-12-06T14:00:00+08:00", "scope": "building"}}
    response = await client.post("/api/v1/cases", json=body, headers=AGENT)
    assert response.status == 201, await response.text()
    found: dict[str, Any] = await response.json()
    return found


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_registering_a_power_fault_case_from_the_ringing_call(
        browser: Any, console: Any, lang: str, tmp_path: Path) -> None:  # noqa: F811
    words = WORDS[lang]
    await load_gazetteer(console.app[SERVICES], tmp_path)
    services = console.app[SERVICES]
    await services.bus.handle(ImportArticle(article_id="KBP001", actor="loader", content=OUTAGE))
    earlier = await _earlier_case(console)
    call_id = f"1700000001.{7 if lang == 'zh-CN' else 8}"
    await _call(console, "offered", call_id, 1)
    await _call(console, "answered", call_id, 2)
    async with _page(browser, str(console.make_url("/")) + f"?token=t-agent&lang={lang}") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        # the caller card's "new case" button sends this event when the call rings
        await page.evaluate("""([phone, callId]) => document.dispatchEvent(
            new CustomEvent('intake:register', { detail: { phone, call_id: callId } }))""", [PHONE, call_id])
        form = page.locator("aside.register:not([hidden]) form.reg-form")
        await form.wait_for()
        assert await page.locator("#reg-title").text_content() == words["title"]
        assert await form.locator("input[name=caller_phone]").input_value() == PHONE
        assert await form.locator(".call-id").text_content() == call_id
        assert await page.evaluate("document.activeElement.name") == "caller_name"  # the number is there
        # the power-fault fields come with the category
        assert not await form.locator("[data-field='fault.type']").is_visible()
        await form.locator("select[name=category]").select_option("power_fault")
        assert await form.locator("[data-field='fault.type']").is_visible()
        assert await form.locator("[data-field=account_number] .req").text_content() == " *"
        # the same caller's open case is shown before saving
        candidate = form.locator(f"li.candidate[data-case='{earlier['case_id']}'][data-reason=same_caller]")
        await candidate.wait_for()
        assert words["same_caller"] in (await candidate.text_content() or "")

        await form.locator("input[name=caller_name]").fill("张三")
        await form.locator("textarea[name=description]").fill("家里停电了，整栋楼都没电")
        await form.locator("input[name=address]").fill("咸阳市渭城区渭阳超市门口")
        found = form.locator(".place-found[data-place=T3]")
        await found.wait_for(timeout=40_000)  # the first match builds the matcher (jieba's dictionary)
        assert words["matched"] in (await found.text_content() or "")
        assert await form.locator(".point-value").text_content() == "34.371, 108.741"
        # the knowledge base suggests the outage article for the description
        await form.locator("li.suggestion[data-article=KBP001]").wait_for()

        # saved without the fault fields: the API's errors, next to each field, in the language
        await form.locator("button[type=submit]").click()
        await form.locator(".reg-summary .err[data-code=invalid_fields]").wait_for()
        assert await form.locator(".reg-summary .err").text_content() == words["fix"]
        for path in ("account_number", "fault.type", "fault.began_at", "fault.scope"):
            error = form.locator(f"[data-field='{path}'] .field-error")
            assert await error.text_content() == words["required"], path
            assert await error.get_attribute("data-code") == "missing_field"
        assert await page.evaluate("document.activeElement.name") == "account_number"
        assert await _missing_keys(page) == []
        if lang == "zh-CN":
            text = await page.evaluate(VISIBLE_TEXT)
            assert not _english_words(text), _english_words(text)
        await _shot(page, f"register-errors-{lang}")

        await form.locator("input[name=account_number]").fill("6100012345")
        await form.locator("select[name=customer_type]").select_option("resident")
        await form.locator("select[name=fault_type]").select_option("no_power")
        await form.locator("input[name=fault_began_at]").fill("2026-12-06T07:50")
        await form.locator("select[name=fault_scope]").select_option("building")
        await form.locator("input[name=special_needs]").fill("家中有制氧机")
        await form.locator("button[type=submit]").click()

        # the drawer closes and the new case opens, with every intake field and the call's recording
        await page.locator("aside.register[hidden]").wait_for(state="attached")
        head = page.locator(".detail .case-id")
        await head.wait_for()
        case_id = (await head.text_content() or "").strip()
        assert case_id != earlier["case_id"]
        facts = page.locator(".detail dl.facts")
        await facts.locator("dd[data-intake=call_id]", has_text=call_id).wait_for()
        assert await facts.locator("dd[data-intake=account_number]").text_content() == "6100012345"
        assert await facts.locator("dd[data-intake='fault.type']").text_content() == words["no_power"]
        assert await facts.locator("dd[data-intake='fault.began_at']").text_content() == "12-06 07:50:00"
        assert words["account"] in (await facts.text_content() or "")
        audio = page.locator(f".detail li.recording[data-call='{call_id}'] audio")
        await audio.wait_for(state="attached")
        assert await audio.get_attribute("src") == f"https://pbx.example/rec/{call_id}.wav"
        assert await page.locator(".detail .recordings-box h3").text_content() == words["recordings"]
        assert await _missing_keys(page) == []
        await _shot(page, f"register-saved-{lang}")

    saved = await (await console.get(f"/api/v1/cases/{case_id}", headers=AGENT)).json()
    assert (saved["call_id"], saved["category"], saved["channel"]) == (call_id, "power_fault", "phone")
    assert saved["fault"] == {"type": "no_power", "began_at": "2026-12-06T07:50:00+08:00", "scope": "building"}
    assert (saved["location"]["lat"], saved["location"]["lon"]) == (34.371, 108.741)
    assert (saved["customer_type"], saved["special_needs"]) == ("resident", "家中有制氧机")


async def test_at_a_phones_width_by_keyboard(browser: Any, console: Any) -> None:  # noqa: F811
    async with _page(browser, str(console.make_url("/")) + "?token=t-agent", width=390, height=844) as page:
        await page.wait_for_selector(".conn[data-state=live]")
        button = page.locator("button.new-case")
        assert await button.text_content() == WORDS["zh-CN"]["button"]
        await button.focus()
        await page.keyboard.press("Enter")
        drawer = page.locator("aside.register:not([hidden])")
        await drawer.wait_for()
        assert await page.evaluate("document.activeElement.name") == "caller_phone"
        assert await drawer.evaluate("(el) => el.scrollWidth <= el.clientWidth + 1")
        box = await drawer.bounding_box()
        assert box["x"] >= -0.5 and box["width"] <= 390.5
        await page.keyboard.type("13800001111")
        await page.keyboard.press("Tab")
        await page.keyboard.type("李四")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.name") == "category"
        await page.keyboard.press("Escape")  # hidden, the draft kept, focus back on the button
        await page.locator("aside.register[hidden]").wait_for(state="attached")
        assert await page.evaluate("document.activeElement.classList.contains('new-case')")
        await page.keyboard.press("Enter")
        await drawer.wait_for()
        assert await drawer.locator("input[name=caller_name]").input_value() == "李四"
        await _shot(page, "register-phone")
