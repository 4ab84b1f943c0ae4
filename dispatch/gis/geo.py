"""Coordinates: WGS84 / GCJ-02 / BD-09 conversion, geodesic distance, district lookup.

Every stored coordinate is WGS84; inputs that say `gcj02` (WeChat, Amap) or
`bd09` (Baidu) are converted with `to_wgs84` first. GCJ-02 is the published
"Mars" obfuscation (Krasovsky ellipsoid constants); its inverse has no closed
form, so it is found by iterating the forward formula to below 1 mm. Outside
China the standard algorithm leaves coordinates unchanged, and so do we.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import JsonValue

CRS_NAMES = ("wgs84", "gcj02", "bd09")

_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
_INVERSE_TOLERANCE_DEG = 1e-10  # about 0.01 mm
_MAX_ITERATIONS = 30


class InvalidCoordinates(InvalidCommand, ValueError):
    """A coordinate pair is not finite or outside -90..90 / -180..180."""


class UnsupportedCRS(InvalidCommand, ValueError):
    """A coordinate reference system name other than wgs84, gcj02 or bd09."""


def out_of_china(lat: float, lon: float) -> bool:
    """Whether the GCJ-02 offset does not apply (the standard rough bounding box)."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """WGS84 to GCJ-02 (the forward obfuscation), as (lat, lon)."""
    if out_of_china(lat, lon):
        return lat, lon
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = 1 - _GCJ_EE * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1 - _GCJ_EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrtmagic * math.cos(radlat) * math.pi)
    return lat + dlat, lon + dlon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 to WGS84 by fixed-point iteration of the forward formula (< 1 mm)."""
    if out_of_china(lat, lon):
        return lat, lon
    wlat, wlon = lat, lon
    for _ in range(_MAX_ITERATIONS):
        glat, glon = wgs84_to_gcj02(wlat, wlon)
        dlat, dlon = glat - lat, glon - lon
        wlat, wlon = wlat - dlat, wlon - dlon
        if abs(dlat) < _INVERSE_TOLERANCE_DEG and abs(dlon) < _INVERSE_TOLERANCE_DEG:
            break
    return wlat, wlon


def gcj02_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 to BD-09 (Baidu), as (lat, lon)."""
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065


def bd09_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """BD-09 to GCJ-02: the usual closed form, refined by iterating the forward formula."""
    x, y = lon - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    glat, glon = z * math.sin(theta), z * math.cos(theta)
    for _ in range(_MAX_ITERATIONS):
        blat, blon = gcj02_to_bd09(glat, glon)
        dlat, dlon = blat - lat, blon - lon
        glat, glon = glat - dlat, glon - dlon
        if abs(dlat) < _INVERSE_TOLERANCE_DEG and abs(dlon) < _INVERSE_TOLERANCE_DEG:
            break
    return glat, glon


def wgs84_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    """WGS84 to BD-09, as (lat, lon)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lat, lon))


def bd09_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """BD-09 to WGS84, as (lat, lon)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))


def check_coordinates(lat: float, lon: float) -> None:
    """Raise InvalidCoordinates unless lat/lon are finite numbers within range."""
    if isinstance(lat, bool) or isinstance(lon, bool):
        raise InvalidCoordinates("coordinates must be numbers", field="lat")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise InvalidCoordinates(f"latitude out of range: {lat!r}", field="lat")
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise InvalidCoordinates(f"longitude out of range: {lon!r}", field="lon")


def normalise_crs(crs: str | None) -> str:
    """The canonical CRS name (`wgs84` when None); UnsupportedCRS otherwise."""
    if crs is None:
        return "wgs84"
    name = crs.strip().lower().replace("-", "").replace("_", "")
    aliases = {"wgs84": "wgs84", "epsg:4326": "wgs84", "gcj02": "gcj02", "bd09": "bd09"}
    if name not in aliases:
        raise UnsupportedCRS(f"unsupported crs {crs!r}; use one of {', '.join(CRS_NAMES)}", field="crs")
    return aliases[name]


def to_wgs84(lat: float, lon: float, crs: str | None = "wgs84") -> tuple[float, float]:
    """Validate a point given in `crs` (wgs84, gcj02, bd09) and return it in WGS84."""
    name = normalise_crs(crs)
    check_coordinates(lat, lon)
    lat, lon = float(lat), float(lon)
    if name == "gcj02":
        return gcj02_to_wgs84(lat, lon)
    if name == "bd09":
        return bd09_to_wgs84(lat, lon)
    return lat, lon


def from_wgs84(lat: float, lon: float, crs: str | None = "wgs84") -> tuple[float, float]:
    """Convert a validated WGS84 point to `crs` (the inverse of `to_wgs84`)."""
    name = normalise_crs(crs)
    check_coordinates(lat, lon)
    if name == "gcj02":
        return wgs84_to_gcj02(lat, lon)
    if name == "bd09":
        return wgs84_to_bd09(lat, lon)
    return float(lat), float(lon)


@lru_cache(maxsize=1)
def wgs84_geod() -> Geod:
    """The WGS84 ellipsoid geodesic calculator (created once, on first use)."""
    return Geod(ellps="WGS84")


def geodesic_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance in metres between two WGS84 points."""
    _, _, dist = wgs84_geod().inv(lon1, lat1, lon2, lat2)
    return float(dist)


def geodesic_many_m(
    lat: float, lon: float, lats: npt.ArrayLike, lons: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Geodesic distances in metres from one WGS84 point to many."""
    la = np.asarray(lats, dtype=np.float64)
    lo = np.asarray(lons, dtype=np.float64)
    _, _, dist = wgs84_geod().inv(np.full_like(lo, lon), np.full_like(la, lat), lo, la)
    return np.asarray(dist, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class District:
    """A service district: administrative code, name and WGS84 boundary."""

    adcode: str
    name: str
    geometry: BaseGeometry


@dataclass(frozen=True, slots=True)
class DistrictIndex:
    """Point-in-polygon lookup over district boundaries (an STRtree)."""

    districts: tuple[District, ...]
    tree: STRtree

    @classmethod
    def build(cls, districts: Iterable[District]) -> DistrictIndex:
        """Index the given districts (order decides ties on shared borders)."""
        items = tuple(districts)
        return cls(items, STRtree([d.geometry for d in items]))

    @classmethod
    def from_features(cls, features: Iterable[Mapping[str, JsonValue]]) -> DistrictIndex:
        """Index the `kind: district` features of a GeoJSON FeatureCollection."""
        found = []
        for feature in features:
            props = feature.get("properties") or {}
            if props.get("kind") != "district":
                continue
            geometry = shapely.geometry.shape(feature["geometry"])
            found.append(District(str(props["adcode"]), str(props["name"]), geometry))
        return cls.build(found)

    def locate(self, lat: float, lon: float) -> District | None:
        """The district containing the WGS84 point (border points included), or None."""
        hits = self.tree.query(shapely.Point(lon, lat), predicate="intersects")
        if len(hits) == 0:
            return None
        return self.districts[int(min(hits))]

    def locate_all(self, lat: float, lon: float) -> list[District]:
        """Every district containing the WGS84 point, in index order: two or more for a point on
        a shared border (`locate` gives the first)."""
        hits = self.tree.query(shapely.Point(lon, lat), predicate="intersects")
        return [self.districts[i] for i in sorted(int(h) for h in hits)]

    def locate_many(self, lats: Sequence[float], lons: Sequence[float]) -> list[District | None]:
        """`locate` for many points at once."""
        points = shapely.points(np.asarray(lons, dtype=np.float64), np.asarray(lats, dtype=np.float64))
        pairs = self.tree.query(points, predicate="intersects")
        found: list[District | None] = [None] * len(points)
        for point_i, tree_i in sorted(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True), reverse=True):
            found[point_i] = self.districts[tree_i]
        return found

    def by_adcode(self, adcode: str) -> District | None:
        """The district with this administrative code, or None."""
        return next((d for d in self.districts if d.adcode == adcode), None)
