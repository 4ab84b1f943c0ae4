"""`GET /api/v1/providers/nearest` on the live index, following reference data as it changes."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatch.gis.geo import DistrictIndex, geodesic_m, wgs84_to_gcj02
from dispatch.gis.holder import ProviderIndexHolder
from dispatch.gis.nearest import DispatchWeights
from dispatch.gis.provider_index import ReferenceFollower
from gateway.cli.loader import catch_up_reference, load_paths
from tests.conftest import auth


@dataclass
class Indexes:
    """Where a follower publishes its indexes (the services object, in a process)."""

    provider_index: ProviderIndexHolder | None = None
    districts: DistrictIndex | None = None
    dispatch_weights: DispatchWeights | None = None

GIS = Path(__file__).resolve().parents[2] / "gis_data"
XIANYANG = (34.3296, 108.7093)  # Qindu district, Xianyang


async def wait_for(predicate: Any, within: float = 10.0, describe: Any = lambda: "") -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, f"condition not met in time; {describe()}"
        await asyncio.sleep(0.05)


async def test_nearest_sorted_by_geodesic_distance_and_follows_new_providers(
    services: Any, aiohttp_client: Any, settings: Any, tmp_path: Path
) -> None:
    from gateway.app import create_app

    await load_paths(services, [GIS / "districts.geojson", GIS / "demo_providers.geojson"])
    await catch_up_reference(services)
    client = await aiohttp_client(create_app(settings, services=services))

    async def loaded() -> bool:
        response = await client.get("/api/v1/providers/nearest", params={
            "lat": XIANYANG[0], "lon": XIANYANG[1], "k": 5}, headers=auth("t-dispatcher"))
        return bool(response.status == 200)

    await wait_for(loaded)
    response = await client.get("/api/v1/providers/nearest", params={
        "lat": XIANYANG[0], "lon": XIANYANG[1], "k": 5}, headers=auth("t-dispatcher"))
    items = (await response.json())["items"]
    assert len(items) == 5
    distances = [item["distance_m"] for item in items]
    assert distances == sorted(distances)
    for item in items:
        exact = geodesic_m(XIANYANG[0], XIANYANG[1], item["lat"], item["lon"])
        assert abs(item["distance_m"] - exact) <= exact * 0.001 + 0.01

    glat, glon = wgs84_to_gcj02(*XIANYANG)
    same = await client.get("/api/v1/providers/nearest", params={
        "lat": glat, "lon": glon, "crs": "gcj02", "k": 5}, headers=auth("t-dispatcher"))
    assert [i["id"] for i in (await same.json())["items"]] == [i["id"] for i in items]

    newcomer = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [XIANYANG[1], XIANYANG[0] + 0.0001]},
        "properties": {"kind": "provider", "id": "PNEW", "name": "新来的电工", "skills": ["power_repair"],
                       "capacity": 2, "phone": "13800000009", "districts": []},
    }
    path = tmp_path / "new.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [newcomer]}), "utf-8")
    await load_paths(services, [path])

    last: list[Any] = []

    async def newcomer_first() -> bool:
        found = await client.get("/api/v1/providers/nearest", params={
            "lat": XIANYANG[0], "lon": XIANYANG[1], "k": 1}, headers=auth("t-dispatcher"))
        body = await found.json()
        last[:] = [found.status, body, services.provider_index.rebuilding]
        return bool(body.get("items") and body["items"][0]["id"] == "PNEW")

    await wait_for(newcomer_first, describe=lambda: f"last answer, rebuilding: {last}")


async def test_nearest_rejects_bad_input_and_anonymous(client: Any) -> None:
    anonymous = await client.get("/api/v1/providers/nearest?lat=34.3&lon=108.7")
    assert anonymous.status == 401
    bad = await client.get("/api/v1/providers/nearest?lat=north&lon=108.7", headers=auth("t-dispatcher"))
    assert bad.status == 400
    assert (await bad.json())["error"]["code"]


async def test_lookups_wait_for_the_district_index_too(
    services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider index is published only once the district index exists: an answer given
    before would skip the served-district filter (a first lookup differing from the next)."""
    await load_paths(services, [GIS / "districts.geojson", GIS / "demo_providers.geojson"])
    await catch_up_reference(services)
    published_before: list[bool] = []
    rebuild = ReferenceFollower._rebuild_districts

    async def watched(self: ReferenceFollower) -> None:
        published_before.append(indexes.provider_index is not None)
        await rebuild(self)

    monkeypatch.setattr(ReferenceFollower, "_rebuild_districts", watched)
    indexes = Indexes()
    await ReferenceFollower(services.store, indexes).start()
    assert published_before == [False]
    assert indexes.provider_index is not None
    assert indexes.districts is not None


async def test_a_point_on_a_shared_border_finds_the_providers_of_both_districts_and_empty_is_none(
    services: Any, aiohttp_client: Any, settings: Any, tmp_path: Path
) -> None:
    """A point on the border of 秦都 (610402) and 渭城 (610404) lies in both: the nearest
    power_repair provider is the 渭城 crew P01318 at ~901 m (it does not serve 秦都), not
    the 秦都 one 1,076 m away that the first district in file order alone would give. An empty
    `district=` is no district (as in the other lists), not one that nobody serves."""
    from gateway.app import create_app

    demo = json.loads((GIS / "demo_providers.geojson").read_text(encoding="utf-8"))
    two = [f for f in demo["features"] if f["properties"]["id"] in ("P01243", "P01318")]
    providers = tmp_path / "providers.geojson"
    providers.write_text(json.dumps({"type": "FeatureCollection", "features": two}), encoding="utf-8")
    await load_paths(services, [GIS / "districts.geojson", providers])
    await catch_up_reference(services)
    client = await aiohttp_client(create_app(settings, services=services))
    border = {"lat": 34.355453, "lon": 108.772274, "skill": "power_repair", "k": 3}

    async def loaded() -> bool:
        response = await client.get("/api/v1/providers/nearest", params=border, headers=auth("t-dispatcher"))
        return bool(response.status == 200)

    await wait_for(loaded)
    response = await client.get("/api/v1/providers/nearest", params=border, headers=auth("t-dispatcher"))
    items = (await response.json())["items"]
    assert [i["id"] for i in items] == ["P01318", "P01243"]
    assert [round(i["distance_m"]) for i in items] == [901, 1076]
    empty = await client.get("/api/v1/providers/nearest", params={**border, "district": ""},
                             headers=auth("t-dispatcher"))
    assert (await empty.json())["items"] == items
