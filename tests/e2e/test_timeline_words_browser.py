"""The case timeline as a person reads it, in headless Chromium: every event and every value of
the state box named from the catalogue (no `CaseLocated`, `unregistered_device`, `given`,
`false` or `fault.scope` left in a Chinese page), in Chinese and in English.
"""

from __future__ import annotations

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
        assert await _missing_keys(page) == []
        codes = {"CaseLocated", "ReminderSet", "unregistered_device", "device_account", "given",
                 "false", "true"}
        shown = set(re.findall(r"[A-Za-z_]+", " ".join(types) + "\n" + state))
        assert not codes & shown, state
        if lang == "zh-CN":
            assert not [name for name in types if re.search(r"[A-Za-z]", name)], types
            assert "未登记设备" in state and "坐席更正" in state and "设备账号" in state
        else:
            assert "Unregistered device" in state and "Reminder set" in types
