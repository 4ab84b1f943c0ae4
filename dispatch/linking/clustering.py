"""Duplicate-case linking: the pure clustering core and the link commands.

Many contacts concern one matter. A new case is linked to recent cases of the
same category from the same caller (normalised phone or WeChat OpenID) within
a caller window, or about the same place within `radius_m` metres and
`window_min` minutes. Links never cross categories and are symmetric: a link
is recorded on BOTH case streams (`CaseLinked`, each stream its own side), and
`unlink` records `CaseUnlinked` on both.

Links form a sparse graph: each new case links to at most `max_links` best
matches, so a storm of hundreds of calls writes a few events per call, not one
per pair; the matter is the connected component, and an outage's cases are
gathered in one incident (`dispatch.linking.incidents`) that lists them all.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from dispatch.cases.events import CaseLinked, CaseRegistered, CaseUnlinked
from dispatch.cases.state import CaseState, case_stream, load_case
from dispatch.core.bus import Handler
from dispatch.core.errors import InvalidCommand, NotAllowed, StaleVersion, check_number
from dispatch.core.messages import Command, Event, metadata, to_new_event
from dispatch.gis.geo import geodesic_m, geodesic_many_m
from eventstore import EventStore, WrongExpectedVersion

INCIDENT_CATEGORIES: frozenset[str] = frozenset({"power_fault", "voltage_anomaly"})
_M_PER_DEG = 111_320.0
_CELL_DEG = 0.02  # grid cell of the in-memory index (about 2 km)


@dataclass(frozen=True, slots=True)
class LinkParams:
    """Linking windows; defaults justified by `intake bench linking` (bench/RESULTS.md)."""

    radius_m: float = 1000.0
    window_min: float = 60.0
    caller_window_min: float = 1440.0
    max_links: int = 3
    incident_min_cases: int = 3
    max_candidates: int = 500

    def __post_init__(self) -> None:
        for name in ("radius_m", "window_min", "caller_window_min"):
            check_number(name, getattr(self, name), 0.0, above_low=True)
        for name in ("max_links", "incident_min_cases", "max_candidates"):
            check_number(name, getattr(self, name), 1, whole=True)


@dataclass(frozen=True, slots=True)
class CaseSketch:
    """What the linker knows of a case: category, time, WGS84 place, caller, incident."""

    case_id: str
    category: str
    at: datetime
    lat: float | None = None
    lon: float | None = None
    district: str | None = None
    phone: str | None = None
    openid: str | None = None
    incident_id: str | None = None
    incident_at: datetime | None = None  # when that incident opened: the time of its seed case

    @classmethod
    def of(cls, evt: CaseRegistered) -> CaseSketch:
        """The sketch of a freshly registered case."""
        place = evt.location
        return cls(
            evt.case_id, evt.category, evt.accepted_at,
            place.lat if place else None, place.lon if place else None,
            place.district if place else None, evt.caller.phone or None, evt.caller.openid or None,
        )


@dataclass(frozen=True, slots=True)
class Match:
    """A candidate judged against a new case."""

    case_id: str
    reason: str  # "same_caller" | "same_place"
    score: float
    near: bool  # within radius and window (counts towards an incident)
    district: str | None
    incident_id: str | None
    lingering: bool = False  # within radius, beyond the window, in an open incident (the outage goes on)


@dataclass(frozen=True, slots=True)
class IncidentDecision:
    """Open incident `incident_id` with `case_ids`, or (open=False) add the new case to it.

    `absorbed`: younger open incidents the new case also qualifies for; they merge into this one.
    """

    incident_id: str
    open: bool
    case_ids: tuple[str, ...]
    district: str
    category: str
    lat: float | None = None
    lon: float | None = None
    absorbed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about a new case: links (best first) and an incident step."""

    links: tuple[Match, ...] = ()
    incident: IncidentDecision | None = None


def bbox(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lat, min_lon, max_lat, max_lon) around a point: the spatial prefilter."""
    dlat = radius_m / _M_PER_DEG
    dlon = radius_m / (_M_PER_DEG * max(math.cos(math.radians(lat)), 0.01))
    return lat - dlat, lon - dlon, lat + dlat, lon + dlon


def same_caller(a: CaseSketch, b: CaseSketch) -> bool:
    """Whether two cases come from the same normalised phone number or OpenID."""
    return bool((a.phone and a.phone == b.phone) or (a.openid and a.openid == b.openid))


def _minutes(a: datetime, b: datetime) -> float:
    return abs((a - b).total_seconds()) / 60.0


def score_candidates(new: CaseSketch, candidates: Sequence[CaseSketch], p: LinkParams) -> list[Match]:
    """Every candidate that matches the new case, with its reason and score in [0, 1]."""
    pool = [c for c in candidates if c.category == new.category and c.case_id != new.case_id]
    dist = [math.inf] * len(pool)
    located = [(i, c.lat, c.lon) for i, c in enumerate(pool) if c.lat is not None and c.lon is not None]
    if new.lat is not None and new.lon is not None and located:
        found = geodesic_many_m(new.lat, new.lon, [x[1] for x in located], [x[2] for x in located])
        for (i, _, _), d in zip(located, np.asarray(found).tolist(), strict=True):
            dist[i] = d
    matches = []
    for c, d in zip(pool, dist, strict=True):
        dt = _minutes(new.at, c.at)
        near = d <= p.radius_m and dt <= p.window_min
        # An open incident's member counts at any age up to the caller window (the longest look-back):
        # the outage lasts until it is resolved.
        lingering = d <= p.radius_m and not near and c.incident_id is not None and dt <= p.caller_window_min
        if same_caller(new, c) and dt <= p.caller_window_min:
            matches.append(Match(c.case_id, "same_caller", 1.0, near, c.district, c.incident_id, lingering))
        elif near or lingering:
            score = 1.0 - 0.5 * d / p.radius_m - 0.5 * min(dt / p.window_min, 1.0)
            matches.append(Match(c.case_id, "same_place", round(score, 4), near, c.district, c.incident_id,
                                 lingering))
    matches.sort(key=lambda m: (-m.score, m.case_id))
    return matches


def incident_id_for(case_id: str) -> str:
    """The id of an incident opened by a case (deterministic, so a retry finds it): `C<rest>` -> `I<rest>`."""
    return f"I{case_id[1:]}"


def seed_case_of(incident_id: str) -> str:
    """The case that opened an incident (the inverse of `incident_id_for`)."""
    return f"C{incident_id[1:]}"


def _oldest_first(near: Sequence[Match], by_id: Mapping[str, CaseSketch]) -> list[str]:
    """The incidents of near matches, oldest first (an unknown age: opened before the window)."""
    opened: dict[str, datetime | None] = {}
    for m in near:
        if m.incident_id is not None:
            opened.setdefault(m.incident_id, by_id[m.case_id].incident_at)
    return sorted(opened, key=lambda i: (opened[i] is not None, opened[i] or datetime.min, i))


Places = Mapping[str, tuple[float, float]]
"""Incident id -> the mean WGS84 (lat, lon) of its located cases."""


def one_place(a: tuple[float, float] | None, b: tuple[float, float] | None, p: LinkParams) -> bool:
    """Whether two incidents' places lie within 1.5 radii of each other: one outage.

    Two groups that opened apart lie more than a radius apart; neighbouring outages (2.5 km
    and more apart at the default radius) stay apart even when a stray case lies between them
    (at 2 radii the drifting means of near misses merged on 3 of 6 benchmark seeds).
    """
    return a is not None and b is not None and geodesic_m(a[0], a[1], b[0], b[1]) <= 1.5 * p.radius_m


HOME_RADII = 1.2
"""A case joins an incident only when it lies within this many radii of the incident's place.

Being within a radius of one member is not enough: a case on the edge of one outage lies
within a radius of the edge of its neighbour 2.5 km away, and joining by the nearest member
alone chained such neighbours into one incident (single linkage). Chosen on the tuning storms
(`intake bench linking`, bench/RESULTS.md); at 1.5 radii cases of a near miss still crossed.
"""


def _homes(new: CaseSketch, near: Sequence[Match], by_id: Mapping[str, CaseSketch], p: LinkParams,
           places: Places) -> list[str]:
    """The incidents of near matches the new case may join, oldest first: those whose place
    lies within `HOME_RADII` of it (an incident of unknown place, or a case without one, may)."""
    homes = _oldest_first(near, by_id)
    if new.lat is None or new.lon is None:
        return homes
    lat, lon = new.lat, new.lon
    return [i for i in homes
            if (at := places.get(i)) is None or geodesic_m(lat, lon, at[0], at[1]) <= HOME_RADII * p.radius_m]


def _incident(new: CaseSketch, district: str, near: Sequence[Match], homes: Sequence[str],
              by_id: Mapping[str, CaseSketch], p: LinkParams, places: Places) -> IncidentDecision | None:
    if homes:
        oldest = places.get(homes[0])
        absorbed = tuple(i for i in homes[1:] if one_place(oldest, places.get(i), p))
        return IncidentDecision(homes[0], False, (new.case_id,), district, new.category,
                                absorbed=absorbed)
    free = [m for m in near if m.incident_id is None]
    if len(free) + 1 < p.incident_min_cases:
        return None
    members = [new, *(by_id[m.case_id] for m in free)]
    # All located: a candidate is near only by its distance from the new case.
    lats = [s.lat for s in members if s.lat is not None]
    lons = [s.lon for s in members if s.lon is not None]
    return IncidentDecision(
        incident_id_for(new.case_id), True, tuple(s.case_id for s in members), district,
        new.category, sum(lats) / len(lats), sum(lons) / len(lons),
    )


def _choose(matches: Sequence[Match], home: str | None, p: LinkParams) -> tuple[Match, ...]:
    """The best matches: the same caller's, and those of the case's own incident (or, with none,
    those outside every incident).

    A case on the edge between two neighbouring outages links into the one it joins rather
    than bridging two matters into one.
    """
    return tuple(m for m in matches if m.reason == "same_caller" or m.incident_id == home)[: p.max_links]


def decide(new: CaseSketch, candidates: Sequence[CaseSketch], p: LinkParams,
           places: Places | None = None) -> Decision:
    """Decide the links and the incident step of a new case (pure; candidates are earlier cases).

    `places` gives the place of every incident among the candidates. A case joins the oldest
    incident near it whose place lies within `HOME_RADII` radii (with none near it within the
    window, the oldest open one whose members lie within a radius at any age); the younger ones whose places
    lie within 1.5 radii of that one merge into it (`IncidentDecision.absorbed`).
    """
    places = places or {}
    matches = score_candidates(new, candidates, p)
    by_id = {c.case_id: c for c in candidates}
    district = new.district if new.category in INCIDENT_CATEGORIES else None
    near = [m for m in matches if m.near and (district is None or m.district == district)]
    homes = _homes(new, near, by_id, p, places)
    if not homes:  # no call about the place within the window: an incident still open there takes it
        lingering = [m for m in matches if m.lingering and (district is None or m.district == district)]
        homes = _homes(new, lingering, by_id, p, places)
    step = None if district is None else _incident(new, district, near, homes, by_id, p, places)
    return Decision(_choose(matches, homes[0] if homes else None, p), step)


@dataclass(slots=True)
class MemoryCandidates:
    """The candidate read model in memory (grid + caller index); same filter as the SQL one."""

    params: LinkParams
    cases: dict[str, CaseSketch] = field(default_factory=dict)
    grid: dict[tuple[int, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    callers: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    async def candidates(self, new: CaseSketch) -> list[CaseSketch]:
        """Recent cases of the category in the bounding box, or from the same caller."""
        p = self.params
        found: dict[str, CaseSketch] = {}
        if new.lat is not None and new.lon is not None:
            lat0, lon0, lat1, lon1 = bbox(new.lat, new.lon, p.radius_m)
            for i in range(_cell(lat0), _cell(lat1) + 1):
                for j in range(_cell(lon0), _cell(lon1) + 1):
                    for cid in self.grid.get((i, j), ()):
                        c = self.cases[cid]
                        if (c.category == new.category
                                and (_minutes(c.at, new.at) <= p.window_min
                                     or (c.incident_id is not None
                                         and _minutes(c.at, new.at) <= p.caller_window_min))
                                and c.lat is not None and c.lon is not None
                                and lat0 <= c.lat <= lat1 and lon0 <= c.lon <= lon1):
                            found[cid] = c
        for key in (new.phone, new.openid):
            for cid in self.callers.get(key, ()) if key else ():
                c = self.cases[cid]
                if c.category == new.category and _minutes(c.at, new.at) <= p.caller_window_min:
                    found[cid] = c
        found.pop(new.case_id, None)
        recent = sorted(found.values(), key=lambda c: (c.at, c.case_id), reverse=True)
        return self.dated(recent[: p.max_candidates])

    def dated(self, sketches: Sequence[CaseSketch]) -> list[CaseSketch]:
        """The sketches with their incident's opening time (`CaseSketch.incident_at`)."""
        out = []
        for c in sketches:
            seed = self.cases.get(seed_case_of(c.incident_id)) if c.incident_id else None
            out.append(c if seed is None else replace(c, incident_at=seed.at))
        return out

    async def remember(self, sketch: CaseSketch) -> None:
        """Add a case (a repeat keeps its incident)."""
        known = self.cases.get(sketch.case_id)
        if known is not None:
            if sketch.lat is not None and sketch.lon is not None:
                await self.relocate(sketch.case_id, sketch.lat, sketch.lon, sketch.district)
            self.cases[sketch.case_id] = replace(sketch, incident_id=known.incident_id)
            return
        if sketch.lat is not None and sketch.lon is not None:
            self.grid[(_cell(sketch.lat), _cell(sketch.lon))].append(sketch.case_id)
        for key in (sketch.phone, sketch.openid):
            if key:
                self.callers[key].append(sketch.case_id)
        self.cases[sketch.case_id] = sketch

    async def assign(self, case_ids: Sequence[str], incident_id: str | None) -> None:
        """Record the incident of cases (None releases them)."""
        for cid in case_ids:
            if cid in self.cases:
                self.cases[cid] = replace(self.cases[cid], incident_id=incident_id)

    async def places(self, incident_ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        """The mean place of each incident's located cases."""
        wanted = set(incident_ids)
        sums: dict[str, list[float]] = {}
        for c in self.cases.values():
            if c.incident_id in wanted and c.lat is not None and c.lon is not None:
                acc = sums.setdefault(c.incident_id, [0.0, 0.0, 0.0])
                acc[0], acc[1], acc[2] = acc[0] + c.lat, acc[1] + c.lon, acc[2] + 1
        return {i: (a / n, b / n) for i, (a, b, n) in sums.items()}

    async def move(self, incident_id: str, to: str | None) -> None:
        """Move an incident's cases to another (merged) or to none (resolved: they may seed a new one)."""
        await self.assign([c.case_id for c in self.cases.values() if c.incident_id == incident_id], to)

    async def recategorise(self, case_id: str, category: str) -> None:
        """A case's category changed (reclassified)."""
        if case_id in self.cases:
            self.cases[case_id] = replace(self.cases[case_id], category=category)

    async def relocate(self, case_id: str, lat: float, lon: float, district: str | None) -> None:
        """A case's place was found or corrected after registration."""
        known = self.cases.get(case_id)
        if known is None:
            return
        cell = (_cell(lat), _cell(lon))
        if known.lat is None or known.lon is None or cell != (_cell(known.lat), _cell(known.lon)):
            self.grid[cell].append(case_id)  # a stale cell entry is harmless: candidates() checks the box
        self.cases[case_id] = replace(known, lat=lat, lon=lon, district=district)

    async def rephone(self, case_id: str, phone: str) -> None:
        """A case's caller gave a phone number after registration (a WeChat follower)."""
        known = self.cases.get(case_id)
        if known is None:
            return
        if case_id not in self.callers[phone]:
            self.callers[phone].append(case_id)
        self.cases[case_id] = replace(known, phone=phone)

    async def clear(self) -> None:
        """Forget every case (before a rebuild)."""
        self.cases.clear()
        self.grid.clear()
        self.callers.clear()


def _cell(deg: float) -> int:
    return math.floor(deg / _CELL_DEG)


# ---- commands, events and handlers -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkCases(Command):
    """Link two cases of one category (`POST /api/v1/cases/{id}/link`)."""

    case_id: str
    other_case_id: str
    expected_version: int | None = None
    reason: str = "manual"
    actor: str | None = None
    score: float | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class UnlinkCases(Command):
    """Undo a link (`POST /api/v1/cases/{id}/unlink`)."""

    case_id: str
    other_case_id: str
    expected_version: int | None = None
    reason: str = ""
    actor: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class LinkResult:
    """What link / unlink answer: the case's new version and whether anything changed."""

    case_id: str
    version: int
    changed: bool


async def _append_side(store: EventStore, state: CaseState, evt: Event, actor: str | None,
                       key: str | None) -> int:
    """Append one side of a (un)link on the case's stream; return the new version."""
    meta = metadata(actor=actor, correlation_id=state.case_id)
    result = await store.append(case_stream(state.case_id), [to_new_event(evt, meta)], state.version,
                                idempotency_key=key)
    return result.last_version


def _side(cmd: LinkCases | UnlinkCases, this: str, other: str, linking: bool) -> Event:
    if isinstance(cmd, LinkCases) and linking:
        return CaseLinked(this, other, cmd.reason, cmd.score)
    return CaseUnlinked(this, other, cmd.reason)


async def _ensure_side(store: EventStore, cmd: LinkCases | UnlinkCases, this: CaseState, other: str,
                       linking: bool, strict: bool) -> int | None:
    """Record this case's side unless it already is so; the new version, or None if unchanged."""
    key = f"{cmd.idempotency_key}:{this.case_id}" if cmd.idempotency_key else None
    for attempt in range(3):
        if (other in this.linked_case_ids) == linking:
            return None
        try:
            return await _append_side(store, this, _side(cmd, this.case_id, other, linking), cmd.actor, key)
        except WrongExpectedVersion as exc:
            if strict or attempt == 2:
                raise StaleVersion(case_stream(this.case_id), this.version, exc.actual) from exc
            this = await load_case(store, this.case_id)
    return None


async def _both_sides(cmd: LinkCases | UnlinkCases, store: EventStore, linking: bool) -> LinkResult:
    if cmd.case_id == cmd.other_case_id:
        raise InvalidCommand("a case cannot be linked to itself", field="other_case_id")
    first = await load_case(store, cmd.case_id)
    if cmd.expected_version is not None and first.version != cmd.expected_version:
        raise StaleVersion(case_stream(cmd.case_id), cmd.expected_version, first.version)
    second = await load_case(store, cmd.other_case_id)
    if linking and first.category != second.category:
        raise NotAllowed(f"cases of categories {first.category} and {second.category} are never linked")
    strict = cmd.expected_version is not None
    mine = await _ensure_side(store, cmd, first, second.case_id, linking, strict)
    theirs = await _ensure_side(store, cmd, second, first.case_id, linking, False)
    changed = mine is not None or theirs is not None
    return LinkResult(cmd.case_id, first.version if mine is None else mine, changed)


async def link_cases(cmd: LinkCases, *, store: EventStore) -> LinkResult:
    """Link two cases on both streams; linking an already linked pair changes nothing."""
    return await _both_sides(cmd, store, True)


async def unlink_cases(cmd: UnlinkCases, *, store: EventStore) -> LinkResult:
    """Undo a link on both streams; unlinking cases that are not linked changes nothing."""
    return await _both_sides(cmd, store, False)


def window(p: LinkParams) -> timedelta:
    """The longest look-back of any rule (what the candidate read model must keep)."""
    return timedelta(minutes=max(p.window_min, p.caller_window_min))


HANDLERS: dict[type[Command], Handler] = {LinkCases: link_cases, UnlinkCases: unlink_cases}
