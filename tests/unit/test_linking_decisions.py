"""Linking decisions as exact values: sketches, scores and their bounds, matches, incident steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.cases.events import CallerInfo, CaseRegistered, Place
from dispatch.gis.geo import geodesic_m
from dispatch.linking.clustering import (
    CaseSketch,
    IncidentDecision,
    LinkParams,
    Match,
    bbox,
    decide,
    incident_id_for,
    one_place,
    score_candidates,
    window,
)

T0 = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)
HERE = (34.33, 108.70)
THERE = (34.3345, 108.7031)  # 575 m from HERE
P = LinkParams()


def at(cid: str, place: tuple[float, float] | None, minutes: float = 0, *, phone: str | None = None,
       incident: str | None = None, incident_at: datetime | None = None) -> CaseSketch:
    lat, lon = place if place else (None, None)
    return CaseSketch(cid, "power_fault", T0 + timedelta(minutes=minutes), lat, lon, "610402", phone,
                      None, incident, incident_at)


def registered(location: Place | None, caller: CallerInfo) -> CaseRegistered:
    return CaseRegistered("C1", "power_fault", 2, "phone", "停电", caller, T0, T0 + timedelta(minutes=30),
                          location)


def test_the_sketch_of_a_registered_case() -> None:
    placed = registered(Place(34.33, 108.7, "610402"), CallerInfo("张三", "13912345678", openid="o-1"))
    assert CaseSketch.of(placed) == CaseSketch("C1", "power_fault", T0, 34.33, 108.7, "610402",
                                               "13912345678", "o-1")
    nowhere = registered(None, CallerInfo("", ""))
    assert CaseSketch.of(nowhere) == CaseSketch("C1", "power_fault", T0)  # no place, no number: None


def test_the_box_widens_with_latitude_up_to_a_hundred_times() -> None:
    assert bbox(60.0, 10.0, 1113.2) == pytest.approx((59.99, 9.98, 60.01, 10.02))
    assert bbox(90.0, 10.0, 1113.2) == pytest.approx((89.99, 9.0, 90.01, 11.0))  # cos floored at 0.01


def test_a_place_score_falls_half_with_distance_and_half_with_time() -> None:
    d = geodesic_m(*HERE, *THERE)
    [match] = score_candidates(at("C2", THERE, minutes=21), [at("C1", HERE)], P)
    assert match == Match("C1", "same_place", round(1 - 0.5 * d / 1000 - 0.5 * 21 / 60, 4), True,
                          "610402", None)
    assert match.score == 0.5375  # 1 - 0.2875 - 0.175, to four places


def test_the_radius_and_both_windows_include_their_bounds() -> None:
    exact = LinkParams(radius_m=geodesic_m(*HERE, *THERE))
    assert [m.score for m in score_candidates(at("C2", THERE), [at("C1", HERE)], exact)] == [0.5]
    assert [m.near for m in score_candidates(at("C2", HERE, 60), [at("C1", HERE)], P)] == [True]
    late = at("C2", None, P.caller_window_min, phone="13912345678")
    assert score_candidates(late, [at("C1", HERE, phone="13912345678", incident="I1")], P) == [
        Match("C1", "same_caller", 1.0, False, "610402", "I1")]


def test_the_same_caller_close_by_counts_as_near() -> None:
    [match] = score_candidates(at("C2", THERE, 5, phone="139"), [at("C1", HERE, phone="139")], P)
    assert match == Match("C1", "same_caller", 1.0, True, "610402", None)


def test_half_a_coordinate_places_a_case_nowhere() -> None:
    half = CaseSketch("C1", "power_fault", T0, 34.33, None, "610402", "139")
    assert score_candidates(at("C2", HERE, phone="139"), [half], P) == [
        Match("C1", "same_caller", 1.0, False, "610402", None)]
    new = CaseSketch("C2", "power_fault", T0, None, 108.7, "610402", "139")
    assert [m.near for m in score_candidates(new, [at("C1", HERE, phone="139")], P)] == [False]


def test_an_incident_id_is_the_seed_cases_id_with_an_i() -> None:
    assert incident_id_for("C20260715000042") == "I20260715000042"


def test_joining_the_incident_of_unknown_age_before_a_known_one() -> None:
    """An incident whose seed left the window is older than any whose seed is still in it."""
    old = at("C1", HERE, -30, incident="I0")
    young = at("C3", HERE, -10, incident="I3", incident_at=T0 - timedelta(minutes=20))
    decision = decide(at("C9", THERE), [young, old], P, {"I0": HERE, "I3": THERE})
    assert decision.incident == IncidentDecision("I0", False, ("C9",), "610402", "power_fault",
                                                 absorbed=("I3",))


def test_incidents_merge_within_one_and_a_half_radii_only() -> None:
    d = geodesic_m(*HERE, *THERE)
    assert one_place(HERE, THERE, LinkParams(radius_m=d / 1.5))
    assert not one_place(HERE, THERE, LinkParams(radius_m=d / 2))


def test_an_incident_opens_at_the_mean_place_of_its_cases() -> None:
    cases = [at("C1", HERE, -20), at("C2", THERE, -10)]
    decision = decide(at("C3", (34.3315, 108.7040)), cases, P)
    assert decision.incident == IncidentDecision(
        "I3", True, ("C3", "C2", "C1"), "610402", "power_fault",
        pytest.approx((34.33 + 34.3345 + 34.3315) / 3), pytest.approx((108.70 + 108.7031 + 108.7040) / 3))


def test_the_candidate_search_looks_back_over_the_longer_window() -> None:
    """The SQL candidate search keeps cases for `window`: a shorter look-back would miss links."""
    assert window(P) == timedelta(minutes=1440)
    assert window(LinkParams(window_min=2000)) == timedelta(minutes=2000)


def test_an_open_incident_takes_a_case_after_a_lull_within_the_caller_window_only() -> None:
    """With no neighbour within the window, a member of an open incident within the radius gives
    the case its home at any age up to the caller window (the longest look-back), not beyond."""
    member = at("C1", HERE, -180, incident="I1")
    assert decide(at("C9", THERE), [member], P, {"I1": HERE}).incident == IncidentDecision(
        "I1", False, ("C9",), "610402", "power_fault")
    stale = at("C1", HERE, -P.caller_window_min - 1, incident="I1")
    assert decide(at("C9", THERE), [stale], P, {"I1": HERE}).incident is None
