"""Reference data: validation, CRS conversion and idempotent recording."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatch.core.messages import from_recorded, to_new_event
from dispatch.customers import reference as customer_reference
from dispatch.gis.geo import wgs84_to_gcj02
from dispatch.gis.reference import (
    InvalidReference,
    RecordReference,
    ReferenceRecorded,
    ReferenceUpdated,
    parse_feature,
    record_reference,
)
from dispatch.knowledge import reference as knowledge_reference
from eventstore import NewEvent, Personal, RecordedEvent
from eventstore.memory import MemoryEventStore
from gateway.cli.loader import LoadError, read_features

PROVIDER: dict[str, Any] = {
    "type": "Feature",
    "properties": {"kind": "provider", "id": "P1", "name": "李师傅电工", "skills": ["power_repair"],
                   "capacity": 2, "phone": "13800138000", "districts": ["610402"]},
    "geometry": {"type": "Point", "coordinates": [108.70, 34.33]},
}


def with_props(**changes: Any) -> dict[str, Any]:
    feature = copy.deepcopy(PROVIDER)
    feature["properties"].update(changes)
    return feature


def test_valid_provider_keeps_extra_properties() -> None:
    item = parse_feature(with_props(rating=4.8))
    assert (item.kind, item.id, item.stream) == ("provider", "P1", "provider-P1")
    assert item.properties["rating"] == 4.8
    assert "kind" not in item.properties


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"capacity": "two"}, "capacity"),
        ({"skills": "power_repair"}, "skills"),
        ({"phone": None}, "missing phone"),
        ({"kind": "spaceship"}, "kind must be"),
        ({"id": "bad id with spaces"}, "id must be"),
    ],
)
def test_invalid_provider_is_refused_with_reason(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidReference, match=fragment):
        parse_feature(with_props(**changes))


def test_provider_needs_a_point() -> None:
    feature = with_props()
    feature["geometry"] = None
    with pytest.raises(InvalidReference, match="geometry must be Point"):
        parse_feature(feature)


def test_elder_contacts_need_known_roles() -> None:
    elder = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [108.7, 34.3]},
             "properties": {"kind": "elder", "id": "E1", "name": "王奶奶", "phone": "13900000000",
                            "devices": ["D1"], "contacts": [{"role": "cousin", "name": "x", "phone": "1"}]}}
    with pytest.raises(InvalidReference, match="contacts"):
        parse_feature(elder)


def test_gcj02_feature_is_stored_in_wgs84() -> None:
    glat, glon = wgs84_to_gcj02(34.33, 108.70)
    feature = with_props(crs="gcj02")
    feature["geometry"]["coordinates"] = [glon, glat]
    lon, lat = parse_feature(feature).geometry["coordinates"]  # type: ignore[index]
    assert abs(lat - 34.33) < 2e-6 and abs(lon - 108.70) < 2e-6


async def test_recording_is_idempotent_on_content() -> None:
    store = MemoryEventStore()
    item = parse_feature(PROVIDER)
    assert await record_reference(RecordReference(item), store=store) == "recorded"
    assert await record_reference(RecordReference(item), store=store) == "unchanged"
    changed = parse_feature(with_props(capacity=5))
    assert await record_reference(RecordReference(changed), store=store) == "updated"
    events = await store.read_stream("provider-P1")
    assert [e.type for e in events] == ["ReferenceRecorded", "ReferenceUpdated"]
    assert events[-1].data["properties"]["capacity"] == 5


def test_csv_rows_become_features(tmp_path: Path) -> None:
    path = tmp_path / "providers.csv"
    path.write_text(
        "kind,id,name,skills,capacity,phone,districts,available,lat,lon\n"
        "provider,P9,张师傅,plumbing;locksmith,3,13700000000,610402,false,34.3,108.7\n",
        encoding="utf-8",
    )
    [feature] = read_features(path)
    item = parse_feature(feature)
    assert item.properties["skills"] == ["plumbing", "locksmith"]
    assert item.properties["capacity"] == 3 and item.properties["available"] is False
    assert item.geometry == {"type": "Point", "coordinates": [108.7, 34.3]}


def test_demo_files_all_parse() -> None:
    root = Path(__file__).resolve().parents[2] / "gis_data"
    kinds: dict[str, int] = {}
    for path in sorted(root.glob("*.geojson")):
        for index, feature in enumerate(read_features(path)):
            if (article := knowledge_reference.properties_of(feature)) is not None:
                knowledge_reference.import_command(article, "loader")  # the loader hands these on
                kinds["article"] = kinds.get("article", 0) + 1
                continue
            if (customer := customer_reference.properties_of(feature)) is not None:
                customer_reference.set_command(customer, "loader")  # so are these
                kinds["customer"] = kinds.get("customer", 0) + 1
                continue
            item = parse_feature(feature, index)
            kinds[item.kind] = kinds.get(item.kind, 0) + 1
    assert kinds["district"] == 15 and kinds["article"] >= 100
    assert kinds["provider"] >= 2000
    assert kinds["elder"] > 0 and kinds["agent"] > 0 and kinds["unit"] > 0
    assert kinds["customer"] >= 1


@pytest.mark.parametrize("type_name", ["ReferenceRecorded", "ReferenceUpdated"])
def test_reference_record_written_untyped_replays_unchanged(type_name: str) -> None:
    """A reference record as logs hold it (data built by hand, schema 1) decodes to its typed
    event and encodes back to the same type, version and byte-for-byte the same JSON."""
    elder = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [108.7, 34.3]},
             "properties": {"kind": "elder", "id": "E1", "name": "王奶奶", "phone": "13900000000",
                            "devices": ["D1"], "conditions": ["heart"], "note": None, "floor": 3.5,
                            "contacts": [{"role": "family", "name": "王小", "phone": "1"}]}}
    item = parse_feature(elder)
    data = {"kind": item.kind, "id": item.id, "properties": item.properties,
            "geometry": item.geometry, "digest": item.digest()}
    meta = {"actor": "loader", "channel": "reference"}
    stored = RecordedEvent(7, item.stream, 0, type_name, 1, data, meta, datetime(2026, 1, 1, tzinfo=UTC))
    evt = from_recorded(stored)
    assert evt is not None and type(evt) is {"ReferenceRecorded": ReferenceRecorded,
                                             "ReferenceUpdated": ReferenceUpdated}[type_name]
    again = to_new_event(evt, meta)
    # an elder is a person: the properties and the home are sealed with the elder's key
    assert again == NewEvent(type_name, data, 1, meta, Personal("elder:E1", (("properties",), ("geometry",))))
    assert json.dumps(again.data, ensure_ascii=False) == json.dumps(data, ensure_ascii=False)


async def test_recorded_reference_data_keeps_its_keys() -> None:
    store = MemoryEventStore()
    item = parse_feature(PROVIDER)
    await record_reference(RecordReference(item, actor="ops"), store=store)
    [recorded] = await store.read_stream("provider-P1")
    assert (recorded.type, recorded.schema_version) == ("ReferenceRecorded", 1)
    assert recorded.data == {"kind": "provider", "id": "P1", "properties": item.properties,
                             "geometry": item.geometry, "digest": item.digest()}
    assert list(recorded.data) == ["kind", "id", "properties", "geometry", "digest"]
    assert recorded.metadata == {"actor": "ops", "channel": "reference"}


def test_a_bad_csv_row_is_named_by_line_and_column_and_the_rest_are_read(tmp_path: Path) -> None:
    path = tmp_path / "providers.csv"
    path.write_text(
        "kind,id,name,skills,capacity,phone,lat,lon\n"
        "provider,P1,张师傅,plumbing,3,13700000000,34.3,108.7\n"
        "provider,P2,李师傅,plumbing,3,13700000001,abc,108.7\n"
        "provider,P3,王师傅,plumbing,three,13700000002,34.3,108.7\n"
        "provider,P4,赵师傅,plumbing,2,13700000003,34.3,108.8\n",
        encoding="utf-8",
    )
    refused: list[str] = []
    features = read_features(path, refused)
    assert [f["properties"]["id"] for f in features] == ["P1", "P4"]
    assert len(refused) == 2
    assert "line 3: column lat: could not convert string to float: 'abc'" in refused[0]
    assert "line 4: column capacity:" in refused[1] and "'three'" in refused[1]
    # without a list to report into, the first bad row is the error, named the same way
    with pytest.raises(LoadError, match="line 3: column lat"):
        read_features(path)


DISTRICT_SHAPES: list[tuple[str, dict[str, Any], str]] = [
    ("a ring of two points", {"type": "Polygon", "coordinates": [[[108.0, 34.0], [109.0, 34.0]]]},
     "at least 4 coordinates"),
    ("an empty ring", {"type": "Polygon", "coordinates": [[]]}, "geometry is empty"),
    ("no polygons", {"type": "MultiPolygon", "coordinates": []}, "geometry is empty"),
    ("a bow tie",
     {"type": "Polygon", "coordinates": [[[108, 34], [109, 35], [109, 34], [108, 35], [108, 34]]]},
     r"geometry is not valid \(Self-intersection\[108.5 34.5\]\)"),
]


@pytest.mark.parametrize(("label", "geometry", "fragment"), DISTRICT_SHAPES,
                         ids=[d[0] for d in DISTRICT_SHAPES])
@pytest.mark.parametrize("kind", ["district", "place"])
def test_a_polygon_that_is_no_area_is_refused_naming_why(label: str, geometry: dict[str, Any], fragment: str,
                                                         kind: str) -> None:
    """A degenerate, empty or self-intersecting boundary is refused with the reason (and where it
    crosses itself): recorded, it stopped the district index and the reference projection for good."""
    props = {"kind": kind, "adcode": "610499", "id": "X1", "name": "某区", "district": "610402"}
    with pytest.raises(InvalidReference, match=fragment) as refused:
        parse_feature({"type": "Feature", "properties": props, "geometry": geometry})
    assert refused.value.field == "geometry"


def test_a_polygon_with_a_hole_is_kept() -> None:
    """A boundary with an enclave (an inner ring) is a valid district."""
    outer = [[108, 34], [109, 34], [109, 35], [108, 35], [108, 34]]
    hole = [[108.4, 34.4], [108.6, 34.4], [108.6, 34.6], [108.4, 34.6], [108.4, 34.4]]
    feature = {"type": "Feature", "properties": {"kind": "district", "adcode": "610499", "name": "某区"},
               "geometry": {"type": "Polygon", "coordinates": [outer, hole]}}
    assert len(parse_feature(feature).geometry["coordinates"]) == 2  # type: ignore[index]


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
def test_a_csv_saved_by_excel_in_china_keeps_its_chinese_names(tmp_path: Path, encoding: str) -> None:
    """Excel on a Chinese Windows saves "CSV (逗号分隔)" in GBK (code page 936) with CRLF line ends;
    "CSV UTF-8" with a BOM. Both load with their names intact (GBK was refused as not UTF-8)."""
    path = tmp_path / "providers.csv"
    path.write_bytes("kind,id,name,skills,capacity,phone,lat,lon\r\n"
                     "provider,P9,渭城区抢修一班,power;line,3,13700000000,34.3,108.7\r\n".encode(encoding))
    [feature] = read_features(path)
    assert parse_feature(feature).properties["name"] == "渭城区抢修一班"


def test_a_csv_header_typed_with_spaces_reads_its_columns(tmp_path: Path) -> None:
    """` kind, id ,name` (spaces after the commas, as typed or exported): every row was refused
    with "kind must be one of ...", the column named " kind" read as no kind at all."""
    path = tmp_path / "providers.csv"
    path.write_text(" kind, id ,name, skills ,capacity,phone, lat , lon\n"
                    "provider,P9,张师傅,plumbing;locksmith,3,13700000000,34.3,108.7\n", encoding="utf-8")
    [feature] = read_features(path)
    item = parse_feature(feature)
    assert (item.kind, item.id, item.properties["skills"]) == ("provider", "P9", ["plumbing", "locksmith"])
    assert item.geometry == {"type": "Point", "coordinates": [108.7, 34.3]}


@pytest.mark.parametrize("text", ["", "\n\n", " , ,\n"])
def test_a_csv_with_no_header_is_refused_not_loaded_as_nothing(tmp_path: Path, text: str) -> None:
    """An empty file (a failed export) printed `loaded: nothing` and exited 0."""
    path = tmp_path / "providers.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LoadError, match="no header row"):
        read_features(path, [])
