"""The console's knowledge page (`GET /knowledge`) in headless Chromium.

Pinyin initials find 停电, and the article opens.
"""

# ruff: noqa: E501 (Chinese fixtures: each character counts two columns)

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dispatch.knowledge.articles import ArticleContent, ImportArticle
from tests.e2e.test_console_browser import CHROMIUM, _page, _shot, browser  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine"),
]

OUTAGE = ArticleContent("faq", "如何查询计划停电信息", "计划停电会提前7天在网上国网App公告。\n临时检修提前24小时公告。",
                        "计划停电提前7天在网上国网App公告。", ("consultation", "power_fault"))


async def test_searching_by_pinyin_initials_finds_and_opens_the_article(browser: Any, client: Any,  # noqa: F811
                                                                         services: Any) -> None:
    await services.bus.handle(ImportArticle(article_id="KBP001", actor="loader", content=OUTAGE))
    await services.bus.handle(ImportArticle(article_id="KBC031", actor="loader", content=ArticleContent(
        "faq", "闻到燃气味怎么办", "立即关闭燃气总阀，打开门窗通风。", "关阀开窗。", ("consultation",))))
    for _ in range(200):  # the projection runs in the background: wait until both are published
        if await services.pool.fetchval("SELECT count(*) FROM knowledge_articles WHERE status = 'published'") == 2:
            break
        await asyncio.sleep(0.05)
    async with _page(browser, str(client.make_url("/knowledge")) + "?token=t-agent") as page:
        await page.wait_for_selector("input[name=q]")
        assert await page.evaluate("sessionStorage.getItem('intake.token')") == "t-agent"
        await page.fill("input[name=q]", "td")
        await page.get_by_role("button", name="搜索").click()
        hit = page.locator("button[data-article=KBP001]")
        await hit.wait_for()
        assert await page.locator("button[data-article=KBC031]").count() == 0
        await hit.click()
        await page.wait_for_selector("article.reader h2")
        assert await page.locator("article.reader h2").text_content() == OUTAGE.title
        assert "已发布" in (await page.locator("article.reader p.muted").first.text_content() or "")
        await _shot(page, "knowledge-search")


async def test_a_refused_search_is_told_in_the_readers_words(browser: Any, client: Any) -> None:  # noqa: F811
    """A search the server refuses (a channel token may not read articles: 403) is named from the
    catalogue by its code, the server's English kept in the tooltip."""
    async with _page(browser, str(client.make_url("/knowledge")) + "?token=t-channel") as page:
        await page.fill("input[name=q]", "td")
        await page.get_by_role("button", name="搜索").click()
        status = page.locator("p.status", has_text="搜索失败")
        await status.wait_for()
        assert (await status.text_content() or "") == "搜索失败：本角色无权执行此操作。"
        assert await status.get_attribute("title")
