"""A legal hold in the console (headless Chromium): a dispatcher sets one from the case detail,
which then shows it and offers no second hold; an admin's erasure of the caller is refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_console_browser import CHROMIUM, browser, console  # noqa: F401 - fixtures
from tests.e2e.test_console_desk_browser import _missing_keys, _page, _register

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]


async def test_a_dispatcher_sets_a_legal_hold_from_the_detail(browser: Any, console: Any) -> None:  # noqa: F811
    case_id = (await _register(console, "物业乱收费，已起诉"))["case_id"]
    async with _page(browser, str(console.make_url("/")) + f"?token=t-dispatcher#case/{case_id}") as page:
        await page.locator("button[data-action=legal-hold]").click()
        await page.fill(".action-form input[name=reason]", "业主已起诉，法院调取证据")
        await page.locator(".action-form button[type=submit]").click()
        await page.locator(".message .ok", has_text="法律保留").wait_for()
        await page.locator(".detail dd", has_text="业主已起诉，法院调取证据").wait_for()
        assert await page.locator("button[data-action=legal-hold]").count() == 0
        assert await _missing_keys(page) == []
    case = await (await console.get(f"/api/v1/cases/{case_id}",
                                    headers={"Authorization": "Bearer t-dispatcher"})).json()
    assert case["legal_hold"]["by"] == "dispatcher:D001"
