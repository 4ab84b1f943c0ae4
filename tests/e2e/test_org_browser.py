"""The console of a sub-centre's dispatcher in headless Chromium, on the demo organisation of
Xianyang: its board holds its district's cases only, each shown with the level holding it; it
reports a case up (上报) and the city's dispatcher finds it and may dispatch it down (下派). Its
incidents, call-back tasks and the units it may dispatch to are its subtree's too."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatch.linking.incidents import OpenIncident
from dispatch.missed_calls.policy import AssignCallbackTask, RecordMissedCall
from gateway.cli.loader import catch_up_reference, load_paths
from gateway.settings import HttpSettings, Settings, Token
from tests.conftest import TOKENS
from tests.e2e.test_console_browser import CHROMIUM, browser  # noqa: F401 - fixture
from tests.e2e.test_console_desk_browser import _page

GIS = Path(__file__).resolve().parents[2] / "gis_data"
AGENT = {"Authorization": "Bearer t-agent"}
DISPATCHER = {"Authorization": "Bearer t-dispatcher"}
QINDU, WEICHENG = {"lat": 34.33, "lon": 108.70}, {"lat": 34.3455, "lon": 108.7123}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test tokens plus a dispatcher of the 秦都区 sub-centre and one of the city centre."""
    tokens = {**TOKENS, "t-qindu": Token("dispatcher", "D101", org="SC610402"),
              "t-city": Token("dispatcher", "D100", org="XY12345")}
    return dataclasses.replace(settings, http=HttpSettings(tokens=tokens))


@pytest.fixture
async def organised(client: Any, services: Any) -> Any:
    """The app with the districts and the demo organisation loaded."""
    stats = await load_paths(services, [GIS / "districts.geojson", GIS / "demo_org.geojson"])
    assert not stats.errors
    await catch_up_reference(services)
    return client


async def _routed(client: Any, place: dict[str, float], description: str) -> str:
    """Register a case as an agent and wait until the router gave it to a level."""
    response = await client.post("/api/v1/cases", headers=AGENT, json={
        "category": "complaint", "channel": "phone", "description": description,
        "caller": {"name": "王五", "phone": "13800001234"}, "location": place})
    assert response.status == 201, await response.text()
    case_id = str((await response.json())["case_id"])
    async with asyncio.timeout(15):
        while True:
            found = await (await client.get(f"/api/v1/cases/{case_id}", headers=DISPATCHER)).json()
            listed = await (await client.get("/api/v1/cases?limit=1000", headers=DISPATCHER)).json()
            if found.get("owner") and any(c["case_id"] == case_id and c["owner"] for c in listed["items"]):
                return case_id
            await asyncio.sleep(0.1)


async def test_a_subcentre_sees_its_cases_and_reports_one_up_to_the_city(
        browser: Any, organised: Any) -> None:  # noqa: F811
    mine = await _routed(organised, QINDU, "秦都区小区路灯不亮")
    theirs = await _routed(organised, WEICHENG, "渭城区道路积水")
    base = str(organised.make_url("/"))
    async with _page(browser, f"{base}?token=t-qindu") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        row = page.locator(f"tr.case-row[data-case='{mine}']")
        await row.wait_for()
        assert await page.locator(f"tr.case-row[data-case='{theirs}']").count() == 0
        assert await page.locator("tr.case-row").count() == 1
        assert "秦都区12345分中心" in await row.locator(".owner").inner_text()
        assert await page.locator(".who .org[data-org=SC610402]").count() == 1
        await row.click()
        await page.wait_for_selector(".detail .case-id")
        assert await page.locator(".detail .owner[data-owner=SC610402]").inner_text() == "秦都区12345分中心"
        assert await page.locator("button[data-action=dispatch-down]").count() == 1  # its units are below it
        await page.locator("button[data-action=report-up]").click()
        form = page.locator(".action-form form[data-action=report-up]")
        await form.locator("input[name=reason]").fill("涉及两个区，需市中心协调")
        await form.locator("button[type=submit]").click()
        await page.wait_for_selector(".message .ok")
        # the city holds it now: it leaves this sub-centre's board
        await page.locator(f"tr.case-row[data-case='{mine}']").wait_for(state="detached")
    async with _page(browser, f"{base}?token=t-city#case/{mine}") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        await page.locator(f"tr.case-row[data-case='{theirs}']").wait_for()
        owner = page.locator(".detail .owner[data-owner=XY12345]")
        await owner.wait_for()
        assert await owner.inner_text() == "咸阳市12345市民服务热线中心"
        assert await page.locator("button[data-action=report-up]").count() == 0  # no level above the city
        await page.locator("button[data-action=dispatch-down]").click()
        form = page.locator(".action-form form[data-action=dispatch-down]")
        await form.locator("select[name=node]").select_option("SC610404")
        await form.locator("button[type=submit]").click()
        await page.locator(".detail .owner[data-owner=SC610404]").wait_for()
    history = await (await organised.get(f"/api/v1/audit/cases/{mine}/history",
                                         headers={"Authorization": "Bearer t-auditor"})).json()
    moves = [(e["data"]["move"], e["data"]["owner"], e["who"])
             for e in history["events"] if e["type"] == "CaseMoved"]
    assert moves == [("routed", "SC610402", "policy:org"), ("reported_up", "XY12345", "dispatcher:D101"),
                     ("dispatched_down", "SC610404", "dispatcher:D100")]


async def _tasks(client: Any) -> dict[str, str]:
    """The open call-back tasks by caller, once the read model has both."""
    async with asyncio.timeout(15):
        while True:
            body = await (await client.get("/api/v1/missed-calls?status=open", headers=DISPATCHER)).json()
            found = {t["caller"]: t["task_id"] for t in body["items"]}
            if len(found) == 2:
                return found
            await asyncio.sleep(0.1)


async def test_a_subcentre_console_shows_its_own_incidents_call_backs_and_units(
        browser: Any, organised: Any, services: Any, tmp_path: Path) -> None:  # noqa: F811
    agents = [{"type": "Feature", "geometry": None, "properties": {
        "kind": "agent", "id": agent, "name": name, "org": org}}
        for agent, name, org in (("A-QD", "秦都坐席", "SC610402"), ("A-WC", "渭城坐席", "SC610404"))]
    path = tmp_path / "agents.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": agents}, ensure_ascii=False))
    assert not (await load_paths(services, [path, GIS / "demo_units.geojson"])).errors
    await catch_up_reference(services)
    mine = await _routed(organised, QINDU, "秦都区小区停水")
    theirs = await _routed(organised, WEICHENG, "渭城区小区停水")
    await services.bus.handle(OpenIncident("INC-QD", "610402", "complaint", (mine,)))
    await services.bus.handle(OpenIncident("INC-WC", "610404", "complaint", (theirs,)))
    at = datetime.now(UTC)
    for n, caller in enumerate(("13700000001", "13700000002")):
        await services.bus.handle(RecordMissedCall(caller, f"call-{n}", "12345", at))
    tasks = await _tasks(organised)
    ours, other = tasks["13700000001"], tasks["13700000002"]
    await services.bus.handle(AssignCallbackTask(ours, "A-QD"))  # by hand: pinned to the agent
    await services.bus.handle(AssignCallbackTask(other, "A-WC"))
    units = (await (await organised.get("/api/v1/units", headers=DISPATCHER)).json())["items"]
    weicheng_units = {u["id"] for u in units if u["district"] == "610404"}
    base = str(organised.make_url("/"))
    async with _page(browser, f"{base}?token=t-qindu") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        await page.locator(".incident[data-incident=INC-QD]").wait_for(state="attached")
        await page.locator(".agent-group[data-agent=A-QD]").wait_for(state="attached")
        assert await page.locator(".incident").count() == 1
        assert await page.locator(f".task[data-task='{other}']").count() == 0
        assert await page.locator(".task").count() == 1
        await page.locator(f"tr.case-row[data-case='{mine}']").click()
        await page.wait_for_selector(".detail .case-id")
        await page.locator("button[data-action=dispatch]").click()
        options = page.locator(".action-form select[name=to] option[data-kind=unit]")
        await options.first.wait_for(state="attached")
        offered = await options.evaluate_all("(options) => options.map((o) => o.value)")
        assert "U001" in offered and not weicheng_units & set(offered), offered  # 秦都区's units only
    async with asyncio.timeout(15):  # the reports projection has counted both cases
        while True:
            answer = await organised.get("/api/v1/reports/cases?group=district", headers=DISPATCHER)
            body = await answer.json()
            if {"610402", "610404"} <= {i["group"] for i in body["items"]}:
                break
            await asyncio.sleep(0.1)
    async with _page(browser, f"{base}reports?token=t-qindu") as page:
        await page.locator(".report-table table").wait_for()  # answered, not refused
        assert await page.locator("select[name=group] option").evaluate_all(
            "(options) => options.map((o) => o.value)") == [
                "category", "district", "channel", "unit", "agent", "all"]  # the cases it holds
        await page.locator("select[name=group]").select_option("district")
        await page.wait_for_function("() => [...document.querySelectorAll('.report-table td')]"
                                     ".some((td) => td.textContent === '秦都区')")  # named, not coded
        cells = await page.locator(".report-table td").all_inner_texts()
        keys = await page.locator(".report-table td span.group-name[title]").evaluate_all(
            "(spans) => spans.map((s) => s.title)")
        assert "渭城区" not in cells and keys == ["610402"]  # its district's row only
    async with _page(browser, f"{base}?token=t-city") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        await page.locator(".incident[data-incident=INC-WC]").wait_for(state="attached")
        await page.locator(f".task[data-task='{other}']").wait_for(state="attached")
        assert await page.locator(".incident").count() == 2


async def test_a_unit_sees_the_level_holding_its_case_by_name(browser: Any, organised: Any) -> None:  # noqa: F811
    """A unit's console never loaded the organisation: the level holding its case showed as an id
    (XY12345), where every other console shows 咸阳市12345市民服务热线中心."""
    case_id = await _routed(organised, QINDU, "秦都区小区路灯不亮")
    state = await (await organised.get(f"/api/v1/cases/{case_id}", headers=DISPATCHER)).json()
    sent = await organised.post(f"/api/v1/cases/{case_id}/dispatch", headers=DISPATCHER,
                                json={"to": "U001", "expected_version": state["version"]})
    assert sent.status == 200, await sent.text()
    owner = (await sent.json())["owner"]
    tree = await (await organised.get("/api/v1/org", headers=DISPATCHER)).json()
    names = {n["id"]: n["name"] for n in tree["nodes"]}
    async with _page(browser, f"{organised.make_url('/')}?token=t-unit") as page:
        row = page.locator(f"tr.case-row[data-case='{case_id}']")
        await row.wait_for()
        assert await row.locator(".owner").inner_text() == names[owner]
        assert await page.locator("button[data-action=report-up]").count() == 0
