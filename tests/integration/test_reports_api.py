"""The reports endpoint's edges: roles, refused parameters and their codes, CSV and XLSX with
Chinese headers by default and English on request, the heat map, and the monthly workbook
written on the first of the month from the injected clock."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from dispatch.cases.registration import CATEGORIES
from dispatch.core.clock import FakeClock
from dispatch.core.texts import texts_for
from dispatch.intake.contact import CHANNELS
from dispatch.reports.monthly import MonthlyReportWriter
from dispatch.reports.read_model import ReportsProjection
from eventstore.subscriptions import ProjectionRunner
from gateway.cli.loader import catch_up_reference, load_paths
from tests.conftest import auth
from tests.integration.test_cases_api import FAULT, catch_up, post
from tests.integration.test_nearest_api import GIS
from tests.integration.test_wechat_channel import load_district

NOV = "from=2026-11-01&to=2026-11-30"


async def some_cases(api: Any, wired: Any) -> None:
    """Two cases on 2026-11-23 (Beijing), one dispatched to U001 and called back with scores."""
    case = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    base = f"/api/v1/cases/{case['case_id']}"
    case = await post(api, f"{base}/dispatch", {"expected_version": 0, "to": "U001"})
    case = await post(api, f"{base}/complete", {"expected_version": case["version"]}, "t-unit")
    await post(api, f"{base}/callback", {"expected_version": case["version"], "outcome": "satisfied",
                                         "case_score": 4, "unit_score": 5}, "t-agent")
    await post(api, "/api/v1/cases", {**FAULT, "category": "complaint", "location": None}, "t-agent", 201)
    await ProjectionRunner(wired.store, ReportsProjection()).run_until_caught_up()


async def get(api: Any, path: str, token: str = "t-dispatcher", status: int = 200) -> Any:
    resp = await api.get(path, headers=auth(token))
    assert resp.status == status, await resp.text()
    return resp


@pytest.mark.parametrize(("token", "status"), [("t-dispatcher", 200), ("t-admin", 200), ("t-auditor", 200),
                                               ("t-agent", 403), ("t-unit", 403), ("t-channel", 403)])
async def test_who_may_read_reports(api: Any, token: str, status: int) -> None:
    resp = await get(api, f"/api/v1/reports/cases?{NOV}", token, status)
    if status == 403:
        assert (await resp.json())["error"]["code"] == "forbidden"
    await get(api, "/api/v1/heatmap", token, status)


@pytest.mark.parametrize(("query", "code"), [
    ("from=2026-13-01", "bad_from"), ("from=20261101", "bad_from"), ("to=yesterday", "bad_to"),
    ("from=9999-12-31&to=9999-12-31", "bad_from"), ("to=1999-12-31", "bad_to"),
    ("from=2026-11-30&to=2026-11-01", "bad_range"), ("from=2025-01-01&to=2026-11-30", "bad_range"),
    ("by=year", "bad_by"), ("group=colour", "bad_group"), ("format=pdf", "bad_format"),
    ("lang=fr", "bad_parameter"),
])
async def test_bad_parameters_are_refused_with_their_code(api: Any, query: str, code: str) -> None:
    resp = await get(api, f"/api/v1/reports/cases?{query}", status=400)
    assert (await resp.json())["error"]["code"] == code


async def test_unknown_report_and_heat_map_category(api: Any) -> None:
    resp = await get(api, "/api/v1/reports/weather", status=404)
    assert "calls" in (await resp.json())["error"]["message"]
    resp = await get(api, "/api/v1/heatmap?category=weather", status=400)
    assert (await resp.json())["error"]["code"] == "bad_category"


async def test_json_csv_and_xlsx_say_the_same_with_chinese_or_english_headers(api: Any, wired: Any) -> None:
    await some_cases(api, wired)
    await wired.pool.execute(
        "INSERT INTO ref_units (id, name, phone) VALUES ('U001', '秦都供电', '13326435929')")
    body = await (await get(api, f"/api/v1/reports/satisfaction?{NOV}&group=unit")).json()
    assert body["items"] == [
        {"period": "2026-11-23", "group": "-", "name": "未指定", "callbacks": 0, "satisfied": 0,
         "unsatisfied": 0, "not_confirmed": 0, "praise": 0, "criticism": 1, "satisfaction_rate": None,
         "average_case_score": None, "average_unit_score": None},
        {"period": "2026-11-23", "group": "U001", "name": "秦都供电", "callbacks": 1, "satisfied": 1,
         "unsatisfied": 0, "not_confirmed": 0, "praise": 0, "criticism": 0, "satisfaction_rate": 1.0,
         "average_case_score": 4.0, "average_unit_score": 5.0}]
    zh = texts_for("zh-CN")
    assert body["headers"][:4] == ["日期", "承办单位", "名称", "回访数"]
    resp = await get(api, f"/api/v1/reports/satisfaction?{NOV}&group=unit&format=csv")
    assert resp.content_type == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    text = (await resp.read()).decode("utf-8-sig")
    lines = text.splitlines()
    assert lines[0].split(",")[:4] == ["日期", "承办单位", "名称", "回访数"]
    assert lines[2].startswith("2026-11-23,U001,秦都供电,1,1,0,0,0,0,1.0,4.0,5.0")
    resp = await get(api, f"/api/v1/reports/satisfaction?{NOV}&group=unit&by=month&format=xlsx&lang=en")
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]  # type: ignore[union-attr]
    assert rows[0][:4] == ["Month", "Unit", "Name", "Call-backs"]
    assert rows[1][:3] == ["2026-11", "-", "None"]
    assert rows[2][:5] == ["2026-11", "U001", "秦都供电", 1, 1] and rows[2][-1] == 5.0
    assert zh.say("report.name.satisfaction") == "满意度"


@pytest.mark.parametrize(("group", "lang", "names"), [
    ("category", "zh-CN", {"complaint": "投诉", "power_fault": "电力故障"}),
    ("category", "en", {"complaint": "Complaint", "power_fault": "Power fault"}),
    ("channel", "zh-CN", {"phone": "电话"}),
    ("district", "zh-CN", {"-": "未指定", "610402": "秦都区"}),
    ("agent", "zh-CN", {"A001": "王坐席"}),
    ("unit", "zh-CN", {"-": "未指定", "U001": "秦都供电中心"}),
    ("all", "en", {"": "All"}),
])
async def test_each_grouping_names_its_rows_in_the_language_asked(
    api: Any, wired: Any, group: str, lang: str, names: dict[str, str]
) -> None:
    """A download is read by people: each row's key has its name beside it, from the catalogue or
    the reference data (a unit by its organisation node before the unit of that id). Bugs: the
    code in the name column, a name from the wrong table or language, a row left unnamed."""
    if group == "district":  # the real boundaries: the fault's place lies in 秦都区
        await load_paths(wired, [GIS / "districts.geojson"])
        await catch_up_reference(wired)
        load_district(wired)
    await some_cases(api, wired)
    await wired.pool.execute(
        "INSERT INTO ref_units (id, name, phone) VALUES ('U001', '秦都供电', '13326435929');"
        "INSERT INTO ref_org (id, name, level, parent) VALUES ('U001', '秦都供电中心', 'unit', NULL);"
        "INSERT INTO ref_agents (id, name) VALUES ('A001', '王坐席'), ('A002', '李坐席')")
    body = await (await get(api, f"/api/v1/reports/cases?{NOV}&group={group}&lang={lang}")).json()
    assert {item["group"]: item["name"] for item in body["items"]} == names
    assert body["columns"][:3] == ["period", "group", "name"]


def test_the_server_names_categories_and_channels_as_the_console_does() -> None:
    """One name per category and channel, whether the console or a download shows it. Bug: a
    category added to one catalogue and not the other, or renamed in one."""
    console = Path(__file__).parents[2] / "gateway" / "static" / "console" / "i18n"
    for lang in ("zh-CN", "en"):
        shown = json.loads((console / f"{lang}.json").read_text("utf-8"))
        said = texts_for(lang).messages
        for prefix, keys in (("category", CATEGORIES), ("channel", CHANNELS)):
            for key in keys:
                assert said[f"{prefix}.{key}"] == shown[f"{prefix}.{key}"], (lang, key)


async def test_heat_map_counts_cases_per_cell_and_category(api: Any, wired: Any) -> None:
    await some_cases(api, wired)
    await catch_up(wired)
    body = await (await get(api, f"/api/v1/heatmap?{NOV}")).json()
    assert body["items"] == [{"category": "power_fault", "lat": 34.335, "lon": 108.705, "count": 1}]
    assert (await (await get(api, f"/api/v1/heatmap?{NOV}&category=complaint")).json())["items"] == []
    assert (await (await get(api, "/api/v1/heatmap?from=2026-11-24&to=2026-11-30")).json())["items"] == []


async def test_the_monthly_workbook_is_written_on_the_first_once(
    api: Any, wired: Any, tmp_path: Path
) -> None:
    await some_cases(api, wired)
    clock = FakeClock(datetime(2026, 11, 30, 15, 59, tzinfo=UTC))  # 23:59 on the 30th in Beijing
    writer = MonthlyReportWriter(wired.pool, clock, texts_for("zh-CN"), tmp_path / "monthly")
    assert await writer.tick() is None and not (tmp_path / "monthly").exists()
    clock.set(datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # 00:00 on 1 December in Beijing
    written = await writer.tick()
    assert written == tmp_path / "monthly" / "reports-2026-11.xlsx"
    book = load_workbook(written)
    assert book.sheetnames == ["话务", "工单", "满意度", "承办单位", "坐席"]
    cases = [list(r) for r in book["工单"].iter_rows(values_only=True)]
    assert cases[0][:4] == ["月份", "类别", "名称", "工单量"]
    assert sorted(tuple(r[1:4]) for r in cases[1:]) == [("complaint", "投诉", 1),
                                                        ("power_fault", "电力故障", 1)]
    stamp = written.stat().st_mtime_ns
    assert await writer.tick() is None and written.stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "monthly").iterdir()] == ["reports-2026-11.xlsx"]
