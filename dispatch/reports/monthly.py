"""The monthly report file: on the first of each month (Beijing time) a worker writes last
month's reports as one workbook, `reports-YYYY-MM.xlsx`, into the configured folder
(`INTAKE_REPORTS_DIR`, by default `<INTAKE_DATA_DIR>/reports`).

The time comes from the injected clock; a file already there is left alone, and the file is
written under a temporary name and renamed, so any number of workers may run the timer.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

import asyncpg
import structlog

from dispatch.core.capability import Deps, Task
from dispatch.core.clock import Clock
from dispatch.core.texts import LOCAL_TIME, Texts
from dispatch.reports.definitions import REPORTS
from dispatch.reports.export import build, to_xlsx

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReportsConfig:
    """Where the monthly report files go (None: `<data dir>/reports`) and how often the timer looks."""

    directory: Path | None = None
    interval_s: float = 300.0

    def folder(self, data_dir: Path) -> Path:
        """The folder the files go to."""
        return self.directory or data_dir / "reports"


def last_month(day: date) -> tuple[date, date]:
    """The first and last day of the month before `day`'s."""
    end = day.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def file_for(directory: Path, first: date) -> Path:
    """The file of the month starting on `first`."""
    return directory / f"reports-{first:%Y-%m}.xlsx"


class MonthlyReportWriter:
    """Worker: on the first of a month, writes last month's reports once."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, texts: Texts, directory: Path,
                 interval_s: float = 300.0) -> None:
        self._pool, self._clock, self._texts = pool, clock, texts
        self._directory, self._interval = directory, interval_s

    async def tick(self) -> Path | None:
        """Write last month's file if today is the first and it is not there; the file written."""
        directory = self._directory
        today = self._clock.now().astimezone(LOCAL_TIME).date()
        if today.day != 1:
            return None
        start, end = last_month(today)
        target = file_for(directory, start)
        if target.exists():
            return None
        tables = [await build(self._pool, name, report.groups[0], start, end, "month", self._texts)
                  for name, report in REPORTS.items()]
        data = to_xlsx(tables, self._texts)
        directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        partial.write_bytes(data)
        os.replace(partial, target)
        log.info("monthly_report_written", file=str(target), month=f"{start:%Y-%m}")
        return target

    async def run(self) -> None:
        """Look every `interval_s` seconds until cancelled."""
        while True:
            try:
                await self.tick()
            except OSError as exc:
                log.warning("monthly_report_failed", error=str(exc))
            await asyncio.sleep(self._interval)


class DataDir(Protocol):
    """The store settings the reports read: the data folder."""

    @property
    def data_dir(self) -> Path:
        """Where the process keeps its data."""
        ...


class ReportsSettings(Protocol):
    """The configuration sections the reports read."""

    @property
    def reports(self) -> ReportsConfig:
        """Where the monthly files go."""
        ...

    @property
    def stores(self) -> DataDir:
        """The data folder (the default place of the files)."""
        ...


class ReportsDeps(Deps, Protocol):
    """What the reports capability's hooks use: the common dependencies and its settings."""

    @property
    def settings(self) -> ReportsSettings:
        """The configuration."""
        ...


def workers(deps: ReportsDeps) -> list[Task]:
    """The monthly report file's timer."""
    config = deps.settings.reports
    folder = config.folder(deps.settings.stores.data_dir)
    writer = MonthlyReportWriter(deps.pool, deps.clock, deps.texts, folder, config.interval_s)
    return [writer.run]
