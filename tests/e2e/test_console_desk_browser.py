"""The console as an agent or dispatcher uses it, in headless Chromium: Chinese by default and
English on request with no string missing from either catalogue, times in Beijing time, urgent
cases first with an alert, actions that follow the case's state, feedback that stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from gateway.cli.loader import catch_up_reference, load_paths
from tests.e2e.test_console_browser import CHROMIUM, ROOT, _shot, browser, console  # noqa: F401 - fixtures

BEIJING = timezone(timedelta(hours=8))
GIS = ROOT / "gis_data"
AGENT = {"Authorization": "Bearer t-agent"}
DISPATCHER = {"Authorization": "Bearer t-dispatcher"}
UNIT = {"Authorization": "Bearer t-unit"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]

# Text the page shows outside identifiers, raw payloads and what citizens wrote.
VISIBLE_TEXT = """() => {
  const skip = '.mono, pre, details, script, style, noscript, .description, .desc, [hidden]';
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const el = walk.currentNode.parentElement;
    if (el && !el.closest(skip)) out.push(walk.currentNode.textContent);
  }
  for (const el of document.querySelectorAll('[title], [placeholder], [aria-label]')) {
    if (el.closest(skip)) continue;
    for (const name of ['title', 'placeholder', 'aria-label']) {
      if (el.getAttribute(name)) out.push(el.getAttribute(name));
    }
  }
  return out.join('\\n');
}"""


@contextlib.asynccontextmanager
async def _page(driver: Any, url: str, *, width: int = 1600, height: int = 960,
                zone: str = "Asia/Shanghai") -> AsyncIterator[Any]:
    """A fresh context on `url`; any browser dialog (prompt, alert, confirm) fails the test."""
    context = await driver.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                        timezone_id=zone)
    dialogs: list[str] = []
    try:
        page = await context.new_page()
        page.set_default_timeout(10_000)

        async def refuse(dialog: Any) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", refuse)
        await page.goto(url)
        yield page
        assert dialogs == [], f"the page opened browser dialogs: {dialogs}"
    finally:
        await context.close()


async def _register(client: Any, description: str, *, category: str = "complaint",
                    priority: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"category": category, "channel": "phone", "description": description,
                            "caller": {"name": "王五", "phone": "13800001234"},
                            "location": {"lat": 34.3455, "lon": 108.7123}}
    if priority is not None:
        body["priority"] = priority
    response = await client.post("/api/v1/cases", headers=AGENT, json=body)
    assert response.status == 201, await response.text()
    found: dict[str, Any] = await response.json()
    return found


async def _load(services: Any, *names: str) -> None:
    stats = await load_paths(services, [GIS / name for name in names])
    assert not stats.errors, stats.errors
    await catch_up_reference(services)


async def _missing_keys(page: Any) -> list[str]:
    return list(await page.evaluate("[...window.intakeI18n.missing]"))


def _english_words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]{2,}", text)) - {"intake", "English"}  # a language's own name


def _raw_keys(text: str) -> set[str]:
    return set(re.findall(r"\b[a-z_]{2,}\.[a-z_]{2,}(?:\.[a-z_]+)*\b", text))


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_every_view_speaks_one_language_from_its_catalogue(
        browser: Any, console: Any, lang: str) -> None:  # noqa: F811
    case = await _register(console, "小区路灯全部不亮，晚上很危险")
    other = await _register(console, "咨询电费缴纳方式", category="consultation", priority=1)
    base = str(console.make_url("/"))
    async with _page(browser, f"{base}?token=t-dispatcher&lang={lang}") as page:
        await page.wait_for_selector(".conn[data-state=live]")
        assert "lang=" not in page.url
        assert await page.get_attribute("html", "lang") == lang
        await page.locator(f"tr.case-row[data-case='{case['case_id']}']").click()
        await page.wait_for_selector(".detail .case-id")
        await page.locator("button[data-action=dispatch]").click()
        await page.locator(".action-form form").wait_for()
        await page.locator("[data-kpi=answer_rate] .tile-value").wait_for()
        await page.locator("button[data-timeline]").click()
        await page.wait_for_selector("li.event[data-type=CaseRegistered]")
        text = await page.evaluate(VISIBLE_TEXT)
        assert await _missing_keys(page) == []
        assert not _raw_keys(text), _raw_keys(text)
        if lang == "zh-CN":
            assert not _english_words(text), _english_words(text)
            assert "工单" in text and "派单" in text and "哈希链完整" in text and "投诉" in text
        else:
            assert "Case board" in text and "Dispatch" in text and "chain intact" in text
        await _shot(page, f"6-{lang}")

        # the choice is remembered; the switch changes it
        await page.reload()
        await page.locator(f".detail .case-id:text-is('{case['case_id']}')").wait_for()
        await page.locator(f"tr.case-row[data-case='{other['case_id']}']").wait_for()
        assert await page.get_attribute("html", "lang") == lang
        switch_to = "en" if lang == "zh-CN" else "zh-CN"
        await page.locator("header select.lang").select_option(switch_to)
        await page.locator(f"html[lang='{switch_to}'] .board h2").wait_for()
        heading = await page.locator(".board h2").text_content()
        assert heading == ("Case board" if switch_to == "en" else "工单")
        assert await _missing_keys(page) == []


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_the_citizen_form_speaks_the_language_and_files_a_case(
        browser: Any, console: Any, lang: str) -> None:  # noqa: F811
    url = str(console.make_url("/citizen/")) + f"?api_key=t-channel&lang={lang}"
    async with _page(browser, url) as page:
        await page.locator("#service_code option[value=complaint]").wait_for(state="attached")
        words = {"zh-CN": ("网上受理", "投诉", "类别 *", "已受理"),
                 "en": ("Report a problem", "Complaint", "Category *", "Accepted")}
        title, complaint, label, accepted = words[lang]
        assert await page.locator("h1").text_content() == title
        assert await page.locator("#service_code option[value=complaint]").text_content() == complaint
        assert await page.locator("label[for=service_code]").text_content() == label
        await page.select_option("#service_code", "power_fault")
        await page.locator("input[name='attribute[account_number]']").wait_for()
        text = await page.evaluate(VISIBLE_TEXT)
        if lang == "zh-CN":
            assert not _english_words(text), _english_words(text)
            assert "用电户号 *" in text and "停电" in text
        await page.select_option("#service_code", "complaint")
        await page.fill("#description", "小区门口的路灯坏了三天")
        await page.fill("#phone", "13900002222")
        await page.locator("button[type=submit]").click()
        # no place given: the form says so before sending
        await page.locator("#result.err").wait_for()
        await page.fill("#address_string", "咸阳市秦都区人民路 1 号")
        await page.locator("button[type=submit]").click()
        await page.locator("#result.ok", has_text=accepted).wait_for()
        assert await _missing_keys(page) == []


async def test_times_are_beijing_time_and_a_typed_as_of_is_too(browser: Any, console: Any) -> None:  # noqa: F811
    case = await _register(console, "楼道灯不亮")
    accepted = datetime.fromisoformat(case["accepted_at"])
    # the browser itself runs on UTC: Beijing time must come from the console, not the machine
    async with _page(browser, str(console.make_url("/")) + f"?token=t-auditor#case/{case['case_id']}",
                     zone="UTC") as page:
        await page.wait_for_selector(".detail .case-id")
        shown = accepted.astimezone(BEIJING).strftime("%m-%d %H:%M:%S")
        assert shown in (await page.locator(".detail dl.facts").text_content() or "")
        await page.locator("button[data-timeline]").click()
        await page.wait_for_selector("li.event[data-type=CaseRegistered]")
        assert await page.locator(".state-box td.mono").count() > 0

        # a bad as-of says why and keeps the timeline
        await page.fill("input.as-of", "昨天下午")
        await page.press("input.as-of", "Enter")
        await page.locator(".timeline-error").wait_for()
        assert "时点格式不正确" in (await page.locator(".timeline-error").text_content() or "")
        assert await page.locator("li.event[data-type=CaseRegistered]").count() == 1

        # one second before registration, typed in Beijing time without a zone: no case yet
        before = (accepted - timedelta(seconds=1)).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        await page.fill("input.as-of", before)
        await page.press("input.as-of", "Enter")
        await page.locator(".state-box", has_text="此刻工单尚不存在").wait_for()
        value = await page.locator("input.as-of").input_value()
        assert value == before.replace(" ", "T") + "+08:00"

        # (read as UTC, the time above would be eight hours later, after registration)
        # one second after registration was recorded (as_of reads the log: its recorded_at, which
        # a loaded machine may put well after accepted_at) the case exists
        history = await (await console.get(f"/api/v1/audit/cases/{case['case_id']}/history",
                                           headers={"Authorization": "Bearer t-auditor"})).json()
        recorded = datetime.fromisoformat(history["events"][0]["recorded_at"])
        later = (recorded + timedelta(seconds=1)).astimezone(BEIJING).strftime("%Y-%m-%dT%H:%M:%S")
        await page.fill("input.as-of", later)
        await page.press("input.as-of", "Enter")
        await page.locator(".state-box th", has_text="状态").first.wait_for()
        assert datetime.now(UTC) > accepted


async def test_urgent_cases_come_first_pinned_with_an_alert_that_can_be_muted(
        browser: Any, console: Any) -> None:  # noqa: F811
    calm = await _register(console, "咨询办理居住证需要什么材料", category="consultation", priority=4)
    usual = await _register(console, "噪音扰民，晚上施工", priority=3)
    urgent = await _register(console, "老人摔倒在家无法起身", priority=1)
    base = str(console.make_url("/"))
    async with _page(browser, base + "?token=t-dispatcher", width=1440, height=900) as page:
        await page.locator(f"tbody.pinned tr.case-row[data-case='{urgent['case_id']}']").wait_for()
        order = [await r.get_attribute("data-case") for r in await page.locator("tr.case-row").all()]
        assert order == [urgent["case_id"], usual["case_id"], calm["case_id"]]
        alarm = page.locator(".alarm")
        assert await alarm.is_visible() and "1" in (await alarm.text_content() or "")
        assert await alarm.get_attribute("data-sounded") == "0"  # what was there on opening does not ring

        # the rule itself: light (red first), then priority, then the nearest deadline
        ranked = await page.evaluate("""async () => {
          const { urgentFirst, pinned } = await import('/console/board.js');
          const items = [
            { case_id: 'g1', light: 'green', priority: 1, deadline: '2026-12-06T10:00:00Z' },
            { case_id: 'y3', light: 'yellow', priority: 3, deadline: '2026-12-06T09:00:00Z' },
            { case_id: 'r4', light: 'red', priority: 4, deadline: '2026-12-06T12:00:00Z', status: 'new' },
            { case_id: 'g2late', light: 'green', priority: 2, deadline: '2026-12-07T10:00:00Z' },
            { case_id: 'g2soon', light: 'green', priority: 2, deadline: '2026-12-06T11:00:00Z' },
            { case_id: 'r4done', light: 'red', priority: 4, status: 'closed' },
          ];
          return [items.sort(urgentFirst).map((i) => i.case_id), items.filter(pinned).map((i) => i.case_id)];
        }""")
        assert ranked == [["r4", "r4done", "y3", "g1", "g2soon", "g2late"], ["r4", "g1"]]

        # the Due column fits at 1440x900 without scrolling sideways
        wrap = page.locator(".board .table-wrap")
        assert await wrap.evaluate("(el) => el.scrollWidth <= el.clientWidth")
        box, due = await wrap.bounding_box(), await page.locator("td.due").first.bounding_box()
        assert due["x"] + due["width"] <= box["x"] + box["width"] + 0.5

        # a new urgent case rings once; muted, the next one only shows
        second = await _register(console, "电梯困人，有老人在里面", priority=1)
        await page.locator(f"tbody.pinned tr[data-case='{second['case_id']}']").wait_for()
        await page.locator(".alarm[data-sounded='1']").wait_for()
        # a filter that hides and shows them again does not ring
        await page.select_option(".board select[name=light]", "yellow")
        await page.locator(".board .empty:not([hidden])").wait_for()
        await page.select_option(".board select[name=light]", "")
        await page.locator(f"tbody.pinned tr[data-case='{second['case_id']}']").wait_for()
        assert await alarm.get_attribute("data-sounded") == "1"
        await page.locator("button.mute").click()
        assert await page.locator("button.mute").get_attribute("aria-pressed") == "true"
        third = await _register(console, "燃气泄漏味道很大", priority=1)
        await page.locator(f"tbody.pinned tr[data-case='{third['case_id']}']").wait_for()
        await page.locator(".alarm", has_text="3").wait_for()
        assert await alarm.get_attribute("data-sounded") == "1"
        await _shot(page, "7-urgent-first")

        # rows by keyboard: focus moves with the arrows, Enter opens the case
        first = page.locator("tr.case-row").first
        await first.focus()
        await page.keyboard.press("ArrowDown")
        focused = await page.evaluate("document.activeElement.dataset.case")
        assert focused == await page.locator("tr.case-row").nth(1).get_attribute("data-case")
        await page.keyboard.press("Enter")
        await page.locator(f".detail .case-id:text-is('{focused}')").wait_for()

        await page.reload()
        await page.locator("tr.case-row").first.wait_for()
        assert await page.locator("button.mute").get_attribute("aria-pressed") == "true"


async def test_actions_follow_the_state_feedback_stays_and_refusals_say_why(
        browser: Any, console: Any, services: Any) -> None:  # noqa: F811
    await _load(services, "demo_units.geojson")
    case = await _register(console, "路面塌陷，车辆无法通行")
    unrelated = await _register(console, "咨询公积金提取", category="consultation")
    case_id = case["case_id"]
    actions = "button.action[data-action]"
    async with _page(browser, str(console.make_url("/")) + f"?token=t-dispatcher#case/{case_id}") as page:
        await page.locator("button[data-action=dispatch]").wait_for()
        shown = {await b.get_attribute("data-action") for b in await page.locator(actions).all()}
        assert shown == {"classify", "dispatch", "link", "close", "legal-hold"}

        # dispatch through the in-page form; the confirmation outlives the re-render that follows
        await page.locator("button[data-action=dispatch]").click()
        await page.select_option(".action-form select[name=to]", "U001")  # units from a list
        await page.locator(".action-form button[type=submit]").click()
        await page.locator(".message .ok", has_text="派单已提交").wait_for()
        await page.locator("button[data-action=complete]").wait_for()
        shown = {await b.get_attribute("data-action") for b in await page.locator(actions).all()}
        assert shown == {"dispatch", "complete", "link", "close", "legal-hold"}
        assert await page.locator(".message .ok", has_text="派单已提交").is_visible()

        # a form being filled survives someone else's change; sending it then is a stale version
        await page.locator("button[data-action=close]").click()
        await page.fill(".action-form input[name=reason]", "重复来电")
        now = await (await console.get(f"/api/v1/cases/{case_id}", headers=DISPATCHER)).json()
        confirmed = await console.post(f"/api/v1/cases/{case_id}/confirm", headers=UNIT,
                                       json={"expected_version": now["version"]})
        assert confirmed.status == 200, await confirmed.text()
        await page.locator(".detail .status", has_text="已签收").wait_for()
        assert await page.locator(".action-form input[name=reason]").input_value() == "重复来电"
        await page.locator(".action-form button[type=submit]").click()
        stale = page.locator(".message .err[data-code=stale_version]")
        await stale.wait_for()
        assert "已被他人先行更新" in (await stale.text_content() or "")

        # a rule's refusal is not read as a conflict
        await page.locator("button[data-action=link]").click()
        await page.fill(".action-form input[name=other_case_id]", unrelated["case_id"])
        await page.locator(".action-form button[type=submit]").click()
        refused = page.locator(".message .err[data-code=not_allowed]")
        await refused.wait_for()
        text = await refused.text_content() or ""
        assert "不被允许" in text and "已签收" in text and "他人" not in text
        await _shot(page, "8-refused")


async def test_a_due_reminder_reaches_the_agent_who_set_it(browser: Any, console: Any) -> None:  # noqa: F811
    case = await _register(console, "周五前回复王女士公积金提取进度", category="todo")
    case_id = case["case_id"]
    async with _page(browser, str(console.make_url("/")) + f"?token=t-agent#case/{case_id}") as page, \
            _page(browser, str(console.make_url("/")) + "?token=t-agent2") as other:
        # set through the in-page form (Beijing time typed), then shown on the case
        await page.locator("button[data-action=reminder]").click()
        await page.fill(".action-form input[name=remind_at]", "2099-01-01T09:30")
        await page.fill(".action-form input[name=note]", "回电")
        await page.locator(".action-form button[type=submit]").click()
        await page.locator(".message .ok").wait_for()
        shown = await (await console.get(f"/api/v1/cases/{case_id}", headers=AGENT)).json()
        at = datetime.fromisoformat(shown["reminder"]["at"])
        assert at == datetime(2099, 1, 1, 1, 30, tzinfo=UTC)  # 09:30 typed in Beijing time
        # moved to a moment from now: it comes due, the agent who set it is told, nobody else
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        moved = await console.post(f"/api/v1/cases/{case_id}/reminder", headers=AGENT,
                                   json={"expected_version": shown["version"], "remind_at": soon,
                                         "note": "回电确认"})
        assert moved.status == 200, await moved.text()
        notice = page.locator(f".reminder[data-case-id='{case_id}']")
        await notice.wait_for(timeout=15_000)
        assert "回电确认" in (await notice.text_content() or "")
        await _shot(page, "reminder-due")
        await notice.locator("button.primary").click()
        assert await notice.count() == 0
        assert await other.locator(".reminder").count() == 0


POWER = {"category": "power_fault", "priority": 2, "channel": "phone", "account_number": "6100012345",
         "caller": {"name": "张三", "phone": "13800138000"}, "description": "整栋楼停电，电梯困人",
         "location": {"lat": 34.3455, "lon": 108.7123}, "address": "秦都区人民路1号",
         "fault": {"type": "outage", "began_at": "2026-11-23T07:50:00+08:00", "scope": "building"}}


async def _dispatch(client: Any, case: dict[str, Any], to: str) -> None:
    """Dispatch at the case's current version (linking may change it meanwhile: then again)."""
    for _ in range(50):
        now = await (await client.get(f"/api/v1/cases/{case['case_id']}", headers=DISPATCHER)).json()
        response = await client.post(f"/api/v1/cases/{case['case_id']}/dispatch", headers=DISPATCHER,
                                     json={"expected_version": now["version"], "to": to})
        if response.status != 409:
            break
        await asyncio.sleep(0.1)
    assert response.status == 200, await response.text()


async def _rows(page: Any) -> list[str | None]:
    return [await r.get_attribute("data-case") for r in await page.locator("tr.case-row").all()]


async def test_board_tabs_by_role_and_a_unit_on_a_phone(browser: Any, console: Any) -> None:  # noqa: F811
    mine = await _register(console, "井盖缺失，行人易跌落")
    theirs = await _register(console, "路灯不亮")
    waiting = await _register(console, "老人摔倒在家无法起身", priority=1)
    await _dispatch(console, mine, "U001")
    await _dispatch(console, theirs, "U002")
    base = str(console.make_url("/"))
    async with _page(browser, base + "?token=t-dispatcher", width=1440, height=900) as page:
        await page.locator(f"tr.case-row[data-case='{waiting['case_id']}']").wait_for()
        tabs = page.locator(".board button.tab")
        shown = [await b.get_attribute("data-tab") for b in await tabs.all()]
        assert shown == ["all", "unassigned", "overdue"]
        assert await page.locator("button.tab[data-tab=all]").get_attribute("aria-selected") == "true"
        assert set(await _rows(page)) == {mine["case_id"], theirs["case_id"], waiting["case_id"]}
        assert await page.locator("button.tab[data-tab=unassigned]").text_content() == "未派单 1"
        await page.locator("button.tab[data-tab=unassigned]").click()
        await page.locator("button.tab[data-tab=unassigned][aria-selected=true]").wait_for()
        assert await _rows(page) == [waiting["case_id"]]
        await page.locator("button.tab[data-tab=overdue]").click()
        await page.locator(".board .empty:not([hidden])").wait_for()
        assert await _rows(page) == []
        # the rules themselves, on cases the test can date
        picked = await page.evaluate("""async () => {
          const { inTab, ownFirst, tabsFor } = await import('/console/board_tabs.js');
          const past = new Date(Date.now() - 60000).toISOString();
          const soon = new Date(Date.now() + 60000).toISOString();
          const items = [
            { case_id: 'late', status: 'dispatched', assigned_to: 'U002', deadline: past },
            { case_id: 'lateDone', status: 'completed', assigned_to: 'U001', deadline: past },
            { case_id: 'own', status: 'confirmed', assigned_to: 'U001', deadline: soon },
            { case_id: 'free', status: 'accepted', deadline: soon },
            { case_id: 'callMe', status: 'completed', assigned_to: 'U001' },
          ];
          const ids = (tab, me) => items.filter((i) => inTab(tab, i, me)).map((i) => i.case_id);
          const unit = { role: 'unit', subject: 'U001' }, agent = { role: 'agent', subject: 'A001' };
          const byId = (a, b) => a.case_id.localeCompare(b.case_id);
          const { pinsFor } = await import('/console/board_tabs.js');
          return {
            pins: [pinsFor(items[2], unit), pinsFor(items[0], unit),
                   pinsFor(items[0], { role: 'dispatcher' })],
            overdue: ids('overdue', unit), unassigned: ids('unassigned', unit), unitMine: ids('mine', unit),
            agentMine: ids('mine', agent), tabs: [tabsFor('unit'), tabsFor('agent'), tabsFor('auditor')],
            unitOrder: [...items].sort(ownFirst(unit, byId)).map((i) => i.case_id),
            dispatcherOrder: [...items].sort(ownFirst({ role: 'dispatcher' }, byId)).map((i) => i.case_id),
          };
        }""")
        assert picked == {
            "overdue": ["late"], "unassigned": ["free"], "unitMine": ["lateDone", "own", "callMe"],
            "agentMine": ["lateDone", "callMe"],
            "tabs": [["all", "mine", "overdue"], ["all", "mine", "unassigned", "overdue"],
                     ["all", "overdue"]],
            "pins": [True, False, True],
            "unitOrder": ["callMe", "lateDone", "own", "free", "late"],
            "dispatcherOrder": ["callMe", "free", "late", "lateDone", "own"],
        }

    # a unit in the field, on a phone: its own case first (before another's urgent one), its tab,
    # no sideways scroll, rows by keyboard
    async with _page(browser, base + "?token=t-unit", width=390, height=844) as page:
        await page.locator(f"tr.case-row[data-case='{waiting['case_id']}']").wait_for()
        tabs = page.locator(".board button.tab")
        assert [await b.get_attribute("data-tab") for b in await tabs.all()] == ["all", "mine", "overdue"]
        rows = await _rows(page)
        assert rows[0] == mine["case_id"]
        assert set(rows) == {mine["case_id"], theirs["case_id"], waiting["case_id"]}
        assert await page.locator("tbody.pinned tr.case-row").count() == 0  # another's urgent case
        await page.locator("button.tab[data-tab=mine]").click()
        await page.locator("button.tab[data-tab=mine][aria-selected=true]").wait_for()
        assert await _rows(page) == [mine["case_id"]]
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await page.locator(f"tr.case-row[data-case='{mine['case_id']}']").focus()
        await page.keyboard.press("Enter")
        confirm = page.locator("button[data-action=confirm]")
        await confirm.wait_for()
        box = await confirm.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await confirm.click()
        await page.locator(".message .ok").wait_for()
        await page.locator(".detail .status", has_text="已签收").wait_for()
        await _shot(page, "9-unit-phone")


async def test_dispatch_suggestions_follow_the_job_and_units_come_from_a_list(
        browser: Any, console: Any, services: Any) -> None:  # noqa: F811
    await _load(services, "demo_units.geojson", "demo_providers.geojson")
    response = await console.post("/api/v1/cases", headers=AGENT, json=POWER)
    assert response.status == 201, await response.text()
    power = await response.json()
    alarm = await _register(console, "一键通报警，老人胸口疼", category="elderly_emergency", priority=1)
    complaint = await _register(console, "噪音扰民")
    base = str(console.make_url("/"))
    async with _page(browser, base + f"?token=t-dispatcher#case/{power['case_id']}") as page:
        offered = page.locator("ul.providers li[data-provider]")
        await offered.first.wait_for(timeout=30_000)
        # read in one go: a live change may re-render the list between two reads
        listed = await page.wait_for_function(
            "() => { const t = [...document.querySelectorAll('ul.providers li[data-provider]')]"
            ".map((li) => li.textContent); return t.length ? t : null; }", timeout=30_000)
        texts = await listed.json_value()
        assert texts and all("电力抢修" in x or "线路抢修" in x for x in texts), texts
        assert not any("养老" in x or "医疗" in x for x in texts), texts
        assert all(re.search(r"在办 \d+/\d+", x) for x in texts), texts  # load of capacity
        chosen = await offered.first.get_attribute("data-provider")
        await offered.first.locator("button.link").click()
        select = page.locator(".action-form select[name=to]")
        await select.wait_for()
        assert await select.input_value() == chosen
        units = [await o.get_attribute("value") for o in await select.locator("optgroup option").all()]
        assert len(units) == 60 and "U001" in units
        await page.locator(".action-form button[type=submit]").click()
        await page.locator(".message .ok", has_text="派单已提交").wait_for()
        await page.locator(".detail .status", has_text="已派单").wait_for()
        now = await (await console.get(f"/api/v1/cases/{power['case_id']}", headers=DISPATCHER)).json()
        assert (now["assigned_to"], now["assignee_kind"]) == (chosen, "provider")

        await page.locator(f"tr.case-row[data-case='{alarm['case_id']}']").click()
        await page.locator(f".detail .case-id:text-is('{alarm['case_id']}')").wait_for()
        offered = page.locator("ul.providers li[data-provider]")
        await offered.first.wait_for()
        texts = [await li.text_content() or "" for li in await offered.all()]
        assert all("医疗" in x or "居家养老" in x for x in texts), texts
        assert not any("抢修组" in x for x in texts), texts

        await page.locator(f"tr.case-row[data-case='{complaint['case_id']}']").click()
        await page.locator("ul.providers li.muted", has_text="由承办单位办理").wait_for()
        await _shot(page, "10-suggestions")


async def test_an_incident_cause_is_set_in_the_page_and_districts_read_by_name(
        browser: Any, console: Any, services: Any) -> None:  # noqa: F811
    from dispatch.linking.incidents import OpenIncident

    cases = [await _register(console, f"停电了，第{n}户", category="complaint") for n in range(3)]
    incident_id = "INC-DEMO-1"
    await services.bus.handle(OpenIncident(incident_id, "610404", "complaint",
                                           tuple(c["case_id"] for c in cases), 34.3455, 108.7123,
                                           actor="test"))
    base = str(console.make_url("/"))
    async with _page(browser, base + "?token=t-dispatcher", zone="UTC") as page:
        card = page.locator(f".incident[data-incident='{incident_id}']")
        await card.wait_for(timeout=20_000)
        assert "渭城区" in (await card.text_content() or "")  # the district by name, not 610404
        row = page.locator(f"tr.case-row[data-case='{cases[0]['case_id']}']")
        row_text = await row.text_content() or ""
        assert "渭城区" in row_text and "610404" not in row_text
        await card.locator("button[data-cause]").click()
        form = card.locator("form.incident-facts")
        await form.locator("input[name=cause]").fill("10kV 线路被大风刮断")
        await form.locator("input[name=expected_restoration_at]").fill("2030-01-01T18:30")
        await form.locator("button[type=submit]").click()
        await card.locator(".ok").wait_for()
        await card.locator(".muted", has_text="10kV 线路被大风刮断").wait_for()
        await card.locator(".muted", has_text="01-01 18:30:00").wait_for()  # shown back in Beijing time
        assert await card.locator(".ok").is_visible()  # the confirmation outlives the re-render
        saved = await (await console.get(f"/api/v1/incidents/{incident_id}", headers=DISPATCHER)).json()
        assert saved["cause"] == "10kV 线路被大风刮断"
        # typed in Beijing time, whatever the browser's zone: 18:30 at +08:00 is 10:30 UTC
        restoration = datetime.fromisoformat(saved["expected_restoration_at"])
        assert restoration == datetime(2030, 1, 1, 10, 30, tzinfo=UTC)
        await _shot(page, "11-incident-cause")

    # an agent sees the incident but may not set its cause
    async with _page(browser, base + "?token=t-agent") as page:
        card = page.locator(f".incident[data-incident='{incident_id}']")
        await card.wait_for(timeout=20_000)
        assert await card.locator("button[data-cause]").count() == 0
