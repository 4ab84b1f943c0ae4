"""The dispatcher console in headless Chromium: sign-in, district map, a case posted through a
channel appearing live without reload, the case detail and its timeline; masking by role.

Screenshots are kept in `test-artifacts/` for people to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.loader import catch_up_reference, load_paths

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

DISPATCHER = {"Authorization": "Bearer t-dispatcher"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium; "
                                                "`python -m tests.browser_setup` tries it as root)"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    async with playwright_api.async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def console(client: Any, services: Any) -> Any:
    """The app with the real district polygons loaded."""
    stats = await load_paths(services, [ROOT / "gis_data" / "districts.geojson"])
    assert not stats.errors
    await catch_up_reference(services)
    # the district index is rebuilt in the background: a case registered before it is there
    # gets no district, so wait for it (a point in 渭城区)
    for _ in range(600):
        if services.districts is not None and services.districts.locate(34.3455, 108.7123) is not None:
            return client
        await asyncio.sleep(0.05)
    raise AssertionError("the district index was not ready within 30 s")


@contextlib.asynccontextmanager
async def _page(browser: Any, url: str) -> AsyncIterator[Any]:
    """A fresh browser context on `url`, closed (with its live stream) whatever happens."""
    context = await browser.new_context(viewport={"width": 1600, "height": 960}, locale="zh-CN")
    try:
        page = await context.new_page()
        page.set_default_timeout(10_000)
        await page.goto(url)
        yield page
    finally:
        await context.close()


async def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"))


async def _post_through_a_channel(client: Any) -> None:
    """A citizen's web report (Open311), or an agent's registration where that channel is absent."""
    form = {"api_key": "t-channel", "service_code": "complaint", "lat": "34.3455", "long": "108.7123",
            "description": "小区路灯全部不亮，晚上很危险", "first_name": "赵", "last_name": "六",
            "phone": "13700001111", "address_string": "咸阳市秦都区渭阳西路"}
    response = await client.post("/open311/v2/requests.json", data=form)
    if response.status == 404:
        response = await client.post("/api/v1/cases", headers={"Authorization": "Bearer t-agent"}, json={
            "category": "complaint", "channel": "phone", "description": form["description"],
            "caller": {"name": "赵六", "phone": form["phone"]},
            "location": {"lat": 34.3455, "lon": 108.7123}})
    assert response.status in (200, 201), await response.text()


async def test_console_signs_in_shows_the_map_and_a_new_case_live(browser: Any, console: Any) -> None:
    base = str(console.make_url("/"))
    async with _page(browser, base + "?token=t-dispatcher") as page:
        await _live_case_flow(page, console)


async def _live_case_flow(page: Any, console: Any) -> None:
    await page.wait_for_selector(".conn[data-state=live]")
    assert "token" not in page.url
    assert await page.evaluate("sessionStorage.getItem('intake.token')") == "t-dispatcher"
    districts = await page.locator("path.district").count()
    assert districts >= 10
    assert "秦都区" in await page.locator("text.district-label").all_text_contents()
    # The tiles are fetched once the stream connects, so they may come after the "live" badge.
    await page.locator("[data-kpi=answer_rate]").wait_for()
    assert await page.locator("[data-kpi=answer_rate]").count() == 1
    await page.evaluate("window.__notReloaded = true")
    await _shot(page, "1-empty")

    await _post_through_a_channel(console)
    posted = time.monotonic()
    row = page.locator("tr.case-row", has_text="小区路灯全部不亮")
    await row.wait_for(timeout=5_000)
    latency = time.monotonic() - posted
    assert latency < 1.0, f"the case showed {latency:.2f} s after it was committed"
    assert await page.evaluate("window.__notReloaded === true")
    case_id = await row.get_attribute("data-case")
    assert await page.locator(f"circle.case-dot[data-case='{case_id}']").count() == 1
    await _shot(page, "2-live-case")

    await row.click()
    await page.wait_for_selector(".detail .case-id")
    assert await page.locator(".detail .case-id").text_content() == case_id
    assert await page.locator("button[data-action=dispatch]").count() == 1
    await page.locator("button[data-timeline]").click()
    await page.wait_for_selector("li.event[data-type=CaseRegistered]")
    assert "哈希链完整" in (await page.locator(".verify").text_content() or "")
    await _shot(page, "3-timeline")


async def test_without_a_token_the_console_asks_for_one(browser: Any, console: Any) -> None:
    await _post_through_a_channel(console)
    async with _page(browser, str(console.make_url("/"))) as page:
        await page.wait_for_selector("form input[name=token]")
        await page.fill("input[name=token]", "t-auditor")
        await page.click("button[type=submit]")
        await page.wait_for_selector(".conn[data-state=live]")
        assert await page.locator(".who b").get_attribute("data-role") == "auditor"
        assert await page.locator(".who b").text_content() == "审计员"
        # Actions live in the case detail: open one, so their absence means the role hides them.
        await page.locator("tr.case-row").first.click()
        await page.wait_for_selector(".detail .case-id")
        assert await page.locator("button.action[data-action]").count() == 0


async def test_a_unit_sees_masked_callers_and_only_its_actions(browser: Any, console: Any) -> None:
    await _post_through_a_channel(console)
    async with _page(browser, str(console.make_url("/")) + "?token=t-unit") as page:
        row = page.locator("tr.case-row").first
        await row.wait_for()
        text = await row.text_content() or ""
        assert "13700001111" not in text and "1111" in text
        await row.click()
        await page.wait_for_selector(".detail .case-id")
        # not assigned to this unit: nothing it may do, and it is told so
        assert await page.locator("button.action[data-action]").count() == 0
        await page.locator(".detail .no-actions").wait_for()
        case_id = await row.get_attribute("data-case")
        body = await (await console.get(f"/api/v1/cases/{case_id}", headers=DISPATCHER)).json()
        sent = await console.post(f"/api/v1/cases/{case_id}/dispatch", headers=DISPATCHER,
                                  json={"to": "U001", "expected_version": body["version"]})
        assert sent.status == 200, await sent.text()
        await page.locator("button[data-action=confirm]").wait_for()
        assert await page.locator("button[data-action=dispatch]").count() == 0
        buttons = await page.locator("button.action[data-action]").all()
        assert {await b.get_attribute("data-action") for b in buttons} == {"confirm", "reject", "complete"}
        await _shot(page, "4-unit")


async def test_the_storm_view_shows_cases_missed_calls_and_kpis(
        browser: Any, console: Any, services: Any) -> None:
    from gateway.cli.demo import Storm, demo_files

    assert not (await load_paths(services, demo_files())).errors
    await catch_up_reference(services)

    tokens = {"channel": "t-channel", "dispatcher": "t-dispatcher", "admin": "t-admin"}
    storm = Storm(str(console.make_url("")).rstrip("/"), tokens, None, pace=0.05, waves=5)
    async with _page(browser, str(console.make_url("/")) + "?token=t-dispatcher") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        await storm.play()
        # locator waits, not wait_for_function: the console's CSP forbids the eval that needs
        await page.locator("circle.case-dot").nth(4).wait_for(state="attached")
        await page.wait_for_selector(".agent-group .task")
        # reassigning a call-back is an in-page form, never a browser prompt
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        group = page.locator(".agent-group").first
        other = "A002" if await group.get_attribute("data-agent") != "A002" else "A001"
        task = group.locator(".task").first
        task_id = await task.get_attribute("data-task")
        await task.locator(".reassign button").click()
        await page.fill(f".task[data-task='{task_id}'] form.inline input[name=agent_id]", other)
        await page.locator(f".task[data-task='{task_id}'] form.inline button[type=submit]").click()
        await page.locator(f".agent-group[data-agent={other}] .task[data-task='{task_id}']").wait_for()
        assert dialogs == []
        await page.locator("tr.case-row").first.click()
        await page.wait_for_selector("ul.providers li button.link")
        assert await page.locator("rect.provider-dot").count() >= 1
        await page.locator("[data-kpi=answer_rate] .tile-value", has_text="%").wait_for()
        await _shot(page, "5-storm")
