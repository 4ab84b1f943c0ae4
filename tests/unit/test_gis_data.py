"""gis_data: the real districts and the seeded demo reference data are valid."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import shapely
from shapely.geometry import shape

GIS = Path(__file__).resolve().parents[2] / "gis_data"
PHONE = re.compile(r"^1[3-9]\d{9}$")
FILES = ("districts", "demo_providers", "demo_units", "demo_agents", "demo_elders")


def load(name: str) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = json.loads((GIS / f"{name}.geojson").read_text(encoding="utf-8"))[
        "features"
    ]
    return features


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_demo", GIS / "generate_demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fifteen_valid_districts() -> None:
    districts = load("districts")
    assert len(districts) == 15
    assert len({f["properties"]["adcode"] for f in districts}) == 15
    assert sum(f["properties"]["adcode"].startswith("6104") for f in districts) == 14
    for f in districts:
        assert f["properties"]["kind"] == "district"
        geom = shape(f["geometry"])
        assert geom.is_valid
        assert geom.geom_type in {"Polygon", "MultiPolygon"}


@pytest.mark.parametrize("name", FILES)
def test_files_are_small_and_six_decimal(name: str) -> None:
    path = GIS / f"{name}.geojson"
    assert path.stat().st_size < 5_000_000
    assert not re.search(r"\d\.\d{7,}", path.read_text(encoding="utf-8"))


def test_every_provider_sits_in_a_district_it_serves() -> None:
    polygons = {f["properties"]["adcode"]: shape(f["geometry"]) for f in load("districts")}
    providers = load("demo_providers")
    assert len(providers) >= 2000
    for f in providers:
        props = f["properties"]
        lon, lat = f["geometry"]["coordinates"]
        assert props["kind"] == "provider"
        assert props["districts"]
        assert set(props["districts"]) <= set(polygons)
        assert any(shapely.contains_xy(polygons[code], lon, lat) for code in props["districts"])
        assert props["skills"]
        assert isinstance(props["capacity"], int)
        assert props["capacity"] >= 1
        assert PHONE.match(props["phone"])


@pytest.mark.parametrize("name", FILES[1:])
def test_ids_are_unique(name: str) -> None:
    ids = [f["properties"]["id"] for f in load(name)]
    assert len(ids) == len(set(ids))


def test_elders_have_devices_and_contacts() -> None:
    elders = load("demo_elders")
    devices = [d for f in elders for d in f["properties"]["devices"]]
    assert len(devices) == len(set(devices))
    assert all(re.match(r"^E\d{4}$", d) for d in devices)
    for f in elders:
        props = f["properties"]
        assert PHONE.match(props["phone"])
        assert props["contacts"]
        for contact in props["contacts"]:
            assert contact["role"] in {"family", "liaison", "doctor", "security"}
            assert PHONE.match(contact["phone"])


def test_seed_reproduces_the_committed_files() -> None:
    module = generator()
    generated = module.generate(module.DEFAULT_SEED, GIS / "districts.geojson")
    for name, features in generated.items():
        assert module.dump(features) == (GIS / name).read_text(encoding="utf-8"), name
