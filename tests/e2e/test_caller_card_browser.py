"""Who is calling, in headless Chromium and in both languages: a CTI `offered` event to the
signed-in agent opens the caller card with the number's history; the agent adds this second
call to the open case; "new case" hands the call to the registration form; a dispatcher finds
a number with the search box and blacklists it, and the card then counts its contacts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import until
from tests.e2e.test_console_browser import CHROMIUM, browser, console  # noqa: F401 - fixtures
from tests.e2e.test_console_desk_browser import (
    VISIBLE_TEXT,
    _english_words,
    _missing_keys,
    _page,
    _raw_keys,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]

ROOT = Path(__file__).resolve().parents[2]
PHONE = "13912345678"
CHANNEL = {"Authorization": "Bearer t-channel"}
AGENT = {"Authorization": "Bearer t-agent"}
WORDS = {
    "zh-CN": {"title": "来电", "add": "记入此工单", "added": "已记入", "black": "黑名单（骚扰）"},
    "en": {"title": "Incoming call", "add": "Add to this case", "added": "Added",
           "black": "Blacklisted (harassing)"},
}


async def _cti(client: Any, event_id: str, kind: str, call_id: str, caller: str = "+86 139 1234 5678",
               agent: str | None = "A001") -> None:
    body = {"event_id": event_id, "type": kind, "call_id": call_id, "caller": caller, "queue": "12345",
            "at": datetime.now(UTC).isoformat()}
    if agent:
        body["agent"] = agent
    response = await client.post("/channels/cti/events", json=body, headers=CHANNEL)
    assert response.status == 201, await response.text()


async def _case(client: Any, description: str, phone: str = PHONE) -> dict[str, Any]:
    response = await client.post("/api/v1/cases", headers=AGENT, json={
        "category": "complaint", "channel": "phone", "description": description,
        "caller": {"name": "王五", "phone": phone}, "address": "咸阳市秦都区人民路 8 号"})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def _check_language(page: Any, lang: str) -> None:
    text = await page.evaluate(VISIBLE_TEXT)
    assert await _missing_keys(page) == []
    assert not _raw_keys(text), _raw_keys(text)
    if lang == "zh-CN":
        assert not _english_words(text), _english_words(text)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_an_offered_call_opens_the_card_and_the_call_joins_the_open_case(
        browser: Any, console: Any, lang: str) -> None:  # noqa: F811
    words = WORDS[lang]
    older = await _case(console, "上周的路灯投诉")
    closed = await console.post(f"/api/v1/cases/{older['case_id']}/close", headers=AGENT,
                                json={"expected_version": older["version"], "reason": "answered"})
    assert closed.status == 200
    base = str(console.make_url("/"))
    async with _page(browser, f"{base}?token=t-agent&lang={lang}") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        assert await page.locator(".caller-card").is_hidden()

        # the first call rings: the card opens with the number's history and "new case"
        await _cti(console, "r1", "offered", "call-1")
        card = page.locator(".caller-card[data-call='call-1']")
        await card.wait_for()
        assert await card.get_attribute("data-phone") == PHONE
        assert words["title"] in (await card.locator(".caller-title").text_content() or "")
        await card.locator(f"li.caller-case[data-case='{older['case_id']}'][data-open=false]").wait_for()
        assert await card.locator("button[data-caller-action=add]").count() == 0  # no open case yet
        assert await card.locator(".tier-icon[data-tier=none]").get_attribute("aria-label")
        await page.evaluate(
            "document.addEventListener('intake:register', (e) => { window.registered = e.detail; })")
        await card.locator("button[data-caller-action=new-case]").click()
        assert await page.wait_for_function("() => window.registered") is not None  # no eval: CSP
        assert await page.evaluate("window.registered") == {"phone": PHONE, "call_id": "call-1"}
        # the registration form opens on the ringing call: its number and the call to link
        form = page.locator("aside.register:not([hidden]) form.reg-form")
        await form.wait_for()
        assert await form.locator("input[name=caller_phone]").input_value() == PHONE
        assert await form.locator(".call-id").text_content() == "call-1"
        await page.keyboard.press("Escape")  # hidden, the draft kept
        await page.locator("aside.register[hidden]").wait_for(state="attached")
        await _check_language(page, lang)

        # the case was registered from that call; the caller rings again
        case = await _case(console, "小区噪音扰民，夜里施工")
        await _cti(console, "r2", "offered", "call-2", caller="139-1234-5678")
        card = page.locator(".caller-card[data-call='call-2']")
        row = card.locator(f"li.caller-case[data-case='{case['case_id']}'][data-open=true]")
        await row.wait_for()
        first = await card.locator("li.caller-case").first.get_attribute("data-case")
        assert first == case["case_id"]  # open cases first
        await card.locator("li.caller-call[data-call='call-1']").wait_for()
        add = row.locator("button[data-caller-action=add]")
        assert await add.text_content() == words["add"]
        await add.click()
        await row.locator("button[data-done=true]", has_text=words["added"]).wait_for()
        await card.locator(".caller-msg .ok").wait_for()
        await card.locator(f"li.caller-call[data-call='call-2']:has-text('{case['case_id']}')").wait_for()
        await _check_language(page, lang)

    history = await (await console.get(f"/api/v1/audit/cases/{case['case_id']}/history",
                                       headers=AGENT)).json()
    added = [e["data"] for e in history["events"] if e["type"] == "CallAddedToCase"]
    assert [(a["call_id"], a["by"]) for a in added] == [("call-2", "agent:A001")]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_a_dispatcher_finds_and_blacklists_a_number(
        browser: Any, console: Any, lang: str) -> None:  # noqa: F811
    words = WORDS[lang]
    mine = await _case(console, "反复来电")
    other = await _case(console, "别人的工单", phone="13800000000")
    base = str(console.make_url("/"))
    async with _page(browser, f"{base}?token=t-dispatcher&lang={lang}") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        await page.locator(f"tr.case-row[data-case='{other['case_id']}']").wait_for()
        await page.fill("form.search input[name=q]", "+86 139-1234-5678")
        await page.press("form.search input[name=q]", "Enter")
        await page.locator(f"tr.case-row[data-case='{other['case_id']}']").wait_for(state="detached")
        await page.locator(f"tr.case-row[data-case='{mine['case_id']}']").wait_for()
        card = page.locator(f".caller-card[data-phone='{PHONE}']")
        await card.locator(f"li.caller-case[data-case='{mine['case_id']}']").wait_for()

        form = card.locator("form.caller-registry")
        await form.locator("select[name=tier]").select_option("blacklisted")
        await form.locator("input[name=reason]").fill("骚扰电话，每天几十次")
        await form.locator("button[type=submit]").click()
        icon = card.locator(".caller-head .tier-icon[data-tier=blacklisted]")
        await icon.wait_for()
        assert await icon.get_attribute("aria-label") == words["black"]
        assert await icon.get_attribute("role") == "img"
        await card.locator(".caller-note[data-contacts='0']").wait_for()

        # its calls are still recorded, and counted where the supervisor sees them
        await _cti(console, "h1", "abandoned", "h-1", agent=None)
        await _cti(console, "h2", "abandoned", "h-2", agent=None)
        await card.locator(".caller-note[data-contacts='2']").wait_for()
        await card.locator("li.caller-call[data-call='h-2']").wait_for()
        await _check_language(page, lang)

        # the supervisor's list: the number with its counter, and the queue of its contacts
        await page.locator("button[data-harassment]").click()
        listing = page.locator(".caller-card[data-view=harassment]")
        await listing.locator(f"li.harassment-number[data-phone='{PHONE}'][data-contacts='2']").wait_for()
        assert await listing.locator("li.harassment-contact").count() == 2
        await _check_language(page, lang)
        await listing.locator(f"li.harassment-number[data-phone='{PHONE}'] button").click()
        await page.locator(f".caller-card[data-view=card][data-phone='{PHONE}']").wait_for()

        # a case id finds its case; clearing the search shows the board again
        await page.fill("form.search input[name=q]", other["case_id"])
        await page.press("form.search input[name=q]", "Enter")
        await page.locator(f"tr.case-row[data-case='{mine['case_id']}']").wait_for(state="detached")
        await page.locator(f"tr.case-row[data-case='{other['case_id']}']").wait_for()
        await page.fill("form.search input[name=q]", "")
        await page.press("form.search input[name=q]", "Enter")
        await page.locator(f"tr.case-row[data-case='{mine['case_id']}']").wait_for()

    listed = await (await console.get("/api/v1/customers?tier=blacklisted",
                                      headers={"Authorization": "Bearer t-dispatcher"})).json()
    assert [(c["phone"], c["contacts"], c["set_by"]) for c in listed["items"]] == [
        (PHONE, 2, "dispatcher:D001")]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_a_blacklisted_numbers_case_shows_in_the_harassment_queue_not_on_the_board(
        browser: Any, console: Any, lang: str) -> None:  # noqa: F811
    put = await console.put(f"/api/v1/customers/{PHONE}", json={"tier": "blacklisted", "reason": "骚扰"},
                            headers={"Authorization": "Bearer t-dispatcher"})
    assert put.status == 200, await put.text()

    async def blacklisted() -> bool:
        body = await (await console.get(f"/api/v1/callers/{PHONE}", headers=AGENT)).json()
        return bool(body["tier"] == "blacklisted")

    await until(blacklisted, 8.0)
    harassing = await _case(console, "又打来骂人")
    other = await _case(console, "路灯不亮", phone="13800000000")

    async def queued() -> bool:
        body = await (await console.get("/api/v1/harassment",
                                        headers={"Authorization": "Bearer t-dispatcher"})).json()
        return any(q["case_id"] == harassing["case_id"] for q in body["items"])

    await until(queued, 8.0)
    base = str(console.make_url("/"))
    async with _page(browser, f"{base}?token=t-dispatcher&lang={lang}") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        await page.locator(f"tr.case-row[data-case='{other['case_id']}']").wait_for()
        assert await page.locator(f"tr.case-row[data-case='{harassing['case_id']}']").count() == 0

        # the supervisor's harassment queue lists it; its id opens the case
        await page.locator("button[data-harassment]").click()
        listing = page.locator(".caller-card[data-view=harassment]")
        contact = listing.locator(f"li.harassment-contact[data-case='{harassing['case_id']}']")
        await contact.wait_for()
        await _check_language(page, lang)
        await contact.locator("button").click()
        await page.wait_for_selector(".detail .case-id")
        assert await page.locator(".detail .case-id").text_content() == harassing["case_id"]

        # a search by the number still finds it on the board
        await page.fill("form.search input[name=q]", PHONE)
        await page.press("form.search input[name=q]", "Enter")
        await page.locator(f"tr.case-row[data-case='{harassing['case_id']}']").wait_for()
        await page.locator(f"tr.case-row[data-case='{other['case_id']}']").wait_for(state="detached")
