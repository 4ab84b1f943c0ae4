"""The fuzz tier (each module marks its tests `fuzz`): how many inputs each channel was sent."""

from __future__ import annotations

from typing import Any

from tests.fuzz.fuzzing import TRIED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TRIED:
        return
    terminalreporter.section("fuzz: inputs tried per channel")
    for channel, count in sorted(TRIED.items()):
        terminalreporter.write_line(f"{channel:<28} {count:>6}")
    terminalreporter.write_line(f"{'total':<28} {sum(TRIED.values()):>6}")
