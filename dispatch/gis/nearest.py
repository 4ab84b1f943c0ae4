"""Nearest-provider index: immutable snapshots over a k-d tree in a metric CRS.

Providers are indexed by their geocentric coordinates (ECEF, EPSG:4978, metres):
one CRS valid for every region at once (Xianyang and Dongguan sit in different
Gauss-Kruger zones), and the straight-line chord is never longer than the
geodesic and ranks points in the same order to well under a millimetre at
city scale. Reported distances convert the chord to the geodesic arc on the
local Gaussian sphere (within 1e-6 of pyproj's WGS84 geodesic up to 100 km); beyond
`EXACT_BEYOND_M` (a query from far outside the providers' region) they are pyproj's geodesic,
re-sorted, since the sphere is off by up to 0.4 % across continents.

A snapshot is immutable: the trees (over all providers and per skill, each
also per served district, so static filters cost nothing at query time) are
rebuilt when providers change; availability and load live in small arrays that `with_status`
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
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pykdtree
from pykdtree.kdtree import KDTree as _PyKDTree

from dispatch.core.errors import InvalidCommand, NotFound, check_number
from dispatch.core.messages import Json
from dispatch.gis.geo import geodesic_many_m

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

    def __post_init__(self) -> None:
        for name in ("distance", "skill", "load", "priority"):
            check_number(name, getattr(self, name), 0.0)


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


class Candidate(NamedTuple):
    """One provider found for a query, with geodesic distance and dispatch score.

    A named tuple, not a frozen dataclass: a lookup makes k of them and a
    frozen dataclass costs ~2 us each to construct, a named tuple ~0.3 us.
    """

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

    def as_dict(self) -> Json:
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


class Found(NamedTuple):
    """Raw result of a lookup: provider positions in the snapshot, distances, scores."""

    positions: Sequence[int]
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
# Up to here the local-sphere arc is within 1e-6 of the geodesic (tested to 100 km); beyond it the
# few neighbours found get pyproj's geodesic (~20 us each), as the contract's 0.1 % asks anywhere.
EXACT_BEYOND_M = 50_000.0


def chord_to_geodesic(chord_m: FloatArray, lat: float) -> FloatArray:
    """Arc length for ECEF chords measured from a point at `lat` (local sphere)."""
    two_r = 2.0 * gaussian_radius(lat)
    return np.asarray(two_r * np.arcsin(np.minimum(chord_m / two_r, 1.0)), dtype=np.float64)


def _openmp_setter() -> Callable[[int], object] | None:
    """`omp_set_num_threads` of the OpenMP runtime pykdtree runs on, if it can be found."""
    bundled = sorted((Path(pykdtree.__file__).parent.parent / "pykdtree.libs").glob("libgomp*"))
    name = str(bundled[0]) if bundled else ctypes.util.find_library("gomp")
    if name is None:
        return None
    try:
        setter: Callable[[int], object] = ctypes.CDLL(name).omp_set_num_threads
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
        """Squared distances and indices, shape (len(points), k), of each point's k nearest.

        Points where `mask` is True are skipped; when fewer than k remain the
        rest of a row has an index >= size (and a huge distance). Distances
        stay squared: the square root of the few that are used is cheaper.
        """
        m = len(points)
        if self._tree is None or k <= 0:
            return np.zeros((m, 0)), np.zeros((m, 0), dtype=np.uint32)
        _serial_openmp()
        dist, idx = self._tree.query(points, k=k, mask=mask, sqr_dists=True)
        return dist.reshape(m, k), idx.reshape(m, k)


def _bitsets(values: Sequence[frozenset[str]], vocabulary: Mapping[str, int]) -> npt.NDArray[np.uint64]:
    words = max(1, (len(vocabulary) + 63) // 64)
    bits = np.zeros((len(values), words), dtype=np.uint64)
    for w in range(words):
        word = {name: 1 << (b - 64 * w) if b >> 6 == w else 0 for name, b in vocabulary.items()}
        bits[:, w] = np.array([sum(map(word.__getitem__, names)) for names in values], dtype=np.uint64)
    return bits


def has_bit(bits: npt.NDArray[np.uint64], rows: IntArray, b: int) -> BoolArray:
    """Whether bit `b` is set in the bitset rows at `rows`."""
    return np.asarray((bits[rows, b >> 6] >> np.uint64(b & 63)) & np.uint64(1), dtype=np.bool_)


def spatial_order(xyz: FloatArray, bits: int = 10) -> IntArray:
    """A permutation putting nearby points next to each other (Morton / Z-order).

    pykdtree reads a leaf's points through an index array: when neighbours in
    space are neighbours in memory a query touches a few cache lines, not one
    per point (a cold query costs ~20 % less). Every subset taken in this order
    stays in Z-order, so the trees are built from subsets of it.
    """
    if len(xyz) == 0:
        return np.zeros(0, dtype=np.int64)
    span = np.maximum(np.ptp(xyz, axis=0), 1.0)
    cell = ((xyz - xyz.min(axis=0)) / span * ((1 << bits) - 1)).astype(np.uint64)
    key = np.zeros(len(xyz), dtype=np.uint64)
    for b in range(bits):
        for d in range(3):
            key |= ((cell[:, d] >> np.uint64(b)) & np.uint64(1)) << np.uint64(3 * b + d)
    return np.argsort(key, kind="stable").astype(np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class PointTree:
    """A k-d tree over some providers; `members[j]` is the snapshot position of point j."""

    kd: KDTree
    members: IntArray
    elsewhere: BoolArray | None = None  # True = member serves only listed districts

    @classmethod
    def build(cls, xyz: FloatArray, members: IntArray, serves_all: BoolArray | None = None) -> PointTree:
        """The tree over `xyz[members]` (members in spatial order); `serves_all` is over all providers."""
        elsewhere = None if serves_all is None else ~serves_all[members]
        if elsewhere is not None and not elsewhere.any():
            elsewhere = None
        return cls(KDTree(xyz[members]), members, elsewhere)


Selection = tuple[PointTree, BoolArray | None]


@dataclass(frozen=True, slots=True, eq=False)
class _Layout:
    """The expensive, position-dependent part of a snapshot (trees and static arrays).

    `trees[(skill, None)]` holds every provider with the skill (skill None: all);
    `trees[(skill, district)]` those of them serving the district or everywhere,
    so that static filters cost nothing at query time.
    """

    providers: tuple[Provider, ...]
    positions: Mapping[str, int]
    capacity: IntArray
    serves_all: BoolArray
    district_ids: Mapping[str, int]
    district_bits: npt.NDArray[np.uint64]
    skill_ids: Mapping[str, int]
    skill_bits: npt.NDArray[np.uint64]
    trees: Mapping[tuple[str | None, str | None], PointTree]
    skill_lists: tuple[tuple[str, ...], ...]

    @classmethod
    def build(cls, providers: tuple[Provider, ...]) -> _Layout:
        xyz = ecef([p.lat for p in providers], [p.lon for p in providers]).reshape(-1, 3)
        skill_ids = {s: i for i, s in enumerate(sorted({s for p in providers for s in p.skills}))}
        district_ids = {d: i for i, d in enumerate(sorted({d for p in providers for d in p.districts}))}
        skill_bits = _bitsets([p.skills for p in providers], skill_ids)
        district_bits = _bitsets([p.districts for p in providers], district_ids)
        serves_all = np.array([not p.districts for p in providers], dtype=np.bool_)
        return cls(
            providers=providers,
            positions={p.id: i for i, p in enumerate(providers)},
            capacity=np.array([p.capacity for p in providers], dtype=np.int64),
            serves_all=serves_all,
            district_ids=district_ids,
            district_bits=district_bits,
            skill_ids=skill_ids,
            skill_bits=skill_bits,
            trees=_trees(xyz, skill_ids, skill_bits, district_ids, district_bits, serves_all),
            skill_lists=tuple(tuple(sorted(p.skills)) for p in providers),
        )

    def tree(self, skill: str | None, district: str | None) -> Selection | None:
        """The tree to search for a skill and district, with the mask of members to skip."""
        found = self.trees.get((skill, district))
        if found is not None:
            return found, None
        base = self.trees.get((skill, None))
        if base is None:
            return None
        return base, base.elsewhere  # no provider lists the district: those serving everywhere


def _trees(
    xyz: FloatArray,
    skill_ids: Mapping[str, int],
    skill_bits: npt.NDArray[np.uint64],
    district_ids: Mapping[str, int],
    district_bits: npt.NDArray[np.uint64],
    serves_all: BoolArray,
) -> dict[tuple[str | None, str | None], PointTree]:
    everyone = spatial_order(xyz)
    by_skill: dict[str | None, IntArray] = {None: everyone}
    for skill, b in skill_ids.items():
        by_skill[skill] = everyone[has_bit(skill_bits, everyone, b)]
    trees: dict[tuple[str | None, str | None], PointTree] = {
        (s, None): PointTree.build(xyz, members, serves_all) for s, members in by_skill.items()
    }
    for district, b in district_ids.items():
        listed = has_bit(district_bits, np.arange(len(xyz)), b)
        for s, members in by_skill.items():
            if listed[members].any():
                trees[(s, district)] = PointTree.build(xyz, members[(listed | serves_all)[members]])
    return trees


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
    fetch_sizes: dict[tuple[int, bool, bool], int] = field(default_factory=dict, repr=False)  # memo

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
        selection = self.layout.tree(query.skill, query.district)
        if selection is None or query.k <= 0:
            return _NOTHING
        index, squared, utilisation = self.search(
            selection, np.array([_ecef_point(query.lat, query.lon)]), query
        )
        two_r, asin, sqrt = 2.0 * gaussian_radius(query.lat), math.asin, math.sqrt
        if squared and squared[-1] > two_r * two_r:  # beyond the sphere's diameter: nearly antipodal
            squared = [min(c, two_r * two_r) for c in squared]
        distance = [two_r * asin(sqrt(c) / two_r) for c in squared]
        if distance and distance[-1] > EXACT_BEYOND_M:  # the local sphere is off by up to 0.4 % there
            index, distance, utilisation = self._exact(index, utilisation, query)
        if query.max_distance_m is not None:
            keep = bisect_right(distance, query.max_distance_m)
            index, distance = index[:keep], distance[:keep]
        score = self.scores(index, distance, utilisation, query, weights or _DEFAULT_WEIGHTS)
        return Found(index, distance, score)

    def _exact(
        self, index: list[int], utilisation: list[float], query: NearestQuery
    ) -> tuple[list[int], list[float], list[float]]:
        """The WGS84 geodesic to far neighbours (pyproj), nearest first."""
        providers = self.layout.providers
        exact = geodesic_many_m(query.lat, query.lon, [providers[i].lat for i in index],
                                [providers[i].lon for i in index]).tolist()
        order = sorted(range(len(index)), key=exact.__getitem__)
        return [index[j] for j in order], [exact[j] for j in order], [utilisation[j] for j in order]

    def scores(
        self,
        index: list[int],
        distance_m: list[float],
        utilisation: list[float],
        query: NearestQuery,
        weights: DispatchWeights,
    ) -> list[float]:
        """Dispatch score (lower is better) of the providers at `index` for the query."""
        per_m, w_load = weights.distance / 1000.0, weights.load
        # utilisation is longer than distance_m when max_distance_m cut the list
        score = [per_m * d + w_load * u for d, u in zip(distance_m, utilisation, strict=False)]
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
        settled by the choice of tree).
        """
        key = (k, query.need_capacity, query.available_only)
        fetch = self.fetch_sizes.get(key)
        if fetch is None:
            s = 1.0
            if query.need_capacity or query.available_only:
                s = max(self.open_share if query.need_capacity else self.available_share, 0.02)
            x = (3.0 * math.sqrt(1.0 - s) + math.sqrt(9.0 * (1.0 - s) + 4.0 * k)) / 2.0
            fetch = self.fetch_sizes[key] = max(math.ceil(x * x / s), k)
        return fetch

    def search(
        self, selection: Selection, point: FloatArray, query: NearestQuery
    ) -> tuple[list[int], list[float], list[float]]:
        """Positions, squared chords and utilisations of the k nearest eligible members of a tree."""
        (tree, mask), gate, k = selection, self.gate(query), query.k
        size = tree.kd.size
        fetch = min(size, self.first_fetch(k, query))
        while True:
            squared, local = tree.kd.query(point, fetch, mask)
            complete = fetch >= size or local[0, -1] >= size
            if complete:  # fewer members left than fetched: cut pykdtree's "no neighbour" tail
                cut = int(np.count_nonzero(local[0] < size))
                squared, local = squared[:, :cut], local[:, :cut]
            index = tree.members[local[0]]
            found = index.tolist(), squared[0].tolist(), self.utilisation[index].tolist()
            if gate is not None:
                ok = gate[index].tolist()
                found = tuple(list(compress(column, ok)) for column in found)  # type: ignore[assignment]
            if complete or len(found[0]) >= k:
                return found[0][:k], found[1][:k], found[2][:k]
            fetch = min(size, fetch * 4)

    def nearest(self, query: NearestQuery, weights: DispatchWeights | None = None) -> tuple[Candidate, ...]:
        """The k nearest eligible providers as `Candidate`s, sorted by distance."""
        found = self.find(query, weights)
        return self._candidates(found.positions, found.distance_m, found.score)

    def best(self, query: NearestQuery, weights: DispatchWeights | None = None) -> Candidate | None:
        """The lowest-scoring of the k nearest eligible providers (automatic dispatch)."""
        found = self.find(query, weights)
        if not found.positions:
            return None
        j = min(range(len(found.score)), key=found.score.__getitem__)
        return self._candidates([found.positions[j]], [found.distance_m[j]], [found.score[j]])[0]

    def _candidates(
        self, index: Sequence[int], distance_m: Sequence[float], score: Sequence[float]
    ) -> tuple[Candidate, ...]:
        if not index:
            return ()
        providers, skills = self.layout.providers, self.layout.skill_lists
        loads, available = self.load[index].tolist(), self.available[index].tolist()
        return tuple(  # positional: keywords double the cost of a named tuple
            Candidate(
                (p := providers[i]).id, p.name, d, s, skills[i], n, p.capacity, p.lat, p.lon, p.district, on
            )
            for i, d, s, n, on in zip(index, distance_m, score, loads, available, strict=True)
        )
