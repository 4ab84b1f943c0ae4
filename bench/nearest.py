"""Benchmark: nearest-provider lookup and surge batch assignment (issue 5).

    .venv/bin/python -m bench.nearest [--sizes 100000,1000000] [--queries 20000] [--passes 3]
    intake bench nearest

Providers and cases are drawn (fixed seed) inside the real district polygons of
`gis_data/districts.geojson`. A single lookup is `ProviderSnapshot.find`: k=10
nearest providers with the skill, available, with capacity left and serving
the query point's district, with geodesic distances and dispatch scores. The
baseline is a numpy-vectorised haversine scan over every provider with the same
filters (argpartition for the k best), timed over at least `MIN_BASELINE`
lookups. Every timing (each pass of `find`, `nearest`, the baseline) runs on
a query set of its own, drawn fresh and used once after an untimed warm-up
set of its own: no query is ever timed twice, so no pass finds its queries'
tree nodes and providers already in the CPU caches. Index answers are checked
against a brute-force WGS84 geodesic (pyproj) over the filtered providers.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import shape

from dispatch.gis.batch import WaitingCase, assign_batch
from dispatch.gis.geo import DistrictIndex, geodesic_many_m
from dispatch.gis.nearest import NearestQuery, Provider, ProviderSnapshot, has_bit

DISTRICTS = Path(__file__).resolve().parents[1] / "gis_data" / "districts.geojson"
SKILLS = (
    "power_repair", "line_repair", "transformer", "plumbing", "elderly_care",
    "medical", "locksmith", "cleaning", "appliance_repair", "security",
)  # fmt: skip
SEED = 5
K = 10
WARMUP = 50
"""Untimed calls before each timing."""
MIN_BASELINE = 2_000
"""Fewest lookups the baseline scan is timed over, whatever the provider count."""
EARTH_R = 6_371_008.8


@dataclass(frozen=True, slots=True)
class Region:
    """District polygons with the index to name a point's district."""

    codes: tuple[str, ...]
    polygons: tuple[shapely.Geometry, ...]
    weights: npt.NDArray[np.float64]
    index: DistrictIndex


def region() -> Region:
    """The 15 districts, weighted by area for sampling."""
    features = json.loads(DISTRICTS.read_text(encoding="utf-8"))["features"]
    polygons = tuple(shape(f["geometry"]) for f in features)
    areas = np.array([p.area for p in polygons])
    codes = tuple(f["properties"]["adcode"] for f in features)
    return Region(codes, polygons, areas / areas.sum(), DistrictIndex.from_features(features))


def sample(reg: Region, n: int, rng: np.random.Generator) -> tuple[npt.NDArray[np.float64], ...]:
    """n (lat, lon, district position) points uniformly inside the districts."""
    counts = rng.multinomial(n, reg.weights)
    lats, lons, codes = [], [], []
    for i, (poly, m) in enumerate(zip(reg.polygons, counts, strict=True)):
        minx, miny, maxx, maxy = poly.bounds
        got = 0
        while got < m:
            xs, ys = rng.uniform(minx, maxx, 3 * m + 16), rng.uniform(miny, maxy, 3 * m + 16)
            inside = shapely.contains_xy(poly, xs, ys)
            take = min(m - got, int(inside.sum()))
            lons.append(xs[inside][:take])
            lats.append(ys[inside][:take])
            got += take
        codes.append(np.full(m, i))
    order = rng.permutation(n)
    return (
        np.concatenate(lats)[order],
        np.concatenate(lons)[order],
        np.concatenate(codes)[order].astype(np.float64),
    )


def make_providers(reg: Region, n: int, rng: np.random.Generator) -> list[Provider]:
    """n providers with 1-3 skills, capacity 1-6, 90 % available, serving their district."""
    lats, lons, where = sample(reg, n, rng)
    n_skills = rng.integers(1, 4, n)
    picks = np.argsort(rng.random((n, len(SKILLS))), axis=1)
    caps, loads, avail = rng.integers(1, 7, n), rng.integers(0, 3, n), rng.random(n) < 0.9
    return [
        Provider(
            id=f"P{i:07d}",
            name=f"provider {i}",
            lat=float(lats[i]),
            lon=float(lons[i]),
            skills=frozenset(SKILLS[j] for j in picks[i, : n_skills[i]]),
            capacity=int(caps[i]),
            districts=frozenset({reg.codes[int(where[i])]}),
            available=bool(avail[i]),
            load=int(loads[i]),
            district=reg.codes[int(where[i])],
        )
        for i in range(n)
    ]


def make_queries(reg: Region, n: int, rng: np.random.Generator) -> list[NearestQuery]:
    """n lookups at random points, with a random skill and the point's district."""
    lats, lons, where = sample(reg, n, rng)
    skills = rng.integers(0, len(SKILLS), n)
    return [
        NearestQuery(
            float(lats[i]), float(lons[i]), k=K, skill=SKILLS[skills[i]], district=reg.codes[int(where[i])]
        )
        for i in range(n)
    ]


class Haversine:
    """The naive baseline: a vectorised haversine scan over all providers, same filters."""

    def __init__(self, snap: ProviderSnapshot) -> None:
        providers = snap.layout.providers
        self.snap = snap
        self.lat = np.radians([p.lat for p in providers])
        self.lon = np.radians([p.lon for p in providers])
        self.cos_lat = np.cos(self.lat)
        everyone = np.arange(len(providers))
        self.skill_ok = {
            s: has_bit(snap.layout.skill_bits, everyone, b) & snap.open
            for s, b in snap.layout.skill_ids.items()
        }
        self.everyone = everyone

    def __call__(self, q: NearestQuery) -> npt.NDArray[np.int64]:
        """Positions of the k nearest eligible providers."""
        lat, lon = math.radians(q.lat), math.radians(q.lon)
        a = (
            np.sin((self.lat - lat) / 2) ** 2
            + math.cos(lat) * self.cos_lat * np.sin((self.lon - lon) / 2) ** 2
        )
        dist = 2 * EARTH_R * np.arcsin(np.sqrt(a))
        ok = self.snap.eligible(self.everyone, q) & self.skill_ok[q.skill or ""]
        dist[~ok] = np.inf
        part = np.argpartition(dist, K)[:K]
        return part[np.argsort(dist[part])]


def timings_us(
    fn: Callable[[NearestQuery], object], queries: Sequence[NearestQuery], warmup: Sequence[NearestQuery]
) -> npt.NDArray[np.float64]:
    """Wall time of each call on `queries` in microseconds, after untimed calls on `warmup`.

    The garbage collector stays on, as in the server.
    """
    out = np.empty(len(queries))
    for q in warmup:
        fn(q)
    for i, q in enumerate(queries):
        t = time.perf_counter_ns()
        fn(q)
        out[i] = (time.perf_counter_ns() - t) / 1000.0
    return out


def check(snap: ProviderSnapshot, queries: Sequence[NearestQuery]) -> int:
    """How many lookups agree with a brute-force geodesic scan (distances within 1 mm)."""
    providers = snap.layout.providers
    lats, lons = np.array([p.lat for p in providers]), np.array([p.lon for p in providers])
    everyone = np.arange(len(providers))
    good = 0
    for q in queries:
        ok = snap.eligible(everyone, q) & has_bit(
            snap.layout.skill_bits, everyone, snap.layout.skill_ids[q.skill or ""]
        )
        exact = np.sort(geodesic_many_m(q.lat, q.lon, lats[ok], lons[ok]))[:K]
        good += bool(np.allclose(snap.find(q).distance_m, exact, rtol=0, atol=1e-3))
    return good


def baseline_lookups(n_queries: int, providers: int) -> int:
    """Lookups of the baseline scan: as many as the index's, up to ~50 M provider visits, at least 2,000."""
    return max(MIN_BASELINE, min(n_queries, 50_000_000 // providers))


def lookup_rows(
    reg: Region, sizes: Sequence[int], n_queries: int, rng: np.random.Generator, passes: int = 3
) -> list[str]:
    """Markdown rows for single lookups at each size.

    The index is timed in `passes` passes of `n_queries` fresh lookups each,
    pooled: on a shared 2-vCPU machine one pass can fall into a burst of
    someone else's work, and the pooled p99 says what a caller sees over the
    whole run. The per-pass p99 are printed too.
    """
    rows = []
    for n in sizes:
        snap = ProviderSnapshot.build(make_providers(reg, n, rng))

        def timed(fn: Callable[[NearestQuery], object], count: int) -> npt.NDArray[np.float64]:
            return timings_us(fn, make_queries(reg, count, rng), make_queries(reg, WARMUP, rng))

        t = time.perf_counter()
        ProviderSnapshot.build(snap.layout.providers)
        build_s = time.perf_counter() - t
        runs = [timed(snap.find, n_queries) for _ in range(passes)]
        index = np.concatenate(runs)
        per_pass = " / ".join(f"{np.percentile(ts, 99):.1f}" for ts in runs)
        objects = timed(snap.nearest, n_queries // 4)
        naive = timed(Haversine(snap), baseline_lookups(n_queries, n))
        agree = check(snap, make_queries(reg, 100, rng))
        methods = (
            ("index `find` (pykdtree/ECEF)", index),
            ("index `nearest` (+ Candidate objects)", objects),
            ("naive numpy haversine scan", naive),
        )
        for name, ts in methods:
            p50, p99 = np.percentile(ts, [50, 99])
            rows.append(f"| {n:,} | {name} | {len(ts):,} | {p50:,.1f} | {p99:,.1f} | {ts.mean():,.1f} |")
        rows.append(f"| {n:,} | index build {build_s:.2f} s; brute-force agreement {agree}/100; "
                    f"`find` p99 per pass {per_pass} us | | | | |")
    return rows


def batch_row(reg: Region, rng: np.random.Generator, n_providers: int = 50_000, n_cases: int = 5_000) -> str:
    """Markdown row for the surge batch: 5,000 power-fault cases over 50,000 providers."""
    snap = ProviderSnapshot.build(make_providers(reg, n_providers, rng))
    lats, lons, where = sample(reg, n_cases, rng)
    skills = rng.choice(["power_repair", "line_repair", "transformer"], n_cases)
    cases = [
        WaitingCase(
            f"C{i}", float(lats[i]), float(lons[i]), str(skills[i]), reg.codes[int(where[i])], int(1 + i % 4)
        )
        for i in range(n_cases)
    ]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        result = assign_batch(snap, cases, k=8)
        times.append(time.perf_counter() - t)
    best, median = min(times) * 1000, sorted(times)[1] * 1000
    return (
        f"| {n_cases:,} cases / {n_providers:,} providers, k=8 | {median:,.0f} ms (best {best:,.0f}) "
        f"| {len(result.assignments):,} assigned, {len(result.unassigned):,} waiting |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print markdown tables."""
    parser = argparse.ArgumentParser(prog="intake bench nearest", description="nearest-provider benchmark")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--passes", type=int, default=3,
                        help="timed passes of `find`, each over --queries fresh lookups")
    args = parser.parse_args(list(argv or []))
    rng = np.random.default_rng(SEED)
    reg = region()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print("| providers | method | lookups | p50 us | p99 us | mean us |")
    print("|---:|---|---:|---:|---:|---:|")
    for row in lookup_rows(reg, sizes, args.queries, rng, args.passes):
        print(row, flush=True)
    print()
    print("| batch | time | outcome |")
    print("|---|---:|---|")
    print(batch_row(reg, rng))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
