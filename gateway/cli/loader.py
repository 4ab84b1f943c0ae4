"""`intake load PATH...`: import reference data files as events.

GeoJSON FeatureCollections (CONTRACT.md, "Reference data files") or CSV with
a header: `kind`, `id` (or `adcode`), the kind's properties, and `lat`/`lon`
for a point. In CSV, list columns (`skills`, `districts`, `devices`,
`conditions`, `aliases`) are separated by `;`, `contacts` is JSON, `capacity`
an integer and `available` true/false. The file is UTF-8 (a BOM allowed) or, as Excel on a
Chinese Windows saves "CSV (逗号分隔)", GBK/GB18030. A row that cannot be read is refused with its
line and column named; the other rows load (as a bad GeoJSON feature is refused alone).

What GIS departments hand over is read through geopandas (pyogrio, GDAL):
Shapefile (`.shp` with its side files, or all of them in a `.zip`),
GeoPackage (`.gpkg`) and KML (`.kml`), and GeoJSON whose collection declares
another `crs`; each in the CRS it declares, reprojected to WGS84 (a file
without a CRS definition is refused). Their attribute columns are the
properties, read as CSV values are (a whole number in a real-number column, as ArcGIS keeps
codes, is an integer: adcode 610402.0 is 610402); in KML the placemark's name is `name`.
A Shapefile whose attributes name no encoding (no `.cpg`, no code page in the
`.dbf` header, as many Chinese GIS tools write them) is read as UTF-8 when its
text is valid UTF-8, else as GB18030 (which GBK and GB2312 are part of), not as
GDAL's ISO-8859-1 default, which turned Chinese names into mojibake.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pyogrio  # type: ignore[import-untyped]  # no stubs: its layer list and exception types
import pyogrio.errors  # type: ignore[import-untyped]
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import mapping, shape

from dispatch.core.errors import DispatchError
from dispatch.core.messages import Json, JsonValue
from dispatch.customers import reference as customer_reference
from dispatch.gis.reference import InvalidReference, RecordReference, ReferenceProjection, parse_feature
from dispatch.knowledge import reference as knowledge_reference
from gateway.services import Services
from gateway.settings import Settings

CONCURRENCY = 16
_LISTS = ("skills", "districts", "devices", "conditions", "aliases")
TABLES = (".shp", ".zip", ".gpkg", ".kml")
"""File suffixes read through geopandas."""
_KML_COLUMNS = frozenset({"id", "description", "timestamp", "begin", "end", "altitudeMode", "tessellate",
                          "extrude", "visibility", "drawOrder", "icon"})
"""Columns GDAL adds to every KML layer: the placemark's own bookkeeping, not its data."""
_GDAL_ERRORS = (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError,
                pyogrio.errors.GeometryError, pyogrio.errors.FeatureError, pyogrio.errors.CRSError)


_DBF_HEADER = 32
_DBF_CODE_PAGE = 29
"""The .dbf header's size and the offset of its language driver id (0: no code page named)."""
CHINESE_ENCODING = "GB18030"


class LoadError(InvalidReference):
    """A file cannot be read as reference data."""


@dataclass(slots=True)
class LoadStats:
    """What a load did: counts by outcome and the features it refused, with reasons."""

    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the operator."""
        parts = [f"{n} {k}" for k, n in sorted(self.outcomes.items())]
        return ", ".join(parts or ["nothing"]) + (f"; {len(self.errors)} refused" if self.errors else "")


def _csv_value(name: str, raw: str) -> JsonValue:
    if raw == "":
        return None
    if name in _LISTS:
        return [v.strip() for v in raw.split(";") if v.strip()]
    if name == "contacts":
        return json.loads(raw)
    if name == "capacity":
        return int(raw)
    if name == "available":
        return raw.strip().lower() in ("1", "true", "yes", "y")
    return raw


def _csv_text(data: bytes) -> str:
    """A CSV file's text: UTF-8 (with or without Excel's BOM), else GB18030, the superset of
    the GBK that Excel on a Chinese Windows saves "CSV (逗号分隔)" in."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode(CHINESE_ENCODING)


def _csv_features(path: Path) -> Iterator[Json | LoadError]:
    """Each row as a feature, or as a `LoadError` naming its line and column (the rest still load)."""
    with io.StringIO(_csv_text(path.read_bytes()), newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not any(name.strip() for name in reader.fieldnames):
            raise LoadError(f"{path}: no header row (kind, id, name, ...): not a reference CSV")
        reader.fieldnames = [name.strip() for name in reader.fieldnames]  # " kind", "id " as typed
        for row in reader:
            line = reader.line_num
            props: Json = {}
            bad: LoadError | None = None
            for name, raw in row.items():
                if name is None or name in ("lat", "lon"):
                    continue
                try:
                    value = _csv_value(name, (raw or "").strip())
                except (ValueError, json.JSONDecodeError) as exc:
                    bad = LoadError(f"{path}: line {line}: column {name}: {exc}", field=name)
                    break
                if value is not None:
                    props[name] = value
            geometry = None
            if bad is None and row.get("lat") and row.get("lon"):
                point: list[float] = []
                for name in ("lon", "lat"):
                    try:
                        point.append(float(row[name] or ""))
                    except ValueError as exc:
                        bad = LoadError(f"{path}: line {line}: column {name}: {exc}", field=name)
                        break
                geometry = {"type": "Point", "coordinates": point} if bad is None else None
            yield bad if bad is not None else {"type": "Feature", "properties": props, "geometry": geometry}


def _table_value(name: str, value: object) -> JsonValue:
    """A property from an attribute table cell (None: leave the property out)."""
    if value is None or (isinstance(value, float) and value != value):  # NaN: an empty cell
        return None
    item = getattr(value, "item", None)  # a numpy scalar
    value = item() if callable(item) else value
    if isinstance(value, str):
        return _csv_value(name, value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a code or a count kept in a Double column (ArcGIS, Excel): 610402.0
    if name == "available" and isinstance(value, int):
        return bool(value)
    if isinstance(value, (int, float, bool)):
        return value
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


def _sources(path: Path) -> list[str]:
    """What GDAL is to read: the file, or each data file inside a zip (in folders or not)."""
    if path.suffix.lower() != ".zip":
        return [str(path)]
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoadError(f"{path}: cannot read ({exc})") from exc
    inner = sorted(n for n in names if n.lower().endswith((".shp", ".gpkg", ".kml")))
    if not inner:
        raise LoadError(f"{path}: cannot read (no Shapefile, GeoPackage or KML in the archive)")
    return [f"/vsizip/{path}/{name}" for name in inner]


def _table_features(path: Path) -> list[Json]:
    """The features of Shapefiles, GeoPackages or KML files (every layer: a GeoPackage's tables,
    a KML's folders), reprojected to WGS84."""
    features: list[Json] = []
    for source in _sources(path):
        try:
            layers = [str(name) for name, _ in pyogrio.list_layers(source)]
        except (*_GDAL_ERRORS, OSError, ValueError) as exc:
            raise LoadError(f"{path}: cannot read ({exc})") from exc
        for layer in layers:
            features += _layer_features(path, source, layer)
    return features


def _side_file(path: Path, source: str, suffix: str) -> bytes | None:
    """A Shapefile's side file (`.dbf`, `.cpg`), beside it or in its zip, any letter case."""
    shp = Path(source)
    if source.startswith("/vsizip/"):
        wanted = (source[len(f"/vsizip/{path}/"):-len(shp.suffix)] + suffix).lower()
        with zipfile.ZipFile(path) as archive:
            found = [n for n in archive.namelist() if n.lower() == wanted]
            return archive.read(found[0]) if found else None
    beside = [p for p in shp.parent.glob(f"{shp.stem}.*") if p.suffix.lower() == suffix]
    return beside[0].read_bytes() if beside else None


def _shapefile_encoding(path: Path, source: str) -> str | None:
    """The encoding of a Shapefile's attributes when the file names none (None: GDAL knows it)."""
    if not source.lower().endswith(".shp") or _side_file(path, source, ".cpg") is not None:
        return None
    dbf = _side_file(path, source, ".dbf")
    if dbf is None or len(dbf) < _DBF_HEADER or dbf[_DBF_CODE_PAGE] != 0:
        return None
    try:
        dbf[int.from_bytes(dbf[8:10], "little"):].decode("utf-8")  # bytes 8-9: where the records start
    except UnicodeDecodeError:
        return CHINESE_ENCODING
    return "UTF-8"


def _layer_features(path: Path, source: str, layer: str) -> list[Json]:
    try:
        encoding = _shapefile_encoding(path, source)
        frame = gpd.read_file(source, engine="pyogrio", layer=layer,
                              **({"encoding": encoding} if encoding else {}))
    except (*_GDAL_ERRORS, OSError, ValueError) as exc:
        raise LoadError(f"{path}: cannot read ({exc})") from exc
    if frame.crs is None:
        raise LoadError(f"{path}: no coordinate reference system (a Shapefile needs its .prj)")
    frame = frame.to_crs(4326)
    kml = source.lower().endswith(".kml")
    features: list[Json] = []
    for row in frame.to_dict("records"):
        geometry = row.pop("geometry", None)
        if kml:
            # a schema's data field `id` beside the placemark's own id is GDAL's `id2`; an untyped
            # `<Data name="id">` (Google Earth's ExtendedData) it reads into `id` itself
            ids = [v for v in (row.pop("id2", None), row.get("id")) if _table_value("id", v) is not None]
            row = {k: v for k, v in row.items() if k not in _KML_COLUMNS}
            row.setdefault("name", row.pop("Name", None))
            if ids:
                row["id"] = ids[0]
        props: Json = {}
        for name, raw in row.items():
            try:
                value = _table_value(str(name), raw)
            except (ValueError, json.JSONDecodeError) as exc:
                raise LoadError(f"{path}: feature {len(features)}: column {name}: {exc}") from exc
            if value is not None:
                props[str(name)] = value
        has_shape = isinstance(geometry, shapely.Geometry) and not geometry.is_empty
        features.append({"type": "Feature", "properties": props,
                         "geometry": json.loads(json.dumps(mapping(geometry))) if has_shape else None})
    return features


def _reprojected(path: Path, document: Json) -> list[Json]:
    """A GeoJSON collection's features in WGS84 when it declares another `crs` (RFC 7946 drops the
    member; GIS exports still write it)."""
    features: list[Json] = document["features"]
    declared = document.get("crs")
    if not isinstance(declared, dict):
        return features
    try:
        crs = CRS.from_user_input(declared.get("properties", {}).get("name", ""))
    except CRSError as exc:
        raise LoadError(f"{path}: crs not understood ({exc})") from exc
    if crs.equals(CRS.from_epsg(4326), ignore_axis_order=True) or crs.to_epsg() == 4326:
        return features
    to_wgs84 = Transformer.from_crs(crs, 4326, always_xy=True)
    out = []
    for index, f in enumerate(features):
        geometry = f.get("geometry") if isinstance(f, dict) else None
        if isinstance(geometry, dict):
            try:
                moved = shapely.transform(shape(geometry), lambda xy: _xy(to_wgs84, xy))
            except (shapely.errors.ShapelyError, AttributeError, KeyError, IndexError, TypeError,
                    ValueError) as exc:
                # the whole file: its other features' places hang on the same declared CRS
                raise LoadError(f"{path}: feature {index} ({_named(f)}): geometry cannot be reprojected "
                                f"from {crs.name} ({exc})", field="geometry") from exc
            f = {**f, "geometry": json.loads(json.dumps(mapping(moved)))}
        out.append(f)
    return out


def _named(feature: Json) -> str:
    """A feature as a message names it: its kind and id."""
    props = feature.get("properties")
    props = props if isinstance(props, dict) else {}
    return f"{props.get('kind', '?')} {props.get('adcode') or props.get('id') or '?'}"


def _xy(transformer: Transformer, xy: object) -> object:
    import numpy as np

    points = np.asarray(xy)
    lon, lat = transformer.transform(points[:, 0], points[:, 1])
    return np.column_stack([lon, lat])


def read_features(path: Path, refused: list[str] | None = None) -> list[Json]:
    """The features of a reference data file (module doc); `LoadError` if it is none of those.

    A CSV row that cannot be read is listed in `refused` (line and column named) and the
    other rows are read; without `refused` the first such row raises its `LoadError`.
    """
    suffix = path.suffix.lower()
    if suffix in TABLES:
        return _table_features(path)
    try:
        if suffix == ".csv":
            features: list[Json] = []
            for row in _csv_features(path):
                if isinstance(row, LoadError):
                    if refused is None:
                        raise row
                    refused.append(str(row))
                else:
                    features.append(row)
            return features
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise LoadError(f"{path}: cannot read ({exc})") from exc
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise LoadError(f"{path}: not a GeoJSON FeatureCollection")
    if not isinstance(document.get("features"), list):
        raise LoadError(f"{path}: features must be a list")
    return _reprojected(path, document)


async def load_paths(services: Services, paths: list[Path], *, actor: str = "loader") -> LoadStats:
    """Record every valid feature of the files; refused features are listed, not lost."""
    stats = LoadStats()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def record(feature: Json, index: int, path: Path) -> None:
        if (article := knowledge_reference.properties_of(feature)) is not None:
            try:
                stats.outcomes[await knowledge_reference.load(
                    services.bus.handle, services.store, article, actor)] += 1
            except DispatchError as exc:
                stats.errors.append(f"{path}: feature {index}: {exc}")
            return
        if (customer := customer_reference.properties_of(feature)) is not None:
            try:
                stats.outcomes[await customer_reference.load(services.bus.handle, customer, actor)] += 1
            except DispatchError as exc:
                stats.errors.append(f"{path}: feature {index}: {exc}")
            return
        try:
            item = parse_feature(feature if isinstance(feature, dict) else {}, index)
        except InvalidReference as exc:
            stats.errors.append(f"{path}: {exc}")
            return
        async with gate:
            stats.outcomes[await services.bus.handle(RecordReference(item, actor))] += 1

    for path in paths:
        try:
            features = read_features(path, stats.errors)
        except LoadError as exc:
            stats.errors.append(str(exc))
            continue
        unique = _first_of_each(path, features, stats.errors)
        await asyncio.gather(*(record(f, i, path) for i, f in unique))
    return stats


def _first_of_each(path: Path, features: list[Json], refused: list[str]) -> list[tuple[int, Json]]:
    """The features with their indexes, each identity's first only; a repeat is listed in `refused`."""
    first: dict[tuple[str, str], int] = {}
    unique: list[tuple[int, Json]] = []
    for i, f in enumerate(features):
        key = _identity(f)
        if key is not None and key in first:
            refused.append(f"{path}: feature {i} ({_named(f)}): repeats the id of feature {first[key]}")
            continue
        if key is not None:
            first[key] = i
        unique.append((i, f))
    return unique


def _identity(feature: Json) -> tuple[str, str] | None:
    """The kind and id a feature is recorded under (None: it names none, validation refuses it).

    Features of one file are recorded concurrently: two with one identity would race, the
    winner left to chance.
    """
    props = feature.get("properties") if isinstance(feature, dict) else None
    if not isinstance(props, dict):
        return None
    kind = str(props.get("kind"))
    name = {"district": "adcode", "customer": "phone"}.get(kind, "id")
    value = props.get(name)
    return None if value in (None, "") else (kind, str(value).strip())


async def catch_up_reference(services: Services) -> int:
    """Bring the reference read model up to date (for a load without a running server)."""
    from eventstore.subscriptions import ProjectionRunner

    runner = ProjectionRunner(services.store, ReferenceProjection(), publish=services.publish)
    return await runner.run_until_caught_up()


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """The `intake load` command: exit 0 when every feature loaded, 1 otherwise."""
    from gateway.bootstrap import build_services, close_services
    from gateway.cli.stores import stores

    async with stores(settings) as live:
        services = await build_services(live)
        try:
            stats = await load_paths(services, [Path(p) for p in args.paths])
            await catch_up_reference(services)
        finally:
            await close_services(services)
    for error in stats.errors:
        print(f"refused: {error}")
    print(f"loaded: {stats.summary()}")
    return 1 if stats.errors else 0
