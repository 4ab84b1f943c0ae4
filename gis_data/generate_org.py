"""Generate the demo organisation of Xianyang's 12345 / 95598 intake from the other demo files.

Run from the repository root (same inputs, same bytes; there is nothing random in it):

    .venv/bin/python gis_data/generate_org.py [--out-dir gis_data]

Writes `demo_org.geojson`: features of kind `org` (CONTRACT.md: id, name, level
`city|subcentre|unit`, parent, districts), no geometry:
- the city centre `XY12345` serving every Xianyang district;
- one sub-centre `SC<adcode>` per Xianyang district in `districts.geojson`, serving it;
- the grid's branch `GRID` (a sub-centre without districts: power faults reach it by
  their category, `INTAKE_ORG_ROUTES`) under the city;
- every unit of `demo_units.geojson` under its district's sub-centre (a unit of a district
  without a sub-centre, Dongguan's, directly under the city);
- every power crew (`type: crew`) of `demo_providers.geojson` in Xianyang as a unit under
  the grid's branch, serving the districts it serves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import generate_demo

HERE = Path(__file__).resolve().parent
DEFAULT_SEED = 0  # unused: the tree follows the other files
CITY = "XY12345"
GRID = "GRID"
CITY_NAME = "咸阳市"


def _features(path: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["features"]
    return found


def node(node_id: str, name: str, level: str, parent: str | None, districts: list[str]) -> dict[str, Any]:
    """One `org` feature."""
    props: dict[str, Any] = {"kind": "org", "id": node_id, "name": name, "level": level}
    if parent is not None:
        props["parent"] = parent
    props["districts"] = districts
    return {"type": "Feature", "properties": props, "geometry": None}


def generate(seed: int, districts_path: Path) -> dict[str, list[Any]]:
    """The demo tree (`seed` is unused), from the districts, units and providers beside `districts_path`."""
    here = districts_path.parent
    districts = [f["properties"] for f in _features(districts_path)
                 if f["properties"].get("city") == CITY_NAME]
    codes = [d["adcode"] for d in districts]
    served = set(codes)
    tree = [node(CITY, "咸阳市12345市民服务热线中心", "city", None, codes)]
    tree += [node(f"SC{d['adcode']}", f"{d['name']}12345分中心", "subcentre", CITY, [d["adcode"]])
             for d in districts]
    tree.append(node(GRID, "国网咸阳供电公司抢修指挥中心", "subcentre", CITY, []))
    for unit in _features(here / "demo_units.geojson"):
        p = unit["properties"]
        parent = f"SC{p['district']}" if p["district"] in served else CITY
        tree.append(node(p["id"], p["name"], "unit", parent, [p["district"]]))
    for provider in _features(here / "demo_providers.geojson"):
        p = provider["properties"]
        if p.get("type") == "crew" and p["district"] in served:
            tree.append(node(p["id"], p["name"], "unit", GRID, [d for d in p["districts"] if d in served]))
    return {"demo_org.geojson": tree}


if __name__ == "__main__":
    sys.exit(generate_demo.main(make=generate, what="the demo organisation", seed=DEFAULT_SEED))
