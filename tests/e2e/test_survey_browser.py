"""The satisfaction survey's loop as an agent sees it in headless Chromium, in both languages: a
case completed, the citizen's SMS reply "5" arrives, and the case shows the call-back with its score,
archived, with nothing left to call back."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.settings import Settings, TwilioSettings
from tests.e2e.test_console_browser import CHROMIUM, _page, _shot, browser, console  # noqa: F401 - fixtures
from tests.integration.test_sms import TOKEN, post_sms
from tests.integration.test_sms_survey import _completed_case

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Twilio configured, so that the reply comes in through the signed webhook."""
    return dataclasses.replace(settings, twilio=TwilioSettings(TOKEN))


@pytest.mark.parametrize(("lang", "shown"), [("zh-CN", ("满意", "工单 5 分", "已归档")),
                                             ("en", ("Satisfied", "case 5/5", "Archived"))])
async def test_a_survey_reply_closes_the_loop_on_the_agents_screen(
        browser: Any, console: Any, lang: str, shown: tuple[str, str, str]) -> None:  # noqa: F811
    sid = "SMsb" + lang.replace("-", "")
    case_id = await _completed_case(console, sid)
    url = str(console.make_url("/")) + f"?token=t-agent&lang={lang}#case/{case_id}"
    async with _page(browser, url) as page:
        await page.locator(f".detail .case-id:text-is('{case_id}')").wait_for()
        assert await page.locator(".detail .status.s-completed").count() == 1
        assert await page.locator("button[data-action=callback]").count() == 1
        assert (await post_sms(console, sid + "reply", "5")).status == 200
        outcome, score, state = shown
        callback = page.locator(".detail dl.facts dd", has_text=score)
        await callback.wait_for(timeout=15_000)  # live: no reload
        assert outcome in (await callback.text_content() or "")
        # the call-back brings the archive forward: the loop is closed, nothing left to call back
        await page.locator(".detail .status.s-archived").wait_for()
        assert (await page.locator(".detail .status").text_content() or "").strip() == state
        assert await page.locator("button[data-action=callback]").count() == 0
        await _shot(page, f"survey-{lang}")
