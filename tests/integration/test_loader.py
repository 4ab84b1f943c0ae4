"""`intake load` on a real database: demo files in, read models out, reloads idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.cli.loader import catch_up_reference, load_paths

GIS = Path(__file__).resolve().parents[2] / "gis_data"


async def test_demo_data_loads_once_and_projects(services: Any) -> None:
    paths = sorted(GIS.glob("*.geojson"))
    first = await load_paths(services, paths)
    assert first.errors == []
    assert first.outcomes["recorded"] > 2000
    await catch_up_reference(services)
    async with services.pool.acquire() as conn:
        providers = await conn.fetchval("SELECT count(*) FROM ref_providers")
        districts = await conn.fetchval("SELECT count(*) FROM ref_districts")
        devices = await conn.fetchval("SELECT count(*) FROM ref_devices")
        elders = await conn.fetchval("SELECT count(*) FROM ref_elders")
    assert providers >= 2000 and districts == 15 and devices >= elders > 0

    again = await load_paths(services, paths)
    assert again.outcomes == {"unchanged": first.outcomes["recorded"]}


async def test_changed_item_records_update_and_bad_features_are_listed(services: Any, tmp_path: Path) -> None:
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [108.7, 34.33]},
               "properties": {"kind": "provider", "id": "PX", "name": "测试电工", "skills": ["power_repair"],
                              "capacity": 1, "phone": "13800000000"}}
    bad = {"type": "Feature", "geometry": None, "properties": {"kind": "provider", "id": "PY"}}
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature, bad]}), "utf-8")
    stats = await load_paths(services, [path, tmp_path / "missing.geojson"])
    assert stats.outcomes == {"recorded": 1}
    assert len(stats.errors) == 2
    assert "provider PY: missing name, skills, capacity, phone" in stats.errors[0]
    assert "cannot read" in stats.errors[1]

    # a CSV with one bad row: the others load, the refusal names the line and the column
    table = tmp_path / "p.csv"
    table.write_text("kind,id,name,skills,capacity,phone,lat,lon\n"
                     "provider,PC1,电工一,power_repair,2,13800000001,34.33,108.70\n"
                     "provider,PC2,电工二,power_repair,2,13800000002,34.33,abc\n"
                     "provider,PC3,电工三,power_repair,2,13800000003,34.34,108.71\n", "utf-8")
    stats = await load_paths(services, [table])
    assert stats.outcomes == {"recorded": 2}
    assert stats.errors == [f"{table}: line 3: column lon: could not convert string to float: 'abc'"]

    feature["properties"]["capacity"] = 4
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}), "utf-8")
    assert (await load_paths(services, [path])).outcomes == {"updated": 1}
    await catch_up_reference(services)
    async with services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT capacity FROM ref_providers WHERE id = 'PX'") == 4


async def test_an_id_repeated_in_one_file_keeps_the_first_and_refuses_the_rest(services: Any,
                                                                               tmp_path: Path) -> None:
    """Two rows of one file with the same kind and id (a copy-paste in a spreadsheet) no longer
    race each other into the log, the winner left to chance: the first loads, each repeat is
    refused naming both rows."""
    def provider(capacity: int) -> dict[str, Any]:
        return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [108.7, 34.33]},
                "properties": {"kind": "provider", "id": "PD", "name": f"电工{capacity}",
                               "skills": ["power_repair"], "capacity": capacity, "phone": "13800000000"}}
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection",
                                "features": [provider(1), provider(2), provider(3)]}), "utf-8")
    stats = await load_paths(services, [path])
    assert stats.outcomes == {"recorded": 1}
    assert stats.errors == [f"{path}: feature 1 (provider PD): repeats the id of feature 0",
                            f"{path}: feature 2 (provider PD): repeats the id of feature 0"]
    assert [e.data["properties"]["capacity"] for e in await services.store.read_stream("provider-PD")] == [1]
