"""The console shows an erased person's fields in the reader's language (已删除 / erased), never
the server's `[erased]` marker, in the board and the case detail."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import auth
from tests.e2e.test_console_browser import (  # noqa: F401  (fixtures)
    CHROMIUM,
    _page,
    _post_through_a_channel,
    _shot,
    browser,
    console,
)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")]


@pytest.mark.parametrize(("lang", "word"), [("zh-CN", "已删除"), ("en", "erased")])
async def test_an_erased_callers_case_reads_erased_in_the_console(
    browser: Any, console: Any, lang: str, word: str  # noqa: F811
) -> None:
    await _post_through_a_channel(console)

    erased = await console.post("/api/v1/subjects/13700001111/erase", headers=auth("t-admin"),
                                json={"reason": "公民申请删除个人信息", "legal_basis": "request"})
    assert erased.status == 200, await erased.text()
    async with _page(browser, str(console.make_url("/")) + f"?token=t-dispatcher&lang={lang}") as page:
        row = page.locator("tr.case-row").first
        await row.wait_for()
        await row.click()
        await page.wait_for_selector(".detail .case-id")
        detail = await page.locator(".detail").text_content() or ""
        shown = (await row.text_content() or "") + detail
        assert word in detail and "[erased]" not in shown and "小区路灯全部不亮" not in shown
        await _shot(page, f"erased-{lang}")
