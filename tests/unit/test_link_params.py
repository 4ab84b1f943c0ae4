"""Linking parameters: each `INTAKE_LINK_*` / `INTAKE_INCIDENT_MIN_CASES` read once at start, or refused."""

from __future__ import annotations

import pytest

from dispatch.linking.clustering import LinkParams
from gateway.settings import SettingsError, from_env

VARIABLES = {
    "INTAKE_LINK_RADIUS_M": ("radius_m", "250.5", 250.5),
    "INTAKE_LINK_WINDOW_MIN": ("window_min", "30", 30.0),
    "INTAKE_LINK_CALLER_WINDOW_MIN": ("caller_window_min", "90", 90.0),
    "INTAKE_LINK_MAX_LINKS": ("max_links", "5", 5),
    "INTAKE_INCIDENT_MIN_CASES": ("incident_min_cases", "4", 4),
}


def test_defaults() -> None:
    empty = dict.fromkeys(VARIABLES, "")
    assert from_env({}).linking == LinkParams() == from_env(empty).linking
    assert (LinkParams().radius_m, LinkParams().window_min, LinkParams().caller_window_min,
            LinkParams().max_links, LinkParams().incident_min_cases, LinkParams().max_candidates) == (
        1000.0, 60.0, 1440.0, 3, 3, 500)


@pytest.mark.parametrize("name", VARIABLES)
def test_each_variable_sets_its_parameter_only(name: str) -> None:
    attribute, raw, value = VARIABLES[name]
    params = from_env({name: raw}).linking
    assert getattr(params, attribute) == value
    assert type(getattr(params, attribute)) is type(value)
    assert params == LinkParams(**{attribute: value})


@pytest.mark.parametrize("name", VARIABLES)
def test_a_malformed_or_non_positive_value_is_refused_naming_the_variable(name: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}='x' is not a"):
        from_env({name: "x"})
    for raw in ("0", "-1"):
        with pytest.raises(SettingsError, match=f"^{name}='{raw}' must be a (whole )?number"):
            from_env({name: raw})


def test_counts_must_be_whole_numbers() -> None:
    with pytest.raises(SettingsError, match=r"^INTAKE_LINK_MAX_LINKS='2\.5' is not a whole number"):
        from_env({"INTAKE_LINK_MAX_LINKS": "2.5"})
