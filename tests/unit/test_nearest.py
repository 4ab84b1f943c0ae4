"""dispatch.gis.nearest: k-nearest against brute force, filters, scoring, batch assignment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.gis.batch import UNASSIGNED, WaitingCase, assign_batch
from dispatch.gis.geo import geodesic_m, geodesic_many_m
from dispatch.gis.holder import ProviderIndexHolder
from dispatch.gis.nearest import (
    DispatchWeights,
    NearestQuery,
    Provider,
    ProviderSnapshot,
    StatusChange,
    chord_to_geodesic,
    ecef,
)
from gateway.settings import from_env

SKILLS = ("power_repair", "plumbing", "elderly_care")
DISTRICTS = ("610402", "610404", "441900")


@st.composite
def providers(draw: st.DrawFn, max_size: int = 40) -> list[Provider]:
    n = draw(st.integers(min_value=1, max_value=max_size))
    items = []
    for i in range(n):
        items.append(
            Provider(
                id=f"P{i}",
                name=f"provider {i}",
                lat=draw(st.floats(min_value=34.0, max_value=34.5)),
                lon=draw(st.floats(min_value=108.4, max_value=109.0)),
                skills=frozenset(draw(st.sets(st.sampled_from(SKILLS), min_size=1))),
                capacity=draw(st.integers(min_value=0, max_value=3)),
                districts=frozenset(draw(st.sets(st.sampled_from(DISTRICTS), max_size=2))),
                available=draw(st.booleans()),
                load=draw(st.integers(min_value=0, max_value=2)),
            )
        )
    return items


def eligible(p: Provider, q: NearestQuery) -> bool:
    if q.skill is not None and q.skill not in p.skills:
        return False
    if q.need_capacity and not (p.available and p.load < p.capacity):
        return False
    if q.available_only and not p.available:
        return False
    return q.district is None or not p.districts or q.district in p.districts


@settings(max_examples=150, deadline=None)
@given(
    providers(),
    st.floats(min_value=33.9, max_value=34.6),
    st.floats(min_value=108.3, max_value=109.1),
    st.integers(min_value=1, max_value=12),
    st.sampled_from((None, *SKILLS)),
    st.sampled_from((None, *DISTRICTS)),
    st.booleans(),
)
def test_k_nearest_equals_brute_force_geodesic_order(
    items: list[Provider], lat: float, lon: float, k: int, skill: str | None, district: str | None, need: bool
) -> None:
    query = NearestQuery(lat, lon, k=k, skill=skill, district=district, need_capacity=need)
    found = ProviderSnapshot.build(items).nearest(query)
    pool = [p for p in items if eligible(p, query)]
    expected = sorted(geodesic_m(lat, lon, p.lat, p.lon) for p in pool)[:k]
    got = [c.distance_m for c in found]
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-3)
    for c in found:
        p = next(p for p in items if p.id == c.provider_id)
        assert eligible(p, query)
        assert c.distance_m == pytest.approx(geodesic_m(lat, lon, p.lat, p.lon), rel=1e-6, abs=1e-3)


def test_chord_conversion_is_the_geodesic_within_a_millionth() -> None:
    rng = np.random.default_rng(1)
    lats, lons = 34.3 + rng.uniform(-0.9, 0.9, 500), 108.7 + rng.uniform(-0.9, 0.9, 500)
    xyz = ecef(lats, lons)
    chord = np.linalg.norm(xyz - ecef([34.3], [108.7])[0], axis=1)
    exact = geodesic_many_m(34.3, 108.7, lats, lons)
    np.testing.assert_allclose(chord_to_geodesic(chord, 34.3), exact, rtol=1e-6)
    far_lats, far_lons = np.array([23.0, 40.0]), np.array([113.7, 116.4])  # Dongguan, Beijing: ~1,000 km
    far = np.linalg.norm(ecef(far_lats, far_lons) - ecef([34.3], [108.7])[0], axis=1)
    np.testing.assert_allclose(
        chord_to_geodesic(far, 34.3), geodesic_many_m(34.3, 108.7, far_lats, far_lons), rtol=1e-3
    )


def provider(pid: str, lat: float, lon: float, **kw: object) -> Provider:
    fields: dict[str, object] = {"skills": frozenset({"plumbing"}), "capacity": 2}
    fields.update(kw)
    return Provider(pid, pid, lat, lon, **fields)  # type: ignore[arg-type]


def test_filters_skill_availability_capacity_and_district() -> None:
    snap = ProviderSnapshot.build(
        [
            provider("near-busy", 34.30, 108.70, load=2),
            provider("near-off", 34.30, 108.701, available=False),
            provider("wrong-skill", 34.30, 108.702, skills=frozenset({"locksmith"})),
            provider("other-district", 34.30, 108.703, districts=frozenset({"610404"})),
            provider("ok", 34.30, 108.75, districts=frozenset({"610402"})),
        ]
    )
    q = NearestQuery(34.30, 108.70, k=5, skill="plumbing", district="610402")
    assert [c.provider_id for c in snap.nearest(q)] == ["ok"]
    relaxed = NearestQuery(34.30, 108.70, k=5, need_capacity=False, available_only=False)
    assert [c.provider_id for c in snap.nearest(relaxed)][:2] == ["near-busy", "near-off"]
    assert snap.nearest(NearestQuery(34.3, 108.7, skill="unknown")) == ()


def test_status_changes_apply_without_rebuilding_trees() -> None:
    snap = ProviderSnapshot.build([provider("a", 34.3, 108.7), provider("b", 34.3, 108.8)])
    changed = snap.with_status([StatusChange("a", available=False), StatusChange("b", load=1)])
    assert changed.layout is snap.layout
    assert [c.provider_id for c in changed.nearest(NearestQuery(34.3, 108.7))] == ["b"]
    assert changed.status("b") == (True, 1)
    assert snap.status("a") == (True, 0)  # the old snapshot is untouched


def test_score_weighs_distance_skill_and_load() -> None:
    snap = ProviderSnapshot.build(
        [
            provider("near-loaded", 34.30, 108.70, load=1, capacity=2),
            provider("farther-idle", 34.30, 108.72, skills=frozenset({"plumbing", "elderly_care"})),
        ]
    )
    q = NearestQuery(34.30, 108.70, preferred_skills=frozenset({"elderly_care"}))
    by_distance = DispatchWeights(distance=1.0, skill=0.0, load=0.0)
    assert snap.best(q, by_distance).provider_id == "near-loaded"  # type: ignore[union-attr]
    assert snap.best(q, DispatchWeights(distance=1.0, skill=0.0, load=5.0)).provider_id == "farther-idle"  # type: ignore[union-attr]
    assert snap.best(q, DispatchWeights(distance=1.0, skill=5.0, load=0.0)).provider_id == "farther-idle"  # type: ignore[union-attr]
    far = snap.nearest(q, by_distance)[1]
    assert far.score == pytest.approx(far.distance_m / 1000.0)


def test_weights_from_configuration() -> None:
    env = {"INTAKE_DISPATCH_WEIGHT_DISTANCE": "2.5", "INTAKE_DISPATCH_WEIGHT_LOAD": "0"}
    assert from_env(env).dispatch.weights == DispatchWeights(distance=2.5, load=0.0)


def brute_force_objective(snap: ProviderSnapshot, cases: list[WaitingCase], w: DispatchWeights) -> float:
    items = snap.layout.providers
    best = float("inf")
    for choice in itertools.product([None, *range(len(items))], repeat=len(cases)):
        total, used = 0.0, dict.fromkeys(range(len(items)), 0)
        feasible = True
        for case, j in zip(cases, choice, strict=True):
            if j is None:
                total += UNASSIGNED + w.priority * (5 - case.priority)
                continue
            p = items[j]
            q = case.query(len(items))
            if not eligible(p, q) or p.load + used[j] >= p.capacity:
                feasible = False
                break
            util = (p.load + used[j]) / p.capacity
            total += w.distance * geodesic_m(case.lat, case.lon, p.lat, p.lon) / 1000.0 + w.load * util
            used[j] += 1
        if feasible:
            best = min(best, total)
    return best


def batch_objective(
    result_cases: list[WaitingCase], snap: ProviderSnapshot, w: DispatchWeights, dense: bool
) -> float:
    result = assign_batch(snap, result_cases, w, k=10, dense=dense)
    waiting = {c.case_id: c for c in result_cases}
    total = sum(a.score for a in result.assignments)
    total += sum(UNASSIGNED + w.priority * (5 - waiting[cid].priority) for cid in result.unassigned)
    assert {a.case_id for a in result.assignments} | set(result.unassigned) == set(waiting)
    return total


@settings(max_examples=40, deadline=None)
@given(
    providers(max_size=4),
    st.lists(
        st.tuples(
            st.floats(34.0, 34.5),
            st.floats(108.4, 109.0),
            st.sampled_from((None, *SKILLS)),
            st.integers(1, 4),
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_batch_assignment_is_optimal(
    items: list[Provider], raw: list[tuple[float, float, str | None, int]], dense: bool
) -> None:
    snap = ProviderSnapshot.build(items)
    cases = [
        WaitingCase(f"C{i}", lat, lon, skill, priority=pr) for i, (lat, lon, skill, pr) in enumerate(raw)
    ]
    w = DispatchWeights(distance=1.0, skill=0.0, load=3.0, priority=10.0)
    assert batch_objective(cases, snap, w, dense) == pytest.approx(
        brute_force_objective(snap, cases, w), rel=1e-6
    )


def test_batch_respects_capacity_and_serves_the_urgent_first() -> None:
    snap = ProviderSnapshot.build(
        [provider("a", 34.3, 108.7, capacity=2, load=1), provider("b", 34.4, 108.9, capacity=1)]
    )
    cases = [WaitingCase(f"C{i}", 34.3, 108.7 + i * 0.001, "plumbing", priority=4) for i in range(3)]
    cases.append(WaitingCase("urgent", 34.3, 108.75, "plumbing", priority=1))
    for dense in (True, False):
        result = assign_batch(snap, cases, k=4, dense=dense)
        counts: dict[str, int] = {}
        for a in result.assignments:
            counts[a.provider_id] = counts.get(a.provider_id, 0) + 1
        assert counts == {"a": 1, "b": 1}
        assert "urgent" in {a.case_id for a in result.assignments}
        assert len(result.unassigned) == 2
        loads = {c.provider_id: c.load for c in result.status_changes(snap)}
        assert loads == {"a": 2, "b": 1}


def test_batch_over_many_cases_uses_each_slot_once() -> None:
    rng = np.random.default_rng(7)
    items = [
        provider(
            f"P{i}",
            float(34 + rng.random() * 0.3),
            float(108.5 + rng.random() * 0.3),
            capacity=int(rng.integers(1, 4)),
        )
        for i in range(300)
    ]
    snap = ProviderSnapshot.build(items)
    cases = [
        WaitingCase(f"C{i}", float(34 + rng.random() * 0.3), float(108.5 + rng.random() * 0.3))
        for i in range(500)
    ]
    result = assign_batch(snap, cases, k=6, dense=False)
    counts: dict[str, int] = {}
    for a in result.assignments:
        counts[a.provider_id] = counts.get(a.provider_id, 0) + 1
    assert all(counts[pid] <= snap.provider(pid).capacity for pid in counts)
    assert len(result.assignments) + len(result.unassigned) == 500


async def test_holder_swaps_after_background_rebuild() -> None:
    holder = await ProviderIndexHolder.create([provider("a", 34.3, 108.7)])
    before = holder.snapshot
    holder.upsert(provider("b", 34.3, 108.7001))
    holder.set_status(StatusChange("a", load=2))  # lands while the rebuild runs
    assert holder.snapshot.layout is before.layout
    after = await holder.wait_idle()
    assert len(after) == 2
    assert after.status("a") == (True, 2)
    assert [c.provider_id for c in after.nearest(NearestQuery(34.3, 108.7))] == ["b"]
    holder.remove("b")
    assert len(await holder.wait_idle()) == 1
    await holder.close()


@pytest.mark.parametrize(("lat", "lon"), [(0.0, 0.0), (-90.0, 0.0), (90.0, 0.0), (40.0, -74.0),
                                          (-34.0, 151.0), (34.3, 180.0), (23.0, 113.7)])
def test_far_distances_are_the_wgs84_geodesic_within_a_thousandth(lat: float, lon: float) -> None:
    """The contract's 0.1 % holds at any distance, not only at city scale: a query from outside
    every district (0,0, a pole, another continent) reports the WGS84 geodesic, sorted."""
    items = [provider(f"P{i}", 34.0 + 0.05 * i, 108.5 + 0.07 * i) for i in range(12)]
    items.append(provider("FAR", -33.9, 151.2))  # Sydney
    found = ProviderSnapshot.build(items).nearest(NearestQuery(lat, lon, k=13))
    distances = [c.distance_m for c in found]
    assert distances == sorted(distances)
    for c in found:
        exact = geodesic_m(lat, lon, c.lat, c.lon)
        assert c.distance_m == pytest.approx(exact, rel=1e-3)
