"""Reference data (districts, providers, units, agents, elders, places, the organisation) as events.

Each item lives in its own stream `<kind>-<id>`: its first version is a
`ReferenceRecorded`; recording an item whose content is unchanged writes
nothing; a changed one records `ReferenceUpdated`.
Coordinates are stored in WGS84; a feature may say `crs: gcj02|bd09`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
import shapely
from shapely.geometry import shape

from dispatch.core.bus import Handler
from dispatch.core.capability import Deps
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import (
    Command,
    Event,
    Json,
    JsonValue,
    event,
    from_recorded,
    metadata,
    to_new_event,
)
from dispatch.core.personal import phone_subject, subject
from dispatch.core.phone import normalise_phone
from dispatch.gis.geo import to_wgs84
from eventstore import EventStore, RecordedEvent, WrongExpectedVersion
from eventstore.shredding import is_erased
from eventstore.subscriptions import Change

KINDS: tuple[str, ...] = ("district", "provider", "unit", "agent", "elder", "place", "org")
PERSONAL_KINDS = frozenset({"elder", "customer"})
"""Kinds whose items are people: their properties and geometry are sealed with the person's key."""
REQUIRED: dict[str, tuple[str, ...]] = {
    "district": ("adcode", "name"),
    "provider": ("id", "name", "skills", "capacity", "phone"),
    "unit": ("id", "name", "phone"),
    "agent": ("id", "name"),
    "elder": ("id", "name", "phone", "devices", "contacts"),
    "place": ("id", "name", "district"),
    "org": ("id", "name", "level"),
}
GEOMETRY: dict[str, tuple[str, ...]] = {
    "district": ("Polygon", "MultiPolygon"),
    "provider": ("Point",),
    "unit": ("Point",),
    "agent": (),
    "elder": ("Point",),
    "place": ("Point", "Polygon", "MultiPolygon"),
    "org": (),
}
ORG_LEVELS: tuple[str, ...] = ("city", "subcentre", "unit")
"""The levels of an `org` node (dispatch.org.tree)."""
CONTACT_ROLES = frozenset({"family", "liaison", "doctor", "security"})
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


class InvalidReference(InvalidCommand):
    """A reference feature is malformed; the message names the feature and field."""


@dataclass(frozen=True, slots=True)
class ReferenceItem:
    """One validated reference item in WGS84."""

    kind: str
    id: str
    properties: Json
    geometry: Json | None

    @property
    def stream(self) -> str:
        """The item's stream name."""
        return f"{self.kind}-{self.id}"

    def digest(self) -> str:
        """A content hash: equal digests mean nothing changed."""
        text = json.dumps([self.properties, self.geometry], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


def _convert_ring(ring: Sequence[Sequence[float]], crs: str) -> list[list[float]]:
    out = []
    for point in ring:
        lat, lon = to_wgs84(float(point[1]), float(point[0]), crs)
        out.append([round(lon, 6), round(lat, 6)])
    return out


def _convert_geometry(geometry: Mapping[str, JsonValue], crs: str) -> Json:
    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        lat, lon = to_wgs84(float(coords[1]), float(coords[0]), crs)
        return {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}
    if kind == "Polygon":
        return {"type": kind, "coordinates": [_convert_ring(r, crs) for r in coords]}
    return {"type": kind, "coordinates": [[_convert_ring(r, crs) for r in poly] for poly in coords]}


def _check_properties(kind: str, label: str, props: Mapping[str, JsonValue]) -> None:
    missing = [name for name in REQUIRED[kind] if props.get(name) in (None, "")]
    if missing:
        raise InvalidReference(f"{label}: missing {', '.join(missing)}", field=missing[0])
    checks: list[tuple[str, Callable[[JsonValue], bool], str]] = [
        ("skills", lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v), "a list of strings"),
        ("districts", lambda v: isinstance(v, list), "a list of adcodes"),
        (
            "devices",
            lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
            "a list of accounts",
        ),
        (
            "capacity",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "a whole number >= 0",
        ),
        ("available", lambda v: isinstance(v, bool), "true or false"),
        ("contacts", _valid_contacts, "a list of {role, name, phone}"),
        ("aliases", lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v), "a list of names"),
    ]
    for name, ok, expected in checks:
        if name in props and not ok(props[name]):
            raise InvalidReference(f"{label}: {name} must be {expected}", field=name)
    if kind == "org":
        _check_org(label, props)


def _check_org(label: str, props: Mapping[str, JsonValue]) -> None:
    """An org node: a known level; a parent unless it is the city; districts as adcodes."""
    if props["level"] not in ORG_LEVELS:
        raise InvalidReference(f"{label}: level must be one of {', '.join(ORG_LEVELS)}", field="level")
    parent = props.get("parent")
    if parent in (None, "") and props["level"] != "city":
        raise InvalidReference(f"{label}: a {props['level']} needs a parent", field="parent")
    if parent not in (None, "") and (not isinstance(parent, str) or parent == props.get("id")):
        raise InvalidReference(f"{label}: parent must be another node's id", field="parent")


def _valid_contacts(value: JsonValue) -> bool:
    return isinstance(value, list) and all(
        isinstance(c, dict) and c.get("role") in CONTACT_ROLES and c.get("name") and c.get("phone")
        for c in value
    )


def _check_area(label: str, area: shapely.Geometry) -> None:
    """A boundary encloses an area and does not cross itself: the district index and the
    gazetteer build on it (an empty or self-intersecting one gave no point, or wrong answers)."""
    if area.is_empty:
        raise InvalidReference(f"{label}: geometry is empty", field="geometry")
    if not area.is_valid:
        raise InvalidReference(f"{label}: geometry is not valid ({shapely.is_valid_reason(area)})",
                               field="geometry")


def parse_feature(feature: Mapping[str, JsonValue], index: int = 0) -> ReferenceItem:
    """Validate one GeoJSON feature and convert it to WGS84."""
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise InvalidReference(f"feature {index}: properties missing")
    kind = props.get("kind")
    if kind not in KINDS:
        raise InvalidReference(f"feature {index}: kind must be one of {', '.join(KINDS)}", field="kind")
    item_id = str(props.get("adcode") if kind == "district" else props.get("id") or "")
    label = f"{kind} {item_id or '#' + str(index)}"
    _check_properties(kind, label, props)
    if not _ID.match(item_id):
        raise InvalidReference(f"{label}: id must be 1-64 letters, digits or _.:-", field="id")
    geometry = feature.get("geometry")
    allowed = GEOMETRY[kind]
    wrong = not isinstance(geometry, dict) or geometry.get("type") not in allowed
    if allowed and wrong and not (kind == "unit" and geometry is None):
        raise InvalidReference(f"{label}: geometry must be {' or '.join(allowed)}", field="geometry")
    try:
        converted = _convert_geometry(geometry, str(props.get("crs", "wgs84"))) if geometry else None
        area = shape(converted) if converted and converted["type"] != "Point" else None
    except (KeyError, IndexError, TypeError, ValueError, shapely.errors.ShapelyError) as exc:
        raise InvalidReference(f"{label}: bad coordinates ({exc})", field="geometry") from exc
    if area is not None:
        _check_area(label, area)
    clean = {k: v for k, v in props.items() if k not in ("kind", "crs")}
    return ReferenceItem(kind, item_id, clean, converted if allowed else None)


@dataclass(frozen=True, slots=True)
class ReferenceEvent(Event):
    """What every version of a reference item records: the item in WGS84 and its digest.

    `properties` is the item's open property bag (its GeoJSON properties
    without `kind` and `crs`), stored as loaded; the projections read the
    fields each kind needs from it.
    """

    kind: str
    id: str
    properties: Json
    geometry: Json | None
    digest: str

    def personal_fields(self) -> tuple[str, ...]:
        """An elder's or a customer's properties and home are personal; places and crews are not."""
        return ("properties", "geometry") if self.kind in PERSONAL_KINDS else ()

    def data_subject(self) -> str | None:
        """The elder's; a customer's number."""
        if self.kind == "elder":
            return subject("elder", self.id)
        if self.kind == "customer":
            return phone_subject(str(self.properties.get("phone") or self.id))
        return None


@event
@dataclass(frozen=True, slots=True)
class ReferenceRecorded(ReferenceEvent):
    """The first version of a reference item."""


@event
@dataclass(frozen=True, slots=True)
class ReferenceUpdated(ReferenceEvent):
    """A reference item whose content changed since its last version."""


@dataclass(frozen=True, slots=True)
class RecordReference(Command):
    """Record one reference item (idempotent on its content)."""

    item: ReferenceItem
    actor: str | None = None


async def record_reference(cmd: RecordReference, *, store: EventStore) -> str:
    """Append the item if new or changed; answer `recorded`, `updated` or `unchanged`."""
    item = cmd.item
    digest = item.digest()
    meta = metadata(actor=cmd.actor or "loader", channel="reference")
    for _ in range(3):
        last = await store.read_stream(item.stream, after_version=await store.stream_version(item.stream) - 1)
        previous = from_recorded(last[-1]) if last else None
        if isinstance(previous, ReferenceEvent) and previous.digest == digest and not is_erased(last[-1]):
            return "unchanged"  # (an erased item loaded again is recorded again)
        version = ReferenceUpdated if last else ReferenceRecorded
        evt = version(item.kind, item.id, item.properties, item.geometry, digest)
        expected = last[-1].version if last else -1
        try:
            await store.append(item.stream, [to_new_event(evt, meta)], expected)
        except WrongExpectedVersion:
            continue
        return "updated" if last else "recorded"
    raise InvalidReference(f"{item.stream}: changed concurrently, try again")


HANDLERS: dict[type[Command], Handler] = {RecordReference: record_reference}


def _point(geometry: Mapping[str, JsonValue] | None) -> tuple[float | None, float | None]:
    if not geometry or geometry.get("type") != "Point":
        return None, None
    lon, lat = geometry["coordinates"][:2]
    return float(lat), float(lon)


_UPSERTS: dict[str, str] = {
    "district": """INSERT INTO ref_districts (adcode, name, geometry, props) VALUES ($1, $2, $3, $4)
        ON CONFLICT (adcode) DO UPDATE SET name = $2, geometry = $3, props = $4""",
    "provider": """INSERT INTO ref_providers (id, name, phone, skills, capacity, districts, available,
        lat, lon, props) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (id) DO UPDATE SET name = $2, phone = $3, skills = $4, capacity = $5,
        districts = $6, available = $7, lat = $8, lon = $9, props = $10""",
    "unit": """INSERT INTO ref_units (id, name, phone, lat, lon, props) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (id) DO UPDATE SET name = $2, phone = $3, lat = $4, lon = $5, props = $6""",
    "agent": """INSERT INTO ref_agents (id, name, skills, props) VALUES ($1, $2, $3, $4)
        ON CONFLICT (id) DO UPDATE SET name = $2, skills = $3, props = $4""",
    "elder": """INSERT INTO ref_elders (id, name, phone, devices, contacts, district, conditions,
        lat, lon, props) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (id) DO UPDATE SET name = $2, phone = $3, devices = $4, contacts = $5,
        district = $6, conditions = $7, lat = $8, lon = $9, props = $10""",
    "place": """INSERT INTO ref_places (id, name, type, district, aliases, lat, lon, geometry, props)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (id) DO UPDATE SET name = $2, type = $3, district = $4, aliases = $5, lat = $6,
        lon = $7, geometry = $8, props = $9, seq = nextval('ref_places_seq')""",
    "org": """INSERT INTO ref_org (id, name, level, parent, districts, props) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (id) DO UPDATE SET name = $2, level = $3, parent = $4, districts = $5, props = $6,
        seq = nextval('ref_org_seq')""",
}


def _canonical(phone: str) -> str:
    """An elder's or his contact's number as every other read model keeps it (`+86 189 8479 6809`
    -> `18984796809`), so that the number finds him (erasure, subject access, the SMS sent to it:
    their `to` is this number); as written when it is no number."""
    try:
        return normalise_phone(phone)
    except InvalidCommand:
        return phone.strip()


def _row(kind: str, item_id: str, p: Json, geometry: Json | None) -> tuple[object, ...]:
    lat, lon = _point(geometry)
    if kind == "district":
        return (item_id, p["name"], geometry, p)
    if kind == "provider":
        return (
            item_id,
            p["name"],
            str(p["phone"]),
            p["skills"],
            p["capacity"],
            [str(d) for d in p.get("districts", [])],
            p.get("available", True),
            lat,
            lon,
            p,
        )
    if kind == "unit":
        return (item_id, p["name"], str(p["phone"]), lat, lon, p)
    if kind == "agent":
        return (item_id, p["name"], p.get("skills", []), p)
    if kind == "org":
        return (item_id, p["name"], p["level"], p.get("parent") or None,
                [str(d) for d in p.get("districts", [])], p)
    if kind == "place":
        spot = shapely.point_on_surface(shape(geometry))
        return (item_id, p["name"], p.get("type"), str(p["district"]), [str(a) for a in p.get("aliases", [])],
                spot.y, spot.x, geometry, p)
    conditions = p.get("conditions", [])
    return (
        item_id,
        p["name"],
        _canonical(str(p["phone"])),
        p["devices"],
        [{**c, "phone": _canonical(str(c["phone"]))} if isinstance(c, dict) and c.get("phone") else c
         for c in p["contacts"]],
        p.get("district"),
        conditions if isinstance(conditions, list) else [conditions],
        lat,
        lon,
        p,
    )


class ReferenceProjection:
    """Projects reference streams into the `ref_*` tables."""

    name = "reference"
    categories: frozenset[str] | None = frozenset(KINDS)
    partitions = 1
    """Global (eventstore/partitions.py): the provider index follows its one checkpoint; little traffic."""
    tables: tuple[str, ...] = (
        "ref_districts",
        "ref_providers",
        "ref_units",
        "ref_agents",
        "ref_elders",
        "ref_devices",
        "ref_places",
        "ref_org",
    )

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """Upsert the item's row (and an elder's device accounts)."""
        evt = from_recorded(event)
        if not isinstance(evt, ReferenceEvent):
            return None
        kind, item_id, props, geometry = evt.kind, evt.id, evt.properties, evt.geometry
        if is_erased(event):  # an erased person: nothing of them is kept, as the erasure left it
            if kind == "elder":
                await conn.execute("DELETE FROM ref_devices WHERE elder_id = $1", item_id)
                await conn.execute("DELETE FROM ref_elders WHERE id = $1", item_id)
            return [Change("reference", {"kind": kind, "id": item_id})]
        await conn.execute(_UPSERTS[kind], *_row(kind, item_id, props, geometry))
        if kind == "elder":
            await conn.execute("DELETE FROM ref_devices WHERE elder_id = $1", item_id)
            await conn.executemany(
                "INSERT INTO ref_devices (account, elder_id) VALUES ($1, $2) "
                "ON CONFLICT (account) DO UPDATE SET elder_id = $2",
                [(str(account), item_id) for account in props["devices"]],
            )
        return [Change("reference", {"kind": kind, "id": item_id})]



Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
"""Where a query runs: the pool, or a connection already in a transaction."""


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """A provider as loaded: its id, WGS84 point and the properties it was loaded with."""

    id: str
    props: dict[str, object]
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class DistrictRow:
    """A district: its adcode, name, GeoJSON geometry (WGS84) and other properties."""

    adcode: str
    name: str
    geometry: dict[str, object]
    props: dict[str, object]


async def providers(db: Db) -> list[ProviderRow]:
    """Every loaded provider."""
    rows = await db.fetch("SELECT id, props, lat, lon FROM ref_providers")
    return [ProviderRow(r["id"], r["props"], r["lat"], r["lon"]) for r in rows]


async def districts(db: Db) -> list[DistrictRow]:
    """Every loaded district, by adcode."""
    rows = await db.fetch("SELECT adcode, name, geometry, props FROM ref_districts ORDER BY adcode")
    return [DistrictRow(r["adcode"], r["name"], r["geometry"], r["props"] or {}) for r in rows]


async def district_names(db: Db) -> dict[str, str]:
    """Adcode -> name of every loaded district (without the boundaries)."""
    return {r["adcode"]: r["name"] for r in await db.fetch("SELECT adcode, name FROM ref_districts")}


async def units(db: Db) -> list[dict[str, object]]:
    """Every unit (department) a case can be dispatched to: id, name, department, district."""
    rows = await db.fetch("SELECT id, name, props->>'department' AS department, "
                          "props->>'district' AS district FROM ref_units ORDER BY id")
    return [dict(r) for r in rows]


ASSIGNEE_TABLES: dict[str, str] = {"unit": "ref_units", "provider": "ref_providers"}


async def assignee_known(db: Db, kind: str, assignee: str) -> bool:
    """Whether a dispatch may go to `assignee` of `kind`: it is in that register.

    A deployment with no register of that kind loaded at all (no units or no
    providers recorded) has nothing to check against: every id is taken.
    """
    table = ASSIGNEE_TABLES.get(kind)
    if table is None:
        return True  # the kind itself is the command's to refuse
    return await _registered(db, table, assignee)


async def agent_known(db: Db, agent: str) -> bool:
    """Whether a call-back task or presence may name `agent`: it is in the agents' register
    (every id while no agent is recorded at all, as `assignee_known`)."""
    return await _registered(db, "ref_agents", agent)


async def _registered(db: Db, table: str, id_: str) -> bool:
    found: bool = await db.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1) OR NOT EXISTS (SELECT 1 FROM {table})", id_)
    return found


async def assignee_name(db: Db, kind: str | None, assignee: str | None) -> str | None:
    """The registered name of the unit or provider a case is assigned to (None when unknown)."""
    table = ASSIGNEE_TABLES.get(kind or "")
    if table is None or assignee is None:
        return None
    name: str | None = await db.fetchval(f"SELECT name FROM {table} WHERE id = $1", assignee)
    return name


async def contact_phone(db: Db, assignee: str) -> str | None:
    """The SMS number of a unit or provider."""
    phone: str | None = await db.fetchval(
        """SELECT phone FROM ref_units WHERE id = $1
           UNION ALL SELECT phone FROM ref_providers WHERE id = $1 LIMIT 1""", assignee)
    return phone


async def elder_of_device(db: Db, account: str) -> dict[str, object] | None:
    """The `ref_elders` row of the elder a device account is registered to (case-insensitive)."""
    row = await db.fetchrow(
        "SELECT e.* FROM ref_devices d JOIN ref_elders e ON e.id = d.elder_id "
        "WHERE upper(d.account) = upper($1) LIMIT 1", account)
    return None if row is None else dict(row)


@dataclass(frozen=True, slots=True)
class PlaceRow:
    """A gazetteer place as loaded: names, type, district and representative WGS84 point."""

    id: str
    name: str
    type: str | None
    district: str | None
    aliases: tuple[str, ...]
    lat: float
    lon: float


_PLACE = "SELECT id, name, type, district, aliases, lat, lon FROM ref_places"


def _place_row(r: asyncpg.Record) -> PlaceRow:
    return PlaceRow(r["id"], r["name"], r["type"], r["district"], tuple(r["aliases"]), r["lat"], r["lon"])


async def places(db: Db) -> list[PlaceRow]:
    """Every loaded gazetteer place, by id."""
    return [_place_row(r) for r in await db.fetch(f"{_PLACE} ORDER BY id")]


async def place(db: Db, place_id: str) -> PlaceRow | None:
    """One gazetteer place, or None."""
    row = await db.fetchrow(f"{_PLACE} WHERE id = $1", place_id)
    return None if row is None else _place_row(row)


async def gazetteer_state(db: Db) -> tuple[int, dict[str, str]]:
    """What a gazetteer is built from, in one statement: a number that grows whenever a place is
    written (0: none loaded), and the district names (adcode -> name)."""
    row = await db.fetchrow(
        "SELECT (SELECT coalesce(max(seq), 0) FROM ref_places) AS version, "
        "(SELECT coalesce(jsonb_object_agg(adcode, name), '{}') FROM ref_districts) AS names")
    assert row is not None
    return int(row["version"]), dict(row["names"])


def projections(deps: Deps) -> list[ReferenceProjection]:
    """The reference projection."""
    return [ReferenceProjection()]
