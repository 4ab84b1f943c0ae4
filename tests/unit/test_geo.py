"""dispatch.gis.geo: datum conversions, geodesic distance, district lookup."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.core.errors import DispatchError
from dispatch.gis.geo import (
    DistrictIndex,
    InvalidCoordinates,
    UnsupportedCRS,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_wgs84,
    geodesic_m,
    geodesic_many_m,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

DISTRICTS = Path(__file__).resolve().parents[2] / "gis_data" / "districts.geojson"
china_lat = st.floats(min_value=18.0, max_value=53.0)
china_lon = st.floats(min_value=74.0, max_value=134.0)


@settings(max_examples=200, deadline=None)
@given(china_lat, china_lon)
def test_gcj02_inverse_is_below_a_millimetre(lat: float, lon: float) -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lat, lon))
    assert geodesic_m(lat, lon, *back) < 0.001


@settings(max_examples=200, deadline=None)
@given(china_lat, china_lon)
def test_bd09_round_trip_is_below_a_millimetre(lat: float, lon: float) -> None:
    back = bd09_to_wgs84(*wgs84_to_bd09(lat, lon))
    assert geodesic_m(lat, lon, *back) < 0.001


@pytest.mark.parametrize(
    ("lat", "lon", "low", "high"), [(34.33, 108.71, 400, 500), (23.02, 113.75, 550, 650)]
)
def test_gcj02_offset_has_the_known_size(lat: float, lon: float, low: float, high: float) -> None:
    assert low < geodesic_m(lat, lon, *wgs84_to_gcj02(lat, lon)) < high


def test_outside_china_gcj02_is_unchanged() -> None:
    assert wgs84_to_gcj02(48.85, 2.35) == (48.85, 2.35)
    assert gcj02_to_wgs84(48.85, 2.35) == (48.85, 2.35)


@pytest.mark.parametrize("crs", ["wgs84", "gcj02", "bd09", "GCJ-02", "BD09"])
def test_to_wgs84_inverts_from_wgs84(crs: str) -> None:
    lat, lon = to_wgs84(*from_wgs84(34.35, 108.7, crs), crs)
    assert geodesic_m(34.35, 108.7, lat, lon) < 0.001


def test_to_wgs84_defaults_to_wgs84() -> None:
    assert to_wgs84(34.35, 108.7, None) == (34.35, 108.7)


@pytest.mark.parametrize(("lat", "lon"), [(91.0, 0.0), (0.0, 181.0), (math.nan, 1.0), (1.0, math.inf)])
def test_out_of_range_coordinates_are_refused(lat: float, lon: float) -> None:
    with pytest.raises(InvalidCoordinates) as info:
        to_wgs84(lat, lon, "wgs84")
    assert isinstance(info.value, DispatchError)
    assert isinstance(info.value, ValueError)


def test_unknown_crs_is_refused() -> None:
    with pytest.raises(UnsupportedCRS) as info:
        to_wgs84(34.0, 108.0, "epsg:3857")
    assert isinstance(info.value, DispatchError)
    assert isinstance(info.value, ValueError)


def test_geodesic_matches_known_lengths() -> None:
    assert geodesic_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(111_319.49, abs=0.01)
    many = geodesic_many_m(0.0, 0.0, [0.0, 1.0], [1.0, 0.0])
    assert many.tolist() == pytest.approx([111_319.49, 110_574.39], abs=0.01)


def test_district_lookup_on_the_real_boundaries() -> None:
    import json

    index = DistrictIndex.from_features(json.loads(DISTRICTS.read_text(encoding="utf-8"))["features"])
    assert len(index.districts) == 15
    qindu = index.locate(34.3496, 108.7069)  # Xianyang city centre, Qindu district
    dongguan = index.locate(23.0205, 113.7518)
    assert qindu is not None
    assert qindu.adcode == "610402"
    assert dongguan is not None
    assert dongguan.adcode == "441900"
    assert index.locate(34.26, 108.94) is None  # Xi'an, outside both cities
    found = index.locate_many([34.3496, 23.0205, 0.0], [108.7069, 113.7518, 0.0])
    assert [d.adcode if d else None for d in found] == ["610402", "441900", None]
    assert index.by_adcode("441900") is not None
