"""The case timeline as a person reads it, in headless Chromium: every event and every value of
the state box named from the catalogue (no `CaseLocated`, `unregistered_device`, `given`,
`false` or `fault.scope` left in a Chinese page), in Chinese and in English; and the board at 1366x768.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.test_console_browser import CHROMIUM, browser, console  # noqa: F401 - fixtures
from tests.e2e.test_console_desk_browser import AGENT, _missing_keys, _page

CHANNEL = {"Authorization": "Bearer t-channel"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]


async def _alarm_case_with_a_reminder_and_a_place(client: Any) -> str:
    """An alarm from an unregistered device, its place corrected and a reminder set by an agent."""
    response = await client.post("/channels/alarm/events", headers=CHANNEL, json={
        "event_id": "timeline-words-1", "account": "ZZ0001", "code": "MA",
        "lat": 34.3455, "lon": 108.7123, "at": datetime.now(UTC).isoformat()})
    assert response.status in (200, 201, 202), await response.text()
    case_id: str = (await response.json())["case_id"]
    state = await (await client.get(f"/api/v1/cases/{case_id}", headers=AGENT)).json()
    located = await client.post(f"/api/v1/cases/{case_id}/location", headers=AGENT,
                                json={"expected_version": state["version"], "lat": 34.3456, "lon": 108.7124})
    assert located.status == 200, await located.text()
    state = await located.json()
    reminded = await client.post(f"/api/v1/cases/{case_id}/reminder", headers=AGENT, json={
        "expected_version": state["version"], "note": "回电",
        "remind_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()})
    assert reminded.status == 200, await reminded.text()
    return case_id


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_timeline_events_and_state_values_are_named_not_codes(
        browser: Any, console: Any, lang: str) -> None:  # noqa: F811
    case_id = await _alarm_case_with_a_reminder_and_a_place(console)
    url = str(console.make_url("/")) + f"?token=t-dispatcher&lang={lang}#timeline/{case_id}"
    async with _page(browser, url) as page:
        await page.wait_for_selector("li.event[data-type=ReminderSet]")
        types = await page.locator(".event-type").all_inner_texts()
        state = await page.locator(".state-box").inner_text()
        actors = await page.locator(".event-meta .actor").all_inner_texts()
        assert await _missing_keys(page) == []
        # who recorded each event, by name: no `policy:places` or `agent:A01` for a person to decode
        assert actors and not [who for who in actors if ":" in who], actors
        codes = {"CaseLocated", "ReminderSet", "unregistered_device", "device_account", "given",
                 "false", "true"}
        shown = set(re.findall(r"[A-Za-z_]+", " ".join(types) + "\n" + state))
        assert not codes & shown, state
        if lang == "zh-CN":
            assert not [name for name in types if re.search(r"[A-Za-z]", name)], types
            assert "未登记设备" in state and "坐席更正" in state and "设备账号" in state
            assert {"渠道 test-channel", "坐席 A001"} <= {" ".join(who.split()) for who in actors}, actors
        else:
            assert "Unregistered device" in state and "Reminder set" in types


async def test_the_priority_badge_stays_whole_on_a_1366_screen(browser: Any, console: Any) -> None:  # noqa: F811
    """At 1366x768 the board's column is narrow: the badge "P1" broke into "P" over "1"."""
    response = await console.post("/api/v1/cases", headers=AGENT, json={
        "category": "complaint", "priority": 1, "channel": "phone", "description": "小区门口积水严重",
        "caller": {"name": "王五", "phone": "13800001234"}, "location": {"lat": 34.3455, "lon": 108.7123}})
    assert response.status == 201, await response.text()
    url = str(console.make_url("/")) + "?token=t-dispatcher"
    async with _page(browser, url, width=1366, height=768) as page:
        badge = page.locator("tr.case-row .prio").first
        await badge.wait_for()
        box = await badge.bounding_box()
        line = await page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('tr.case-row .prio')).lineHeight) || 16")
        assert box is not None and box["height"] <= line * 1.5 + 2, (box, line)


async def test_a_caller_s_number_shows_whole_on_a_1366_screen(browser: Any, console: Any) -> None:  # noqa: F811
    """At 1366x768 the board's caller column cut numbers ("0298888…"): an agent calls back what
    the board shows, so every digit of the number must be on screen."""
    for phone in ("02988886666", "+447911123456"):
        response = await console.post("/api/v1/cases", headers=AGENT, json={
            "category": "complaint", "priority": 1, "channel": "phone", "description": "小区门口积水严重",
            "caller": {"name": "欧阳娜娜", "phone": phone}, "location": {"lat": 34.3455, "lon": 108.7123}})
        assert response.status == 201, await response.text()
    url = str(console.make_url("/")) + "?token=t-dispatcher"
    async with _page(browser, url, width=1366, height=768) as page:
        await page.locator("tr.case-row td.caller .sub").nth(1).wait_for()
        cut = await page.evaluate("""[...document.querySelectorAll('tr.case-row td.caller')]
            .filter((td) => td.scrollWidth > td.clientWidth + 1
                         || [...td.children].some((c) => c.scrollWidth > c.clientWidth + 1))
            .map((td) => td.innerText)""")
        assert cut == [], cut


@pytest.mark.parametrize(("token", "panels"), [
    ("t-unit", set()), ("t-auditor", {"missed"}), ("t-agent", {"missed", "providers"}),
    ("t-dispatcher", {"missed", "providers"})])
async def test_a_console_asks_only_for_what_its_role_may_read(
        browser: Any, console: Any, token: str, panels: set[str]) -> None:  # noqa: F811
    """A unit's and an auditor's console asked for the missed calls, the nearest providers and a
    case's recordings, and the browser showed their 403s; each role now reads what it may."""
    response = await console.post("/api/v1/cases", headers=AGENT, json={
        "category": "complaint", "priority": 2, "channel": "phone", "description": "小区门口积水严重",
        "caller": {"name": "王五", "phone": "13800001234"}, "location": {"lat": 34.3455, "lon": 108.7123}})
    assert response.status == 201, await response.text()
    case_id = (await response.json())["case_id"]
    refused: list[str] = []
    url = str(console.make_url("/")) + f"?token={token}"
    async with _page(browser, url) as page:
        page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        await page.locator(f"tr.case-row[data-case={case_id}]").click()
        await page.locator(".detail .actions").wait_for()
        await asyncio.sleep(1.5)  # the panels and the case's reads answer (a live stream: never idle)
        panels_at = {"missed": "section.panel.missed", "providers": "ul.providers"}
        shown = {name for name, selector in panels_at.items() if await page.locator(selector).count()}
    assert refused == [], refused
    assert shown == panels
