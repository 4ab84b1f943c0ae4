"""The reports page and the map's heat map in headless Chromium: a dispatcher picks a report,
sees its table and bar chart in Chinese (English on request, no key missing), exports it as
CSV and XLSX with the same rows, and shades the map by the cases of a period and category."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from tests.e2e.test_console_browser import CHROMIUM, _page, _shot, browser, console  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]
AGENT = {"Authorization": "Bearer t-agent"}
DISPATCHER = {"Authorization": "Bearer t-dispatcher"}


async def two_cases(client: Any) -> str:
    """Two complaints on the map today (Beijing time), and the report showing them; today's date."""
    for phone in ("13700001111", "13700002222"):
        response = await client.post("/api/v1/cases", headers=AGENT, json={
            "category": "complaint", "channel": "phone", "description": "路灯不亮",
            "caller": {"name": "赵六", "phone": phone}, "location": {"lat": 34.3455, "lon": 108.7123}})
        assert response.status == 201, await response.text()
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    for _ in range(100):  # the worker's projections catch up
        report = await (await client.get(f"/api/v1/reports/cases?to={today}", headers=DISPATCHER)).json()
        heat = await (await client.get(f"/api/v1/heatmap?to={today}", headers=DISPATCHER)).json()
        if any(i["group"] == "complaint" and i["cases"] == 2 for i in report["items"]) and heat["items"]:
            return today
        await asyncio.sleep(0.2)
    raise AssertionError(f"the reports never showed the cases: {report} {heat}")


async def test_a_dispatcher_reads_charts_and_exports_a_report(
    browser: Any, console: Any, tmp_path: Path  # noqa: F811
) -> None:
    today = await two_cases(console)
    base = str(console.make_url("/"))
    async with _page(browser, base + "?token=t-dispatcher") as page:
        await page.locator("a.reports-link").click()
        await page.wait_for_url("**/reports")
        table = page.locator(".report-table table")
        await table.wait_for()
        assert await page.locator("select[name=report]").input_value() == "cases"
        heads = await page.locator(".report-table th").all_inner_texts()
        assert heads[:3] == ["日期", "类别", "工单量"]
        row = page.locator(".report-table tbody tr", has_text="投诉")
        assert (await row.locator("td").all_inner_texts())[:3] == [today, "投诉", "2"]
        assert await page.locator(".report-chart rect.bar").count() >= 1
        await page.locator("select[name=by]").select_option("month")
        await page.locator(".report-table td", has_text=today[:7]).first.wait_for()
        assert await page.locator(".report-chart rect.bar[data-value='2']").count() == 1
        await _shot(page, "reports")

        async with page.expect_download() as got:
            await page.locator("a[data-export=csv]").click()
        download = await got.value
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        compact = today.replace("-", "")
        assert saved.name == f"cases-category-month-{compact[:6]}01-{compact}.csv"
        rows = list(csv.reader(io.StringIO(saved.read_text("utf-8-sig"))))
        assert rows[0][:4] == ["月份", "类别", "名称", "工单量"]
        assert [r[:4] for r in rows[1:]] == [[today[:7], "complaint", "投诉", "2"]]

        async with page.expect_download() as got:
            await page.locator("a[data-export=xlsx]").click()
        download = await got.value
        await download.save_as(tmp_path / "cases.xlsx")
        sheet = load_workbook(tmp_path / "cases.xlsx").active
        cells = [list(r) for r in sheet.iter_rows(values_only=True)]  # type: ignore[union-attr]
        assert cells[0][:4] == ["月份", "类别", "名称", "工单量"]
        assert cells[1][:4] == [today[:7], "complaint", "投诉", 2]

        await page.fill("input[name=to]", "2020-01-01")
        await page.locator("input[name=to]").dispatch_event("change")
        await page.locator(".status .err[data-code=bad_range]").wait_for()
        assert await page.evaluate("window.intakeI18n.missing.size") == 0

    async with _page(browser, base + "reports?lang=en&token=t-auditor") as page:
        await page.locator(".report-table table").wait_for()
        assert (await page.locator(".report-table th").all_inner_texts())[:3] == ["Day", "Category", "Cases"]
        assert await page.evaluate("window.intakeI18n.missing.size") == 0


async def test_the_map_shades_cases_by_category_over_a_period(browser: Any, console: Any) -> None:  # noqa: F811
    await two_cases(console)
    base = str(console.make_url("/"))
    async with _page(browser, base + "?token=t-dispatcher&lang=zh-CN") as page:
        await page.wait_for_selector("path.district")
        await page.locator("button.heat-toggle").click()
        cell = page.locator("rect.heat-cell")
        await cell.wait_for()
        assert await cell.count() == 1 and await cell.get_attribute("data-count") == "2"
        assert "2 件工单" in await page.locator(".heat-note").inner_text()
        await page.locator("select[name=heat_category]").select_option("praise")
        await cell.first.wait_for(state="detached")  # no complaint is praise
        await page.locator("select[name=heat_category]").select_option("complaint")
        await cell.wait_for()
        await _shot(page, "heatmap")
    async with _page(browser, base + "?token=t-agent") as page:
        await page.wait_for_selector("path.district")
        assert await page.locator("button.heat-toggle").count() == 0
        assert await page.locator("a.reports-link").count() == 0
