"""SLA settings: each `INTAKE_SLA_*` / `INTAKE_CHASE_*` variable read once at start, or refused.

Also the corners of the light rule the lifecycle tests never reach.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.cases.sla import Clocks, SlaConfig, light, light_changes
from gateway.settings import SettingsError, from_env

NUMBERS = {
    "INTAKE_SLA_CONFIRM_MINUTES": ("confirm_minutes", 11.0),
    "INTAKE_SLA_CALLBACK_HOURS": ("callback_hours", 13.0),
    "INTAKE_SLA_ARCHIVE_HOURS": ("archive_hours", 25.0),
    "INTAKE_SLA_NEAR_FRACTION": ("near_fraction", 0.3),
    "INTAKE_SLA_YELLOW_DAYS": ("yellow_untouched_days", 4.0),
    "INTAKE_SLA_RED_DAYS": ("red_days", 8.0),
    "INTAKE_CHASE_INTERVAL_MINUTES": ("chase_interval_minutes", 9.0),
    "INTAKE_SUPPLEMENT_AFTER_DAYS": ("supplement_after_days", 3.0),
}
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_unset_or_empty_variables_keep_the_defaults() -> None:
    assert from_env({}).sla == SlaConfig()
    assert from_env(dict.fromkeys([*NUMBERS, "INTAKE_SLA_COMPLETE_HOURS"], "")).sla == SlaConfig()
    assert asdict(SlaConfig()) == {
        "confirm_minutes": 30.0, "complete_hours": {1: 4.0, 2: 12.0, 3: 72.0, 4: 72.0},
        "callback_hours": 12.0, "archive_hours": 24.0, "near_fraction": 0.2,
        "yellow_untouched_days": 5.0, "red_days": 7.0, "chase_interval_minutes": 15.0,
        "supplement_after_days": 7.0,
    }


@pytest.mark.parametrize("name", NUMBERS)
def test_each_number_is_read_from_its_variable(name: str) -> None:
    attribute, value = NUMBERS[name]
    cfg = from_env({name: str(value)}).sla
    assert getattr(cfg, attribute) == value
    assert cfg == SlaConfig(**{attribute: value})  # and nothing else changes


def test_completion_hours_by_priority_merge_with_the_defaults() -> None:
    cfg = from_env({"INTAKE_SLA_COMPLETE_HOURS": " 1:2 , 3:48.5,"}).sla
    assert cfg.complete_hours == {1: 2.0, 2: 12.0, 3: 48.5, 4: 72.0}
    assert cfg.complete_limit(3) == timedelta(hours=48.5)
    assert cfg.complete_limit(9) == timedelta(hours=72)  # an unknown level: the longest


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("raw", ["soon", "1,5", "-1"])
def test_a_bad_number_is_refused_naming_its_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as refused:
        from_env({name: raw})
    if raw == "-1":  # the message names the allowed range (0 and up; 0 to 1 for a fraction)
        assert str(refused.value).startswith(f"{name}={raw!r} must be a number ")
    else:
        assert str(refused.value) == f"{name}={raw!r} is not a number"


@pytest.mark.parametrize("raw", ["1=2", "one:2", "1:two", "1:2:3"])
def test_bad_completion_hours_are_refused(raw: str) -> None:
    with pytest.raises(SettingsError) as refused:
        from_env({"INTAKE_SLA_COMPLETE_HOURS": raw})
    assert str(refused.value).startswith(f"INTAKE_SLA_COMPLETE_HOURS={raw!r} ")
    assert "is not priority:hours" in str(refused.value)


def test_the_chase_interval_is_at_least_six_seconds() -> None:
    for raw, seconds in (("0", 6), ("0.5", 30)):
        cfg = from_env({"INTAKE_CHASE_INTERVAL_MINUTES": raw}).sla
        assert cfg.chase_interval() == timedelta(seconds=seconds)


def test_an_unknown_priority_gets_the_longest_response_limit() -> None:
    assert SlaConfig.response_limit(9) == timedelta(minutes=90)


def test_a_case_with_no_deadline_and_no_transfer_stays_green() -> None:
    clocks = Clocks("accepted", deadline=None, deadline_from=None)
    assert light_changes(clocks, SlaConfig()) == (None, None)
    assert light(clocks, SlaConfig(), T0 + timedelta(days=100)) == "green"
    transferred = Clocks("dispatched", deadline=None, deadline_from=None, dispatched_at=T0)
    assert light_changes(transferred, SlaConfig()) == (T0 + timedelta(days=5), T0 + timedelta(days=7))


def test_only_a_finished_status_freezes_the_light() -> None:
    late = T0 + timedelta(minutes=61)
    open_case = Clocks("in_progress", deadline=T0 + timedelta(minutes=60), deadline_from=T0,
                       finished_at=T0 + timedelta(minutes=10))
    assert light(open_case, SlaConfig(), late) == "red"  # not finished: judged now
    done = Clocks("completed", deadline=T0 + timedelta(minutes=60), deadline_from=T0, finished_at=None)
    assert light(done, SlaConfig(), late) == "red"  # no finishing time known: judged now


@pytest.mark.parametrize(("raw", "rule"), [
    ("5:8", "must name priorities [1, 2, 3, 4] only"),
    ("2:-0.5", "must be a number >= 0"),
])
def test_completion_hours_of_an_unknown_priority_or_below_zero_are_refused(raw: str, rule: str) -> None:
    """A priority the response limits do not know, or negative hours, names the variable and the rule."""
    with pytest.raises(SettingsError) as refused:
        from_env({"INTAKE_SLA_COMPLETE_HOURS": raw})
    assert str(refused.value) == f"INTAKE_SLA_COMPLETE_HOURS={raw!r} {rule}"


def test_completion_hours_under_one_and_a_near_fraction_up_to_one_are_accepted() -> None:
    assert from_env({"INTAKE_SLA_COMPLETE_HOURS": "1:0.5"}).sla.complete_limit(1) == timedelta(minutes=30)
    assert from_env({"INTAKE_SLA_NEAR_FRACTION": "1"}).sla.near_fraction == 1.0
    with pytest.raises(SettingsError) as refused:
        from_env({"INTAKE_SLA_NEAR_FRACTION": "1.5"})
    assert str(refused.value) == "INTAKE_SLA_NEAR_FRACTION='1.5' must be a number from 0 to 1"
