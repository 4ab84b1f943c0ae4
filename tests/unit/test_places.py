"""Addresses to places: the matcher's rules and its accuracy, the generated gazetteer, the event."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.places import build, labelled_set, measure, unknown_set
from dispatch.cases.events import CallerInfo, CaseLocated, CaseRegistered, MatchedPlace, Place
from dispatch.cases.state import CaseState
from dispatch.core.messages import from_recorded, to_new_event
from dispatch.linking.clustering import CaseSketch, LinkParams, MemoryCandidates
from dispatch.places.gazetteer import Gazetteer, GazetteerEntry, sounds_alike
from eventstore import RecordedEvent

GIS = Path(__file__).resolve().parents[2] / "gis_data"
AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
DISTRICTS = {"610402": "秦都区", "610404": "渭城区", "610481": "兴平市"}
ENTRIES = [
    GazetteerEntry("Q1", "金山社区", "community", "610402", "秦都区", 34.330, 108.700, ("金山社区居委会",)),
    GazetteerEntry("W1", "金山社区", "community", "610404", "渭城区", 34.380, 108.760),
    GazetteerEntry("Q2", "人民路", "street", "610402", "秦都区", 34.335, 108.710),
    GazetteerEntry("W2", "人民路", "street", "610404", "渭城区", 34.385, 108.770),
    GazetteerEntry("Q3", "金桥超市", "landmark", "610402", "秦都区", 34.332, 108.705),
    GazetteerEntry("W3", "文汇路", "street", "610404", "渭城区", 34.370, 108.740),
    GazetteerEntry("X1", "孙家庄村", "village", "610481", "兴平市", 34.300, 108.490, ("孙家庄",)),
    GazetteerEntry("X2", "马庄", "village", "610481", "兴平市", 34.310, 108.450),
]


@pytest.fixture(scope="module")
def small() -> Gazetteer:
    return Gazetteer(ENTRIES, DISTRICTS, ("陕西省", "咸阳市"))


@pytest.fixture(scope="module")
def demo() -> Gazetteer:
    return build()


@pytest.mark.parametrize(("text", "place"), [
    ("秦都区金山社区3号楼停电了", "Q1"),  # the district settles a name two districts share
    ("渭城金山社区门口路灯不亮", "W1"),  # short district name
    ("金桥超市对面有电线掉下来了", "Q3"),  # a landmark, relative
    ("陕西省咸阳市秦都区人民路12号金桥超市", "Q3"),  # the most specific place named
    ("文汇路口", "W3"),
    ("孙佳庄村停电", "X1"),  # a typo (a homophone)
    ("孙佳庄停电", "X1"),  # a typo in a three-character alias
    ("今山社区 秦都", "Q1"),  # flat and retroflex: 今 for 金
    ("金桥超对面", "Q3"),  # a dropped character
    ("兴平马庄3组", "X2"),  # a two-character name, exactly
    ("文汇路金山社区5栋", "W1"),  # without a district: the district both names lie in
])
def test_texts_that_name_a_place_are_located_there(small: Gazetteer, text: str, place: str) -> None:
    found = small.locate(text)
    assert found is not None and found.entry.id == place, (text, found)


@pytest.mark.parametrize("text", [
    "金山社区停电了",  # two districts have one: left for an agent, not guessed
    "人民路",
    "人民路金山社区5栋",  # both districts have both
    "我家停电了",
    "社区居委会门口",  # words that say what kind of place, never which
    "秦都区银山社区",  # one character away but another sound: another place, not a typo
    "秦都区金水社区",  # 水 does not sound like 山
    "兴平马家",  # two characters name a place only exactly
    "文化路",  # a place the gazetteer does not have, one character from 文汇路
])
def test_texts_that_do_not_name_one_place_are_left_for_an_agent(small: Gazetteer, text: str) -> None:
    assert small.locate(text) is None


def test_only_characters_that_sound_alike_are_typos() -> None:
    assert sounds_alike("今山社区", "金山社区") and sounds_alike("金三社区", "金山社区")
    assert sounds_alike("金山社", "金山社区") and sounds_alike("金山山社区", "金山社区")
    assert not sounds_alike("银山社区", "金山社区")
    assert not sounds_alike("青山超市", "常青超市")


def test_the_labelled_set_is_reproducible_and_large_enough(demo: Gazetteer) -> None:
    first = labelled_set(demo.entries, 500, 7)
    assert first == labelled_set(demo.entries, 500, 7)
    assert len(first) == 500 and {i.style for i in first} == {"full", "partial", "typo", "landmark", "bare"}
    assert any("对面" in i.text or "旁边" in i.text or "附近" in i.text for i in first)


def test_thresholds_hold_on_a_fixed_subset(demo: Gazetteer) -> None:
    """The figures of bench/RESULTS.md, on 200 addresses: >= 85 % located right, <= 2 % wrong."""
    total, per, wrong = measure(demo, labelled_set(demo.entries, 200, 11))
    assert total.located >= 0.85, per
    assert total.wrong_rate <= 0.02, wrong
    unknown = unknown_set(demo.entries, 100, 11)
    assert sum(demo.locate(text) is not None for text in unknown) <= 2  # places it does not have


def test_the_generator_reproduces_the_committed_gazetteer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(GIS))
    spec = importlib.util.spec_from_file_location("generate_places", GIS / "generate_places.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, features in module.generate(module.DEFAULT_SEED, GIS / "districts.geojson").items():
        assert module.generate_demo.dump(features) == (GIS / name).read_text(encoding="utf-8"), name
    sys.modules.pop("generate_demo", None)


def test_the_demo_gazetteer_is_valid_reference_data() -> None:
    from dispatch.gis.reference import parse_feature

    features = json.loads((GIS / "demo_places.geojson").read_text(encoding="utf-8"))["features"]
    items = [parse_feature(f, i) for i, f in enumerate(features)]
    assert len(items) >= 500 and len({i.id for i in items}) == len(items)
    assert {i.properties["type"] for i in items} == {"community", "village", "street", "landmark"}
    assert "`demo_places.geojson`" in (GIS / "PROVENANCE.md").read_text(encoding="utf-8")


def _record(evt: object, version: int) -> RecordedEvent:
    new = to_new_event(evt)  # type: ignore[arg-type]
    return RecordedEvent(version + 1, "case-C1", version, new.type, new.schema_version, new.data, {}, AT)


def test_a_located_case_folds_its_place_source_and_match() -> None:
    registered = CaseRegistered("C1", "power_fault", 2, "sms", "金山社区停电",
                                CallerInfo(phone="13800138000"), AT, AT, address="金山社区")
    located = CaseLocated("C1", Place(34.33, 108.7, "610402", "秦都区"), "gazetteer", AT,
                          MatchedPlace("Q1", "金山社区", "community", 100.0, "金山社区"), "policy:places")
    state = CaseState("C1")
    for version, evt in enumerate((registered, located)):
        decoded = from_recorded(_record(evt, version))
        assert decoded == evt
        state.apply(decoded, version)
    assert state.location == located.location and state.location_source == "gazetteer"
    assert state.matched_place is not None and state.matched_place.id == "Q1"


async def test_a_case_located_later_becomes_a_candidate_by_place() -> None:
    source = MemoryCandidates(LinkParams())
    await source.remember(CaseSketch("C1", "power_fault", AT, phone="13800138000"))
    probe = CaseSketch("C2", "power_fault", AT, 34.3301, 108.7001)
    assert await source.candidates(probe) == []
    await source.relocate("C1", 34.33, 108.70, "610402")
    assert [c.case_id for c in await source.candidates(probe)] == ["C1"]
