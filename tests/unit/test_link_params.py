"""`LinkParams.from_settings`: each `INTAKE_LINK_*` / `INTAKE_INCIDENT_MIN_CASES` read, or refused."""

from __future__ import annotations

import pytest

from dispatch.linking.clustering import LinkParams

VARIABLES = {
    "INTAKE_LINK_RADIUS_M": ("radius_m", "250.5", 250.5),
    "INTAKE_LINK_WINDOW_MIN": ("window_min", "30", 30.0),
    "INTAKE_LINK_CALLER_WINDOW_MIN": ("caller_window_min", "90", 90.0),
    "INTAKE_LINK_MAX_LINKS": ("max_links", "5", 5),
    "INTAKE_INCIDENT_MIN_CASES": ("incident_min_cases", "4", 4),
}


def test_defaults() -> None:
    empty = dict.fromkeys(VARIABLES, "")
    assert LinkParams.from_settings({}) == LinkParams() == LinkParams.from_settings(empty)
    assert (LinkParams().radius_m, LinkParams().window_min, LinkParams().caller_window_min,
            LinkParams().max_links, LinkParams().incident_min_cases, LinkParams().max_candidates) == (
        1000.0, 60.0, 1440.0, 3, 3, 500)


@pytest.mark.parametrize("name", VARIABLES)
def test_each_variable_sets_its_parameter_only(name: str) -> None:
    attribute, raw, value = VARIABLES[name]
    params = LinkParams.from_settings({name: raw})
    assert getattr(params, attribute) == value
    assert type(getattr(params, attribute)) is type(value)
    assert params == LinkParams(**{attribute: value})


@pytest.mark.parametrize("name", VARIABLES)
def test_a_malformed_or_non_positive_value_is_refused_naming_the_variable(name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}='x' is not a number$"):
        LinkParams.from_settings({name: "x"})
    for raw in ("0", "-1"):
        with pytest.raises(ValueError, match=f"^{name} must be positive$"):
            LinkParams.from_settings({name: raw})


def test_counts_must_be_whole_numbers() -> None:
    with pytest.raises(ValueError, match=r"INTAKE_LINK_MAX_LINKS='2\.5' is not a number"):
        LinkParams.from_settings({"INTAKE_LINK_MAX_LINKS": "2.5"})
