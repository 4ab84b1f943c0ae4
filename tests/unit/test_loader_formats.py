"""`intake load` reads what GIS departments hand over: Shapefile (plain or zipped), GeoPackage,
KML and GeoJSON in a projected CRS, reprojected to WGS84; files it cannot use are refused
with the reason."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from dispatch.gis.reference import parse_feature
from gateway.cli.loader import LoadError, read_features

CGCS2000_GK_108E = 4545
"""CGCS2000 / 3-degree Gauss-Kruger CM 108E: the projected CRS Xianyang's surveys use."""
SPOT = (108.7012, 34.3315)


def frame() -> gpd.GeoDataFrame:
    """Two places in WGS84: a community and the block of a supermarket (a Shapefile holds one
    geometry type)."""
    lon, lat = SPOT
    square = shapely.box(lon - 0.004, lat - 0.003, lon + 0.004, lat + 0.003)
    block = shapely.box(lon, lat, lon + 0.0005, lat + 0.0004)
    return gpd.GeoDataFrame(
        {"kind": ["place", "place"], "id": ["G1", "G2"], "name": ["金山社区", "渭阳超市"],
         "type": ["community", "landmark"], "district": ["610402", "610402"],
         "aliases": ["金山社区居委会;金山居委会", None]},
        geometry=[square, block], crs=4326)


def write(tmp_path: Path, fmt: str) -> Path:
    projected = frame().to_crs(CGCS2000_GK_108E)
    if fmt == "shp":
        projected.to_file(tmp_path / "places.shp")
        return tmp_path / "places.shp"
    if fmt == "zip":
        projected.to_file(tmp_path / "places.shp")
        with zipfile.ZipFile(tmp_path / "places.zip", "w") as archive:
            for part in tmp_path.glob("places.*"):
                if part.suffix != ".zip":
                    archive.write(part, f"places/{part.name}")
        return tmp_path / "places.zip"
    if fmt == "gpkg":
        projected.to_file(tmp_path / "places.gpkg", driver="GPKG")
        return tmp_path / "places.gpkg"
    if fmt == "kml":
        projected.to_file(tmp_path / "places.kml", driver="KML")  # KML is WGS84 by definition
        return tmp_path / "places.kml"
    document = json.loads(projected.to_json())
    for feature in document["features"]:  # in GeoJSON a list is a JSON array
        aliases = feature["properties"].pop("aliases")
        if aliases:
            feature["properties"]["aliases"] = aliases.split(";")
    document["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{CGCS2000_GK_108E}"}}
    (tmp_path / "places.geojson").write_text(json.dumps(document), "utf-8")
    return tmp_path / "places.geojson"


@pytest.mark.parametrize("fmt", ["shp", "zip", "gpkg", "kml", "geojson"])
def test_each_format_loads_in_wgs84(tmp_path: Path, fmt: str) -> None:
    items = [parse_feature(f, i) for i, f in enumerate(read_features(write(tmp_path, fmt)))]
    by_id = {item.id: item for item in items}
    assert set(by_id) == {"G1", "G2"}
    community, shop = by_id["G1"], by_id["G2"]
    assert community.properties["name"] == "金山社区" and community.properties["district"] == "610402"
    assert community.properties["aliases"] == ["金山社区居委会", "金山居委会"]
    assert "aliases" not in shop.properties
    assert shop.geometry is not None and community.geometry is not None
    corner = min(shop.geometry["coordinates"][0])
    assert abs(corner[0] - SPOT[0]) < 2e-6 and abs(corner[1] - SPOT[1]) < 2e-6  # within 0.2 m
    assert community.geometry["type"] == "Polygon"
    ring = community.geometry["coordinates"][0]
    assert min(p[0] for p in ring) == pytest.approx(SPOT[0] - 0.004, abs=2e-6)


@pytest.mark.parametrize("encoding", ["GBK", "UTF-8"])
@pytest.mark.parametrize("zipped", [False, True])
def test_a_shapefile_that_names_no_encoding_keeps_its_chinese_names(tmp_path: Path, encoding: str,
                                                                    zipped: bool) -> None:
    # Catches: a .dbf without its .cpg (and no code page in its header, as many Chinese GIS tools
    # write it) read as ISO-8859-1, so 金山社区 loaded as "½ðÉ½ÉçÇø" and no address matched.
    frame().to_crs(CGCS2000_GK_108E).to_file(tmp_path / "places.shp", encoding=encoding)
    (tmp_path / "places.cpg").unlink()
    path = tmp_path / "places.shp"
    if zipped:
        with zipfile.ZipFile(tmp_path / "places.zip", "w") as archive:
            for part in tmp_path.glob("places.*"):
                if part.suffix != ".zip":
                    archive.write(part, f"data/{part.name.upper()}")
        path = tmp_path / "places.zip"
    names = {f["properties"]["id"]: f["properties"] for f in read_features(path)}
    assert names["G1"]["name"] == "金山社区" and names["G2"]["name"] == "渭阳超市"
    assert names["G1"]["aliases"] == ["金山社区居委会", "金山居委会"]


def _placemark(place_id: str, name: str) -> str:
    data = "".join(f'<Data name="{k}"><value>{v}</value></Data>'
                   for k, v in (("kind", "place"), ("id", place_id), ("district", "610402")))
    return (f"<Placemark><name>{name}</name><ExtendedData>{data}</ExtendedData>"
            f"<Point><coordinates>{SPOT[0]},{SPOT[1]}</coordinates></Point></Placemark>")


@pytest.mark.parametrize("fmt", ["gpkg", "kml"])
def test_every_layer_of_a_file_is_loaded(tmp_path: Path, fmt: str) -> None:
    # Catches: only the first layer read (GDAL's default; a warning nobody sees), so the
    # landmarks a GeoPackage holds beside its communities, or a KML's second folder, never loaded.
    path = tmp_path / f"places.{fmt}"
    if fmt == "gpkg":
        places = frame().to_crs(CGCS2000_GK_108E)
        places.iloc[[0]].to_file(path, layer="communities", driver="GPKG")
        places.iloc[[1]].to_file(path, layer="landmarks", driver="GPKG", mode="a")
    else:  # as Google Earth saves two folders
        folders = "".join(f"<Folder><name>{folder}</name>{_placemark(i, n)}</Folder>" for folder, i, n in (
            ("communities", "G1", "金山社区"), ("landmarks", "G2", "渭阳超市")))
        path.write_text('<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
                        f"<Document>{folders}</Document></kml>", "utf-8")
    assert sorted(f["properties"]["id"] for f in read_features(path)) == ["G1", "G2"]


@pytest.mark.parametrize("placemark_id", ["", ' id="pm7"'])
def test_a_kml_id_given_as_extended_data_is_the_features_id(tmp_path: Path, placemark_id: str) -> None:
    # Catches: `<Data name="id">` (how Google Earth and most tools write ExtendedData) read into
    # GDAL's `id` column, which the loader dropped as the placemark's own, so the place was
    # refused for having no id (with or without an id attribute on the placemark).
    path = tmp_path / "places.kml"
    placemark = _placemark("G1", "金山社区").replace("<Placemark>", f"<Placemark{placemark_id}>")
    path.write_text('<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
                    f"<Document>{placemark}</Document></kml>", "utf-8")
    [feature] = read_features(path)
    assert (feature["properties"]["id"], feature["properties"]["name"]) == ("G1", "金山社区")


def test_a_shapefile_without_its_crs_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "shp")
    path.with_suffix(".prj").unlink()
    with pytest.raises(LoadError, match="no coordinate reference system"):
        read_features(path)


@pytest.mark.parametrize(("name", "content"), [
    ("broken.gpkg", b"not a database"),
    ("empty.zip", b"PK\x05\x06" + b"\x00" * 18),
    ("broken.kml", b"<kml><Document><Placemark>"),
])
def test_unreadable_files_are_refused_with_the_reason(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match="cannot read"):
        read_features(path)


def test_a_geojson_crs_that_is_not_understood_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [],
                                "crs": {"type": "name", "properties": {"name": "EPSG:nonsense"}}}), "utf-8")
    with pytest.raises(LoadError, match="crs not understood"):
        read_features(path)


@pytest.mark.parametrize("geometry", [
    {"type": "Point", "coordinates": "abc"},
    {"type": "Point"},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]},
    {"type": "Blob", "coordinates": [0, 0]},
])
def test_a_feature_that_cannot_be_reprojected_is_named(tmp_path: Path, geometry: dict[str, object]) -> None:
    """In a collection declaring another CRS, a feature whose geometry cannot be reprojected is
    refused naming the file and the feature (it crashed `intake load` with a traceback)."""
    good = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [12100000.0, 4070000.0]},
            "properties": {"kind": "unit", "id": "U1", "name": "抢修班", "phone": "13800138000"}}
    bad = {"type": "Feature", "geometry": geometry,
           "properties": {"kind": "unit", "id": "U2", "name": "抢修班", "phone": "13800138000"}}
    path = tmp_path / "units.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [good, bad],
                                "crs": {"type": "name", "properties": {"name": "EPSG:3857"}}}), "utf-8")
    with pytest.raises(LoadError, match=r"units.geojson: feature 1 \(unit U2\): geometry cannot be reproj"):
        read_features(path, [])


@pytest.mark.parametrize("fmt", ["shp", "gpkg"])
def test_whole_numbers_in_real_columns_are_ids_not_decimals(tmp_path: Path, fmt: str) -> None:
    """ArcGIS and Excel-made tables keep codes in Double columns: adcode 610402.0 is district
    610402 (it was loaded as a district "610402.0"), capacity 5.0 is 5 (it was refused) and a
    phone 13800138000.0 is 13800138000."""
    lon, lat = SPOT
    gpd.GeoDataFrame(
        {"kind": ["district"], "adcode": [610402.0], "name": ["秦都区"]},
        geometry=[shapely.box(lon - 0.1, lat - 0.1, lon + 0.1, lat + 0.1)], crs=4326,
    ).to_file(tmp_path / f"districts.{fmt}")
    gpd.GeoDataFrame(
        {"kind": ["provider"], "id": ["P1"], "name": ["抢修一班"], "skills": ["power"], "capacity": [5.0],
         "phone": [13800138000.0], "rating": [4.5]},
        geometry=[shapely.Point(lon, lat)], crs=4326,
    ).to_file(tmp_path / f"providers.{fmt}")
    [district] = read_features(tmp_path / f"districts.{fmt}")
    assert parse_feature(district).id == "610402"
    [provider] = read_features(tmp_path / f"providers.{fmt}")
    props = parse_feature(provider).properties
    assert (props["capacity"], str(props["phone"]), props["rating"]) == (5, "13800138000", 4.5)
