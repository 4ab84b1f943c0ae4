"""Nearest-provider index: immutable snapshots over a k-d tree in a metric CRS.

Providers are indexed by their geocentric coordinates (ECEF, EPSG:4978, metres):
one CRS valid for every region at once (Xianyang and Dongguan sit in different
Gauss-Kruger zones), and the straight-line chord is never longer than the
geodesic and ranks points in the same order to well under a millimetre at
city scale. Reported distances convert the chord to the geodesic arc on the
local Gaussian sphere (within 1e-6 of pyproj's WGS84 geodesic up to 100 km).

A snapshot is immutable: the trees (one over all providers, one per skill)
are rebuilt when providers change, each with a precomputed mask per district
so that the tree search itself skips providers not serving the query's
district; availability and load live in small arrays that `with_status`
copies cheaply and are checked on the few fetched neighbours in plain Python
(for k ~ 10-40 cheaper than a chain of numpy calls). `ProviderIndexHolder` swaps snapshots
atomically and rebuilds in a background thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pykdtree
from pykdtree.kdtree import KDTree as _PyKDTree

from dispatch.errors import InvalidCommand, NotFound

_A = 6378137.0
_E2 = 6.69437999014e-3
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Provider:
    """A service provider or field crew as the index sees it (WGS84 position)."""

    id: str
    name: str
    lat: float
    lon: float
    skills: frozenset[str]
    capacity: int
    districts: frozenset[str] = frozenset()  # adcodes served; empty = everywhere
    available: bool = True
    load: int = 0
    district: str | None = None
    phone: str = ""


@dataclass(frozen=True, slots=True)
class DispatchWeights:
    """Weights of the dispatch score a*distance + b*skill + c*load (+ priority).

    `distance` is per kilometre, `skill` per missing fraction of the preferred
    skills, `load` per unit of utilisation (load / capacity); `priority` is what
    leaving a case unassigned costs per urgency step (5 - priority) in a batch.
    """

    distance: float = 1.0
    skill: float = 5.0
    load: float = 3.0
    priority: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = "INTAKE_DISPATCH_WEIGHT_") -> DispatchWeights:
        """Weights from e.g. INTAKE_DISPATCH_WEIGHT_DISTANCE=1.5; unset ones keep their defaults."""
        values: dict[str, float] = {}
        for name in ("distance", "skill", "load", "priority"):
            raw = env.get(prefix + name.upper())
            if raw is not None:
                try:
                    values[name] = float(raw)
                except ValueError as exc:
                    raise InvalidCommand(f"{prefix}{name.upper()} must be a number", field=name) from exc
        return cls(**values)


@dataclass(frozen=True, slots=True)
class NearestQuery:
    """A request for the k nearest eligible providers around a WGS84 point."""

    lat: float
    lon: float
    k: int = 10
    skill: str | None = None
    district: str | None = None
    available_only: bool = True
    need_capacity: bool = True
    preferred_skills: frozenset[str] = frozenset()
    max_distance_m: float | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One provider found for a query, with geodesic distance and dispatch score."""

    provider_id: str
    name: str
    distance_m: float
    score: float
    skills: tuple[str, ...]
    load: int
    capacity: int
    lat: float
    lon: float
    district: str | None
    available: bool

    def as_dict(self) -> dict[str, Any]:
        """The JSON item of `GET /api/v1/providers/nearest`."""
        return {
            "id": self.provider_id,
            "name": self.name,
            "distance_m": round(self.distance_m, 1),
            "score": round(self.score, 4),
            "skills": list(self.skills),
            "load": self.load,
            "capacity": self.capacity,
            "available": self.available,
            "lat": self.lat,
            "lon": self.lon,
            "district": self.district,
        }


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A provider's new availability and/or load (None leaves it as it is)."""

    provider_id: str
    available: bool | None = None
    load: int | None = None


@dataclass(frozen=True, slots=True)
class Found:
    """Raw result of a lookup: provider positions in the snapshot, distances, scores."""

    index: Sequence[int]
    distance_m: Sequence[float]
    score: Sequence[float]


def ecef(lats: npt.ArrayLike, lons: npt.ArrayLike) -> FloatArray:
    """WGS84 latitude/longitude (degrees, height 0) to geocentric x, y, z in metres."""
    lat = np.radians(np.asarray(lats, dtype=np.float64))
    lon = np.radians(np.asarray(lons, dtype=np.float64))
    sin_lat = np.sin(lat)
    n = _A / np.sqrt(1.0 - _E2 * sin_lat * sin_lat)
    cos_lat = np.cos(lat)
    return np.column_stack((n * cos_lat * np.cos(lon), n * cos_lat * np.sin(lon), n * (1.0 - _E2) * sin_lat))


def _ecef_point(lat: float, lon: float) -> list[float]:
    phi, lam = math.radians(lat), math.radians(lon)
    s = math.sin(phi)
    n = _A / math.sqrt(1.0 - _E2 * s * s)
    c = math.cos(phi)
    return [n * c * math.cos(lam), n * c * math.sin(lam), n * (1.0 - _E2) * s]


def gaussian_radius(lat: float) -> float:
    """The Gaussian mean radius of curvature of WGS84 at a latitude, in metres."""
    s = math.sin(math.radians(lat))
    w = 1.0 - _E2 * s * s
    return _A * math.sqrt(1.0 - _E2) / w


_NOTHING = Found((), (), ())
_DEFAULT_WEIGHTS = DispatchWeights()


def chord_to_geodesic(chord_m: FloatArray, lat: float) -> FloatArray:
    """Arc length for ECEF chords measured from a point at `lat` (local sphere)."""
    two_r = 2.0 * gaussian_radius(lat)
    return np.asarray(two_r * np.arcsin(np.minimum(chord_m / two_r, 1.0)), dtype=np.float64)


def _openmp_setter() -> Callable[[int], Any] | None:
    """`omp_set_num_threads` of the OpenMP runtime pykdtree runs on, if it can be found."""
    bundled = sorted((Path(pykdtree.__file__).parent.parent / "pykdtree.libs").glob("libgomp*"))
    name = str(bundled[0]) if bundled else ctypes.util.find_library("gomp")
    if name is None:
        return None
    try:
        setter: Callable[[int], Any] = ctypes.CDLL(name).omp_set_num_threads
    except (OSError, AttributeError):
        return None
    return setter


_OMP_SET_NUM_THREADS = _openmp_setter()
_SERIAL = threading.local()


def _serial_openmp() -> None:
    """Make pykdtree query on the calling thread alone (OpenMP settings are per thread).

    A team of OpenMP threads for one query point only adds a barrier: on a busy
    machine waiting for a descheduled team member costs hundreds of
    microseconds, and a batch's tree queries are a small part of its time.
    """
    if _OMP_SET_NUM_THREADS is not None and not getattr(_SERIAL, "done", False):
        _OMP_SET_NUM_THREADS(1)
        _SERIAL.done = True


class KDTree:
    """A pykdtree k-d tree over 3-D points (empty trees allowed)."""

    __slots__ = ("_tree", "size")

    def __init__(self, points: FloatArray) -> None:
        self.size = len(points)
        data = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        self._tree: Any = _PyKDTree(data) if self.size else None

    def query(
        self, points: FloatArray, k: int, mask: BoolArray | None = None
    ) -> tuple[FloatArray, npt.NDArray[np.uint32]]:
        """Distances and indices, shape (len(points), k), of each point's k nearest.

        Points where `mask` is True are skipped; when fewer than k remain the
        rest of a row has an index >= size (and a huge distance).
        """
        m = len(points)
        if self._tree is None or k <= 0:
            return np.zeros((m, 0)), np.zeros((m, 0), dtype=np.uint32)
        _serial_openmp()
        dist, idx = self._tree.query(points, k=k, mask=mask)
        return dist.reshape(m, k), idx.reshape(m, k)


def _bitsets(values: Sequence[frozenset[str]], vocabulary: Mapping[str, int]) -> npt.NDArray[np.uint64]:
    words = max(1, (len(vocabulary) + 63) // 64)
    bits = np.zeros((len(values), words), dtype=np.uint64)
    for row, names in enumerate(values):
        for name in names:
            b = vocabulary[name]
            bits[row, b >> 6] |= np.uint64(1 << (b & 63))
    return bits


def has_bit(bits: npt.NDArray[np.uint64], rows: IntArray, b: int) -> BoolArray:
    """Whether bit `b` is set in the bitset rows at `rows`."""
    return np.asarray((bits[rows, b >> 6] >> np.uint64(b & 63)) & np.uint64(1), dtype=np.bool_)


@dataclass(frozen=True, slots=True, eq=False)
class SkillTree:
    """A k-d tree over the providers having one skill (or all), with district masks.

    `members[j]` is the snapshot position of tree point j. The masks (True =
    does not serve) keep static ineligibility out of the tree search itself.
    """

    kd: KDTree
    members: IntArray
    masks: Mapping[str, BoolArray | None]  # per known district; None = every member serves it
    elsewhere: BoolArray | None  # for an unknown district: True = serves only listed districts

    @classmethod
    def build(
        cls, xyz: FloatArray, members: IntArray, excluded: Mapping[str, BoolArray], local: BoolArray
    ) -> SkillTree:
        """The tree over `xyz[members]`; `excluded[d]` and `local` are over all providers."""
        masks = {d: _mask(out[members]) for d, out in excluded.items()}
        return cls(KDTree(xyz[members]), members, masks, _mask(local[members]))

    def mask(self, district: str | None) -> BoolArray | None:
        """The members not serving `district` (None: no district filter)."""
        if district is None:
            return None
        return self.masks.get(district, self.elsewhere)


def _mask(excluded: BoolArray) -> BoolArray | None:
    return np.ascontiguousarray(excluded) if excluded.any() else None


@dataclass(frozen=True, slots=True, eq=False)
class _Layout:
    """The expensive, position-dependent part of a snapshot (trees and static arrays)."""

    providers: tuple[Provider, ...]
    positions: Mapping[str, int]
    capacity: IntArray
    serves_all: BoolArray
    district_ids: Mapping[str, int]
    district_bits: npt.NDArray[np.uint64]
    skill_ids: Mapping[str, int]
    skill_bits: npt.NDArray[np.uint64]
    trees: Mapping[str | None, SkillTree]
    skill_lists: tuple[tuple[str, ...], ...]

    @classmethod
    def build(cls, providers: tuple[Provider, ...]) -> _Layout:
        xyz = ecef([p.lat for p in providers], [p.lon for p in providers]).reshape(-1, 3)
        skill_ids = {s: i for i, s in enumerate(sorted({s for p in providers for s in p.skills}))}
        district_ids = {d: i for i, d in enumerate(sorted({d for p in providers for d in p.districts}))}
        skill_bits = _bitsets([p.skills for p in providers], skill_ids)
        district_bits = _bitsets([p.districts for p in providers], district_ids)
        serves_all = np.array([not p.districts for p in providers], dtype=np.bool_)
        everyone = np.arange(len(providers), dtype=np.int64)
        excluded = {d: ~(serves_all | has_bit(district_bits, everyone, b)) for d, b in district_ids.items()}
        trees: dict[str | None, SkillTree] = {None: SkillTree.build(xyz, everyone, excluded, ~serves_all)}
        for skill, b in skill_ids.items():
            members = np.flatnonzero(has_bit(skill_bits, everyone, b)).astype(np.int64)
            trees[skill] = SkillTree.build(xyz, members, excluded, ~serves_all)
        return cls(
            providers=providers,
            positions={p.id: i for i, p in enumerate(providers)},
            capacity=np.array([p.capacity for p in providers], dtype=np.int64),
            serves_all=serves_all,
            district_ids=district_ids,
            district_bits=district_bits,
            skill_ids=skill_ids,
            skill_bits=skill_bits,
            trees=trees,
            skill_lists=tuple(tuple(sorted(p.skills)) for p in providers),
        )


@dataclass(frozen=True, slots=True, eq=False)
class ProviderSnapshot:
    """An immutable, queryable view of all providers at one moment."""

    layout: _Layout
    available: BoolArray
    load: IntArray
    open: BoolArray = field(repr=False)  # available and load < capacity
    utilisation: FloatArray = field(repr=False)  # load / capacity
    open_share: float = 1.0  # fraction of providers open for work
    available_share: float = 1.0  # fraction of providers available
    version: int = 0

    @classmethod
    def build(cls, providers: Iterable[Provider], version: int = 0) -> ProviderSnapshot:
        """Index providers (O(n log n); run in a thread for large n)."""
        items = tuple(providers)
        if len({p.id for p in items}) != len(items):
            raise InvalidCommand("provider ids must be unique", field="id")
        layout = _Layout.build(items)
        available = np.array([p.available for p in items], dtype=np.bool_)
        load = np.array([p.load for p in items], dtype=np.int64)
        return cls._make(layout, available, load, version)

    @classmethod
    def _make(cls, layout: _Layout, available: BoolArray, load: IntArray, version: int) -> ProviderSnapshot:
        opened = available & (load < layout.capacity)
        utilisation = np.asarray(load / np.maximum(layout.capacity, 1), dtype=np.float64)
        shares = (float(opened.mean()), float(available.mean())) if len(opened) else (1.0, 1.0)
        return cls(layout, available, load, opened, utilisation, *shares, version)

    def __len__(self) -> int:
        return len(self.layout.providers)

    def provider(self, provider_id: str) -> Provider:
        """The provider with this id as indexed (availability/load: see `status`)."""
        try:
            return self.layout.providers[self.layout.positions[provider_id]]
        except KeyError as exc:
            raise NotFound(f"no provider {provider_id!r}") from exc

    def status(self, provider_id: str) -> tuple[bool, int]:
        """Current (available, load) of a provider."""
        i = self.layout.positions.get(provider_id)
        if i is None:
            raise NotFound(f"no provider {provider_id!r}")
        return bool(self.available[i]), int(self.load[i])

    def with_status(self, changes: Iterable[StatusChange], version: int | None = None) -> ProviderSnapshot:
        """A new snapshot with availability/load changed; trees are shared, not rebuilt."""
        available, load = self.available.copy(), self.load.copy()
        for change in changes:
            i = self.layout.positions.get(change.provider_id)
            if i is None:
                continue
            if change.available is not None:
                available[i] = change.available
            if change.load is not None:
                load[i] = max(0, change.load)
        next_version = self.version + 1 if version is None else version
        return ProviderSnapshot._make(self.layout, available, load, next_version)

    def gate(self, query: NearestQuery) -> BoolArray | None:
        """The dynamic filter of a query: open, available, or none."""
        if query.need_capacity:
            return self.open
        return self.available if query.available_only else None

    def eligible(self, index: IntArray, query: NearestQuery) -> BoolArray:
        """Which of the providers at `index` pass the query's filters (skill aside)."""
        gate = self.gate(query)
        mask = np.ones(len(index), dtype=np.bool_) if gate is None else gate[index]
        if query.district is not None:
            serves = self.layout.serves_all[index]
            b = self.layout.district_ids.get(query.district)
            if b is not None:
                serves = serves | has_bit(self.layout.district_bits, index, b)
            mask = mask & serves
        return mask

    def find(self, query: NearestQuery, weights: DispatchWeights | None = None) -> Found:
        """The k nearest eligible providers, nearest first (positions, metres, scores)."""
        tree = self.layout.trees.get(query.skill)
        if tree is None or query.k <= 0:
            return _NOTHING
        index, chord = self.search(tree, np.array([_ecef_point(query.lat, query.lon)]), query)
        two_r = 2.0 * gaussian_radius(query.lat)
        distance = [two_r * math.asin(min(c / two_r, 1.0)) for c in chord]
        if query.max_distance_m is not None:
            keep = bisect_right(distance, query.max_distance_m)
            index, distance = index[:keep], distance[:keep]
        return Found(index, distance, self.scores(index, distance, query, weights or _DEFAULT_WEIGHTS))

    def scores(
        self, index: list[int], distance_m: list[float], query: NearestQuery, weights: DispatchWeights
    ) -> list[float]:
        """Dispatch score (lower is better) of the providers at `index` for the query."""
        per_m, w_load = weights.distance / 1000.0, weights.load
        utilisation = self.utilisation[index].tolist() if index else []
        score = [per_m * d + w_load * u for d, u in zip(distance_m, utilisation, strict=True)]
        wanted = query.preferred_skills
        if wanted:
            providers, w_skill, n = self.layout.providers, weights.skill, len(wanted)
            for j, i in enumerate(index):
                score[j] += w_skill * (1.0 - len(wanted & providers[i].skills) / n)
        return score

    def first_fetch(self, k: int, query: NearestQuery) -> int:
        """How many neighbours to fetch first so that k pass the dynamic filter (~99.9 %).

        The smallest n whose binomial mean n*s lies 3 standard deviations above k,
        s being the share of providers passing the filter (static filters are
        masked inside the tree search).
        """
        s = 1.0
        if query.need_capacity or query.available_only:
            s = max(self.open_share if query.need_capacity else self.available_share, 0.02)
        x = (3.0 * math.sqrt(1.0 - s) + math.sqrt(9.0 * (1.0 - s) + 4.0 * k)) / 2.0
        return max(math.ceil(x * x / s), k)

    def search(
        self, tree: SkillTree, point: FloatArray, query: NearestQuery
    ) -> tuple[list[int], list[float]]:
        """Positions and chords of the k nearest eligible members of `tree` to an ECEF point."""
        mask, gate, k, size = tree.mask(query.district), self.gate(query), query.k, tree.kd.size
        fetch = min(size, self.first_fetch(k, query))
        while True:
            chord, local = tree.kd.query(point, fetch, mask)
            complete = fetch >= size or local[0, -1] >= size
            if complete:  # fewer members left than fetched: cut pykdtree's "no neighbour" tail
                cut = int(np.count_nonzero(local[0] < size))
                chord, local = chord[:, :cut], local[:, :cut]
            chords = chord[0].tolist()
            index = tree.members[local[0]]
            positions = index.tolist()
            if gate is not None:
                ok = gate[index].tolist()
                positions, chords = list(compress(positions, ok)), list(compress(chords, ok))
            if complete or len(positions) >= k:
                return positions[:k], chords[:k]
            fetch = min(size, fetch * 4)

    def nearest(self, query: NearestQuery, weights: DispatchWeights | None = None) -> tuple[Candidate, ...]:
        """The k nearest eligible providers as `Candidate`s, sorted by distance."""
        found = self.find(query, weights)
        rows = zip(found.index, found.distance_m, found.score, strict=True)
        return tuple(self._candidate(i, d, s) for i, d, s in rows)

    def best(self, query: NearestQuery, weights: DispatchWeights | None = None) -> Candidate | None:
        """The lowest-scoring of the k nearest eligible providers (automatic dispatch)."""
        found = self.find(query, weights)
        if not found.index:
            return None
        j = min(range(len(found.score)), key=found.score.__getitem__)
        return self._candidate(found.index[j], found.distance_m[j], found.score[j])

    def _candidate(self, i: int, distance_m: float, score: float) -> Candidate:
        p = self.layout.providers[i]
        return Candidate(
            provider_id=p.id,
            name=p.name,
            distance_m=distance_m,
            score=score,
            skills=self.layout.skill_lists[i],
            load=int(self.load[i]),
            capacity=p.capacity,
            lat=p.lat,
            lon=p.lon,
            district=p.district,
            available=bool(self.available[i]),
        )
