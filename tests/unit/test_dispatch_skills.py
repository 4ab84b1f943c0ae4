"""The category -> skills table and the suggestions built on it, over the demo's real providers:
an outage is never offered to an elderly-care or medical company, an elder's alarm never to a
power crew, and automatic dispatch requires the table's skill."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from dispatch.cases.registration import CATEGORIES
from dispatch.gis.auto_dispatch import Waiting, choose
from dispatch.gis.batch import WaitingCase
from dispatch.gis.config import DEFAULT_SKILLS
from dispatch.gis.nearest import DispatchWeights, NearestQuery, Provider, ProviderSnapshot
from dispatch.gis.skills import CATEGORY_SKILLS, need_of, qualifies, suggestions

GIS = Path(__file__).resolve().parents[2] / "gis_data"
CARE_WORDS = ("养老", "医疗")
POWER_SKILLS = {"power_repair", "line_repair", "transformer"}


def demo_providers() -> list[Provider]:
    features = json.loads((GIS / "demo_providers.geojson").read_text(encoding="utf-8"))["features"]
    out = []
    for f in features:
        p = f["properties"]
        lon, lat = f["geometry"]["coordinates"]
        out.append(Provider(p["id"], p["name"], lat, lon, frozenset(p["skills"]), p["capacity"],
                            frozenset(p["districts"]), p.get("available", True), 0, p.get("district")))
    return out


@pytest.fixture(scope="module")
def snapshot() -> ProviderSnapshot:
    return ProviderSnapshot.build(demo_providers())


def points(n: int = 60) -> list[tuple[float, float]]:
    rnd = random.Random(21)
    return [(34.33 + rnd.uniform(-0.05, 0.05), 108.70 + rnd.uniform(-0.08, 0.08)) for _ in range(n)]


def test_the_table_names_real_categories_and_the_defaults_come_from_it() -> None:
    assert set(CATEGORY_SKILLS) <= set(CATEGORIES)
    assert DEFAULT_SKILLS == {"power_fault": "power_repair", "voltage_anomaly": "power_repair"}
    assert qualifies("power_fault", ["line_repair"])
    assert not qualifies("power_fault", ["elderly_care", "medical"])
    assert qualifies("elderly_emergency", ["elderly_care"])
    assert not qualifies("elderly_emergency", ["transformer"])
    assert need_of("complaint") is None and not qualifies("complaint", ["power_repair"])  # a unit's job


def test_demo_care_companies_have_no_power_skill_and_crews_no_care_skill() -> None:
    for p in demo_providers():
        if any(word in p.name for word in CARE_WORDS):
            assert not p.skills & POWER_SKILLS, p
        if "抢修" in p.name:
            assert p.skills <= POWER_SKILLS, p


def test_suggestions_keep_to_the_category_and_rank_by_score(snapshot: ProviderSnapshot) -> None:
    for lat, lon in points():
        query = NearestQuery(lat, lon, k=5)
        power = suggestions(snapshot, query, CATEGORY_SKILLS["power_fault"])
        alarm = suggestions(snapshot, query, CATEGORY_SKILLS["elderly_emergency"])
        assert power and alarm
        assert all(c.skills and set(c.skills) & {"power_repair", "line_repair"} for c in power)
        assert not any(word in c.name for c in power for word in CARE_WORDS)
        assert all(set(c.skills) & {"medical", "elderly_care"} for c in alarm)
        assert not any("抢修" in c.name for c in alarm)
        assert [c.score for c in power] == sorted(c.score for c in power)
        assert len({c.provider_id for c in power}) == len(power) <= 5
    # the merge keeps providers found under either skill: a line crew without power_repair counts
    line_only = [p for p in demo_providers() if p.skills == frozenset({"line_repair"})]
    assert line_only
    p = line_only[0]
    near = suggestions(snapshot, NearestQuery(p.lat, p.lon, k=3, district=p.district),
                       CATEGORY_SKILLS["power_fault"])
    assert p.id in [c.provider_id for c in near]


def test_automatic_dispatch_of_outages_never_reaches_a_care_company(snapshot: ProviderSnapshot) -> None:
    queue = [Waiting(WaitingCase(f"C{i}", lat, lon, DEFAULT_SKILLS["power_fault"], None, 1 + i % 4,
                                 CATEGORY_SKILLS["power_fault"].preferred), 0, ())
             for i, (lat, lon) in enumerate(points(40))]
    names = {p.id: p for p in demo_providers()}
    choices = choose(snapshot, queue, DispatchWeights(), surge_threshold=5)
    assert len(choices) == len(queue)
    for c in choices:
        chosen = names[c.provider_id]
        assert "power_repair" in chosen.skills
        assert not any(word in chosen.name for word in CARE_WORDS), chosen


def test_an_elders_nearest_help_serves_the_elders_district(snapshot: ProviderSnapshot) -> None:
    """The alarm's nearest help is chosen among the providers serving the elder's district, as
    every other lookup is: demo elder ELD00012 in 秦都 (610402) is not given P01254 (3.4 km
    away, serving only 渭城 610404) but the nearest medical provider that serves 秦都."""
    from dispatch.cases.events import Place
    from dispatch.elderly.alarms import nearest_help
    from dispatch.gis.holder import ProviderIndexHolder

    providers = {p.id: p for p in demo_providers()}
    help_ = nearest_help(ProviderIndexHolder(snapshot=snapshot), Place(34.332971, 108.745583, "610402"))
    assert help_ is not None and help_["id"] != "P01254"
    served = providers[str(help_["id"])].districts
    assert not served or "610402" in served
