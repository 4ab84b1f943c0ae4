"""A report as a table (JSON rows), and that table as CSV or XLSX with headers from the texts
catalogue (Simplified Chinese by default, English with `INTAKE_LANGUAGE=en`).

Each row names its group beside its key (column `name`): a category or channel by the texts
catalogue, a district, unit or agent by its reference data (a unit by its organisation node, or
else the unit or provider of that id), a row without a value (`-`) as "none"; a key named nowhere
(a phone system's queue) has an empty name."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from dispatch.core.texts import Texts
from dispatch.reports.definitions import REPORTS
from dispatch.reports.facts import NONE
from dispatch.reports.read_model import Db, report_sums

Cell = str | int | float | None


@dataclass(frozen=True, slots=True)
class ReportTable:
    """One report over a range: its columns (`period`, `group`, `name`, then the report's) and rows."""

    name: str
    group: str
    by: str
    start: date
    end: date
    columns: tuple[str, ...]
    items: list[dict[str, Cell]]


def period_label(period: date, by: str) -> str:
    """How a period is named: its day (a week by its Monday), or `YYYY-MM` for a month."""
    return period.strftime("%Y-%m") if by == "month" else period.isoformat()


CATALOGUED = ("category", "channel")
"""Groupings whose keys the texts catalogue names (`category.<key>`, `channel.<key>`)."""
REFERENCE_NAMES = {
    "district": "SELECT adcode AS id, name FROM ref_districts WHERE adcode = ANY($1::text[])",
    "agent": "SELECT id, name FROM ref_agents WHERE id = ANY($1::text[])",
    "unit": "SELECT DISTINCT ON (id) id, name FROM ("
            "SELECT id, name, 1 AS rank FROM ref_org WHERE id = ANY($1::text[]) "
            "UNION ALL SELECT id, name, 2 FROM ref_units WHERE id = ANY($1::text[]) "
            "UNION ALL SELECT id, name, 3 FROM ref_providers WHERE id = ANY($1::text[])) n "
            "ORDER BY id, rank",
}
"""Groupings whose keys reference data names: the query of the names of the keys `$1`."""


async def group_names(db: Db, group: str, keys: set[str], texts: Texts) -> dict[str, str]:
    """What the keys of a grouping are called (a key named nowhere is left out)."""
    names = {NONE: texts.say("report.none"), "": texts.say("report.group.all")}
    if group in CATALOGUED:
        names |= {k: texts.messages[f"{group}.{k}"] for k in keys if f"{group}.{k}" in texts.messages}
    elif group in REFERENCE_NAMES and keys - names.keys():
        names |= {r["id"]: r["name"] for r in await db.fetch(REFERENCE_NAMES[group], sorted(keys))}
    return names


async def build(db: Db, name: str, group: str, start: date, end: date, by: str, texts: Texts,
                scope: frozenset[str] | None = None) -> ReportTable:
    """Report `name` grouped by `group` per `by` over the local days [start, end] (of the cases
    `scope`'s nodes hold, see `report_sums`), its groups named in `texts`' language."""
    report = REPORTS[name]
    rows = await report_sums(db, name, group, start, end, by, scope)
    names = await group_names(db, group, {row.key for row in rows}, texts)
    items: list[dict[str, Cell]] = []
    for row in rows:
        item: dict[str, Cell] = {"period": period_label(row.period, by), "group": row.key,
                                 "name": names.get(row.key, "")}
        item |= {c: row.sums.get(c, 0) for c in report.counts}
        item |= {d.name: d.value(row.sums) for d in report.derived}
        items.append(item)
    return ReportTable(name, group, by, start, end, ("period", "group", "name", *report.columns), items)


def headers(table: ReportTable, texts: Texts) -> list[str]:
    """The column headers in the catalogue's language."""
    names = {"period": texts.say(f"report.period.{table.by}"),
             "group": texts.say(f"report.group.{table.group}")}
    return [names.get(c) or texts.say(f"report.column.{c}") for c in table.columns]


def _rows(table: ReportTable) -> list[list[Cell]]:
    return [[item[c] for c in table.columns] for item in table.items]


PERCENT = "0.0%"
"""How a workbook shows a rate (its cell keeps the fraction)."""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""How a text a spreadsheet program would run as a formula begins (OWASP, CSV injection)."""


def _csv_cell(value: Cell) -> Cell:
    """A cell as the CSV file holds it: a text that would be taken for a formula is kept text by a
    leading `'`. Keys and names come from outside (a phone system's queue names, reference data);
    `-`, a row without a value, is no formula."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and value != NONE:
        return "'" + value
    return value


def to_csv(table: ReportTable, texts: Texts) -> bytes:
    """The table as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers(table, texts))
    writer.writerows([_csv_cell(v) for v in row] for row in _rows(table))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(tables: Sequence[ReportTable], texts: Texts) -> bytes:
    """The tables as one workbook, a sheet per table named after its report."""
    from openpyxl import Workbook  # imported when first asked for: it takes a second to import

    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for table in tables:
        sheet = book.create_sheet(texts.say(f"report.name.{table.name}")[:31])
        sheet.append(headers(table, texts))
        rates = {i for i, c in enumerate(table.columns) if c in REPORTS[table.name].percent}
        for row in _rows(table):
            sheet.append(row)
            for i, cell in enumerate(sheet[sheet.max_row]):
                if isinstance(cell.value, str):  # a text is a text: openpyxl writes "=..." as a formula
                    cell.data_type = "s"
                elif i in rates:
                    cell.number_format = PERCENT
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
