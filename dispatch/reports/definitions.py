"""The reports: their names, groupings, columns and how each derived column is worked out.

A report's row is one period and one value of its grouping: the sums of its counts over the
days of the period (within the asked range), and ratios and averages of those sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Derived:
    """A column worked out from two sums: `numerator / denominator / scale`, None when the
    denominator is 0; rounded to `digits`. A `percent` one is a rate (a fraction of 1) that
    people read as a percentage."""

    name: str
    numerator: str
    denominator: str
    scale: float = 1.0
    digits: int = 4
    percent: bool = False

    def value(self, sums: Mapping[str, int]) -> float | None:
        """The column's value for one row's sums."""
        whole = sums.get(self.denominator, 0)
        if not whole:
            return None
        return round(sums.get(self.numerator, 0) / whole / self.scale, self.digits)


@dataclass(frozen=True, slots=True)
class Report:
    """One report: the groupings it offers (the first is the default), the counts it shows,
    its derived columns, and every sum it keeps per bucket (`measures`, in the order of the
    bucket's vector: a new one is added at the end, so stored vectors stay valid)."""

    name: str
    groups: tuple[str, ...]
    counts: tuple[str, ...]
    derived: tuple[Derived, ...]
    measures: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every value column, in order."""
        return (*self.counts, *(d.name for d in self.derived))

    @property
    def percent(self) -> tuple[str, ...]:
        """The rate columns: fractions shown as percentages."""
        return tuple(d.name for d in self.derived if d.percent)


def _rate(name: str, numerator: str, denominator: str) -> Derived:
    return Derived(name, numerator, denominator, percent=True)


def _seconds(name: str, numerator: str, denominator: str) -> Derived:
    return Derived(name, numerator, denominator, 1000.0, 1)


def _score(name: str, numerator: str) -> Derived:
    return Derived(name, numerator, f"{numerator}s", 1.0, 2)


CALLBACK = ("callbacks", "satisfied", "unsatisfied", "not_confirmed", "case_score", "case_scores",
            "unit_score", "unit_scores")
"""The sums a call-back adds to."""

REPORTS: dict[str, Report] = {r.name: r for r in (
    Report("calls", ("all", "queue"), ("offered", "answered", "abandoned", "transfers"), (
        _rate("answer_rate", "answered", "offered"),
        _seconds("average_wait_s", "wait_ms", "waits"),
        _seconds("average_handling_s", "handle_ms", "handled")),
        ("offered", "answered", "abandoned", "transfers", "wait_ms", "waits", "handle_ms", "handled")),
    Report("cases", ("category", "district", "channel", "unit", "agent", "all"),
           ("cases", "transferred", "dispatches", "repeat_contacts", "first_contact_resolved",
            "praise", "criticism"), (
        _rate("repeat_contact_rate", "repeat_contacts", "with_caller"),
        _rate("first_contact_resolution", "first_contact_resolved", "with_caller")),
        ("cases", "transferred", "dispatches", "with_caller", "repeat_contacts", "first_contact_resolved",
         "praise", "criticism")),
    Report("satisfaction", ("unit", "agent", "all"),
           ("callbacks", "satisfied", "unsatisfied", "not_confirmed", "praise", "criticism"), (
        _rate("satisfaction_rate", "satisfied", "callbacks"),
        _score("average_case_score", "case_score"),
        _score("average_unit_score", "unit_score")),
        (*CALLBACK, "praise", "criticism")),
    Report("units", ("unit",),
           ("dispatched", "confirmed", "confirmed_on_time", "completed", "completed_on_time", "rejected",
            "wrong_rejections", "complaints", "complaints_responded_7d", "complaints_resolved_10d",
            "callbacks", "satisfied"), (
        _rate("on_time_confirmation", "confirmed_on_time", "dispatched"),
        _rate("on_time_completion", "completed_on_time", "completed"),
        _rate("complaints_responded_7d_rate", "complaints_responded_7d", "complaints"),
        _rate("complaints_resolved_10d_rate", "complaints_resolved_10d", "complaints"),
        _score("average_unit_score", "unit_score")),
        ("dispatched", "confirmed", "confirmed_on_time", "completed", "completed_on_time", "rejected",
         "wrong_rejections", "complaints", "complaints_responded_7d", "complaints_resolved_10d", *CALLBACK)),
    Report("agents", ("agent",), ("answered_calls", "cases", "callbacks", "satisfied"), (
        _seconds("average_handling_s", "handle_ms", "handled"),
        _score("average_case_score", "case_score"),
        _score("average_unit_score", "unit_score")),
        ("answered_calls", "handle_ms", "handled", "cases", *CALLBACK)),
)}
"""Every report by name (`GET /api/v1/reports/{name}`)."""

PERIODS: tuple[str, ...] = ("day", "week", "month")
"""Report periods, in Beijing time; weeks start on Monday."""
