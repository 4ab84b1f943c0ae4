"""`intake bench linking`: duplicate-case linking on a generated, labelled storm.

A storm with a fixed seed inside the real district polygons (gis_data/
districts.geojson; bounding boxes of Xianyang and Dongguan without it):
outage incidents of a few dozen to a few hundred contacts each over phone,
SMS, web and WeChat, with per-channel location noise (geocoded registered
addresses, addresses in SMS text, GPS, WeChat locations), badly geocoded
outliers, contacts without a place, queueing jitter, repeat callers, near-miss
incidents a few km apart, and unrelated cases of every category mixed in.

Every contact goes, in arrival order, through `LinkingPolicy.decide_for` over
`MemoryCandidates` - the code path the reactor runs - and the links' connected
components are scored pairwise against the labels (and incident membership
against the true outages). Baselines of the same run: linking by caller only,
and the same decisions from a brute-force candidate scan (no spatial index).

The defaults (radius, window) were chosen with `--sweep` on the storm of
`TUNING_SEED`, and other seeds informed them too (`TUNING_SEEDS`). So the
quality reported, and held against the thresholds, is the median (and range)
over storms of `HELD_OUT_SEEDS`, none of which chose anything; the tuning
storm's row is shown beside it, labelled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatch.gis.geo import DistrictIndex, geodesic_m
from dispatch.linking.clustering import CaseSketch, LinkParams, MemoryCandidates, bbox, same_caller
from dispatch.linking.policy import CandidateSource, LinkingPolicy

DISTRICTS = Path(__file__).resolve().parent.parent / "gis_data" / "districts.geojson"
FALLBACK_BOXES = {"xianyang": (34.1, 107.6, 34.8, 109.1), "dongguan": (22.6, 113.5, 23.2, 114.3)}
START = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)  # 18:00 Beijing time, a summer storm
CHANNELS = (("phone", 0.55), ("sms", 0.15), ("web", 0.10), ("wechat", 0.20))
NOISE_M = {"phone": 60.0, "sms": 150.0, "web": 20.0, "wechat": 30.0}  # 1-sigma per axis
NO_PLACE = {"phone": 0.01, "sms": 0.05, "web": 0.0, "wechat": 0.0}  # power-fault intake requires an address
OUTLIER_RATE = 0.03  # badly geocoded addresses: 1-5 km off
REPEAT_RATE = 0.12
MIN_APART_M = 4000.0  # independent outages; the near misses are placed 2.5-3.5 km apart
TUNING_SEED = 20260715
"""The storm the defaults were swept on (radius 1 km, window 60 min)."""
TUNING_SEEDS = frozenset({TUNING_SEED, 99, 3, 7, 11, 1, 2, 101, 102, 103, 104, 105})
"""Every seed that informed a default: the sweep's, 99 (where neighbouring outages merge
from 1.5 km), 99, 3, 7, 11, 1, 2 (the incident merge's 1.5 radii), 7 (the unit test's storm),
101-105 (held out until session 14; their misses showed single linkage chaining near misses,
and they informed `HOME_RADII`)."""
HELD_OUT_SEEDS = (106, 107, 108, 109, 110)
"""Storms no default was chosen on: the reported quality is their median."""
MIN_HELD_OUT = 5
OTHER_CATEGORIES = (("power_fault", 0.30), ("voltage_anomaly", 0.05), ("consultation", 0.20),
                    ("complaint", 0.15), ("report", 0.10), ("home_service", 0.10),
                    ("public_affairs", 0.10))


@dataclass(frozen=True, slots=True)
class Contact:
    """A generated contact: its case sketch, its true matter and true outage (if any)."""

    sketch: CaseSketch
    matter: str
    outage: str | None
    channel: str


@dataclass(slots=True)
class Area:
    """Where points can be drawn: district polygons, or fallback boxes."""

    index: DistrictIndex | None
    boxes: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path = DISTRICTS) -> Area:
        """The real districts when the file exists, else the fallback boxes."""
        if path.exists():
            features = json.loads(path.read_text("utf-8"))["features"]
            return cls(DistrictIndex.from_features(features))
        return cls(None, list(FALLBACK_BOXES.items()))

    def names(self) -> list[str]:
        """District codes (or box names)."""
        if self.index is not None:
            return [d.adcode for d in self.index.districts]
        return [name for name, _ in self.boxes]

    def point_in(self, rng: random.Random, name: str) -> tuple[float, float]:
        """A uniform random point inside a district (rejection sampling)."""
        if self.index is None:
            lat0, lon0, lat1, lon1 = dict(self.boxes)[name]
            return rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)
        district = self.index.by_adcode(name)
        assert district is not None
        lon0, lat0, lon1, lat1 = district.geometry.bounds
        while True:
            lat, lon = rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)
            found = self.index.locate(lat, lon)
            if found is not None and found.adcode == name:
                return lat, lon

    def district_of(self, lat: float, lon: float) -> str | None:
        """The district a registration would record for a point."""
        if self.index is None:
            return next((n for n, (a, b, c, d) in self.boxes if a <= lat <= c and b <= lon <= d), None)
        found = self.index.locate(lat, lon)
        return None if found is None else found.adcode


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / 111_320.0, lon + east_m / (111_320.0 * math.cos(math.radians(lat)))


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return geodesic_m(a[0], a[1], b[0], b[1])


def _pick(rng: random.Random, table: Sequence[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


class Storm:
    """The generator (deterministic for a seed)."""

    def __init__(self, seed: int, area: Area) -> None:
        self.rng = random.Random(seed)
        self.area = area
        self.contacts: list[Contact] = []
        self._serial = 0

    def _caller(self, channel: str) -> tuple[str | None, str | None]:
        self._serial += 1
        if channel == "wechat" and self.rng.random() < 0.7:
            return None, f"oWX{self._serial:08d}"
        return f"13{self.rng.randint(100_000_000, 999_999_999)}", None

    def _observed(self, lat: float, lon: float, channel: str) -> tuple[float, float] | None:
        rng = self.rng
        if rng.random() < NO_PLACE[channel]:
            return None
        if rng.random() < OUTLIER_RATE:
            dist, angle = rng.uniform(1000, 5000), rng.uniform(0, 2 * math.pi)
            return _offset(lat, lon, dist * math.cos(angle), dist * math.sin(angle))
        sigma = NOISE_M[channel]
        return _offset(lat, lon, rng.gauss(0, sigma), rng.gauss(0, sigma))

    def _add(self, matter: str, outage: str | None, category: str, at: datetime,
             true_place: tuple[float, float], channel: str, caller: tuple[str | None, str | None]) -> Contact:
        self._serial += 1
        place = self._observed(*true_place, channel)
        lat, lon = place if place else (None, None)
        district = self.area.district_of(lat, lon) if lat is not None and lon is not None else None
        at = at + timedelta(minutes=self.rng.uniform(0, 10))  # queueing before registration
        sketch = CaseSketch(f"C{self._serial:07d}", category, at, lat, lon, district, *caller)
        contact = Contact(sketch, matter, outage, channel)
        self.contacts.append(contact)
        return contact

    def _repeat(self, first: Contact, true_place: tuple[float, float], mean_min: float) -> None:
        at = first.sketch.at + timedelta(minutes=self.rng.expovariate(1 / mean_min))
        channel = first.channel if first.channel != "wechat" or first.sketch.phone else "wechat"
        self._add(first.matter, first.outage, first.sketch.category, at, true_place, channel,
                  (first.sketch.phone, first.sketch.openid))

    def outage(self, name: str, category: str, centre: tuple[float, float], begins: datetime,
               size: int) -> None:
        """One outage: callers around a centre, calls decaying after it begins."""
        rng = self.rng
        spread = rng.uniform(150, 400)
        made = 0
        while made < size:
            home = _offset(*centre, rng.gauss(0, spread), rng.gauss(0, spread))
            at = begins + timedelta(minutes=min(rng.expovariate(1 / 30), 180))
            channel = _pick(rng, CHANNELS)
            first = self._add(name, name, category, at, home, channel, self._caller(channel))
            made += 1
            if rng.random() < REPEAT_RATE and made < size:
                self._repeat(first, home, 20)
                made += 1

    def unrelated(self, count: int, minutes: float) -> None:
        """Cases of every category at random places and times; some callers call twice."""
        rng = self.rng
        districts = self.area.names()
        for i in range(count):
            category = _pick(rng, OTHER_CATEGORIES)
            home = self.area.point_in(rng, rng.choice(districts))
            channel = _pick(rng, CHANNELS)
            at = START + timedelta(minutes=rng.uniform(0, minutes))
            first = self._add(f"u{i}", None, category, at, home, channel, self._caller(channel))
            if rng.random() < 0.10:
                self._repeat(first, home, 60)


def generate(seed: int = TUNING_SEED, incidents: int = 24, contacts: int = 5000) -> list[Contact]:
    """A labelled storm in arrival order: `incidents` outages and about `contacts` contacts."""
    storm = Storm(seed, Area.load())
    rng = storm.rng
    districts = storm.area.names()
    per_outage = int(contacts * 0.76 / incidents)
    centres: list[tuple[float, float]] = []
    for i in range(incidents):
        category = "voltage_anomaly" if i % 6 == 5 else "power_fault"
        if i % 10 == 9 and centres:  # a near miss: another outage 2.5-3.5 km from an earlier one
            bearing, dist = rng.uniform(0, 2 * math.pi), rng.uniform(2500, 3500)
            centre = _offset(*centres[-1], dist * math.cos(bearing), dist * math.sin(bearing))
            category = "power_fault"
        else:  # independent outages lie apart: closer ones would be one matter to any caller
            centre = storm.area.point_in(rng, districts[i % len(districts)])
            while any(_metres(centre, other) < MIN_APART_M for other in centres):
                centre = storm.area.point_in(rng, districts[i % len(districts)])
        centres.append(centre)
        size = max(30, int(rng.lognormvariate(math.log(per_outage), 0.5)))
        storm.outage(f"o{i}", category, centre, START + timedelta(minutes=rng.uniform(0, 300)), size)
    storm.unrelated(max(contacts - len(storm.contacts), 0), 360)
    return sorted(storm.contacts, key=lambda c: (c.sketch.at, c.sketch.case_id))


class ScanCandidates(MemoryCandidates):
    """Baseline: the same filter by scanning every remembered case (no spatial prefilter)."""

    async def candidates(self, new: CaseSketch) -> list[CaseSketch]:
        """See `MemoryCandidates.candidates`."""
        p = self.params
        box = bbox(new.lat, new.lon, p.radius_m) if new.lat is not None and new.lon is not None else None
        found = []
        for c in self.cases.values():
            if c.category != new.category or c.case_id == new.case_id:
                continue
            dt = abs((c.at - new.at).total_seconds()) / 60
            in_box = (box is not None and c.lat is not None and c.lon is not None
                      and box[0] <= c.lat <= box[2] and box[1] <= c.lon <= box[3]
                      and (dt <= p.window_min or (c.incident_id is not None and dt <= p.caller_window_min)))
            if in_box or (same_caller(c, new) and dt <= p.caller_window_min):
                found.append(c)
        found.sort(key=lambda c: (c.at, c.case_id), reverse=True)
        return self.dated(found[: p.max_candidates])


@dataclass(frozen=True, slots=True)
class Outcome:
    """Scores of one run."""

    precision: float
    recall: float
    incident_precision: float
    incident_recall: float
    incidents_found: int
    links: int
    seconds: float
    links_set: frozenset[tuple[str, str]]


def _pairs(groups: Iterable[Sequence[str]]) -> int:
    return sum(len(g) * (len(g) - 1) // 2 for g in groups)


def pairwise(predicted: dict[str, str], truth: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall of a predicted clustering against true labels."""
    both: Counter[tuple[str, str]] = Counter((predicted[k], truth[k]) for k in truth)
    tp = sum(n * (n - 1) // 2 for n in both.values())
    pred = sum(n * (n - 1) // 2 for n in Counter(predicted[k] for k in truth).values())
    true = sum(n * (n - 1) // 2 for n in Counter(truth.values()).values())
    return (tp / pred if pred else 1.0), (tp / true if true else 1.0)


def components(ids: Sequence[str], links: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Connected components (union-find): each id's cluster representative."""
    parent = {i: i for i in ids}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        parent[root(a)] = root(b)
    return {i: root(i) for i in ids}


async def run(contacts: Sequence[Contact], params: LinkParams, source: CandidateSource | None = None
              ) -> Outcome:
    """Decide every contact in arrival order through the policy's path and score the result."""
    policy = LinkingPolicy(source or MemoryCandidates(params), params)
    links: set[tuple[str, str]] = set()
    incident_of: dict[str, str] = {}
    merges: list[tuple[str, str]] = []
    started = time.perf_counter()
    for contact in contacts:
        decision = await policy.decide_for(contact.sketch)
        for match in decision.links:
            links.add(tuple(sorted((contact.sketch.case_id, match.case_id))))  # type: ignore[arg-type]
        if decision.incident is not None:
            for cid in decision.incident.case_ids:
                incident_of.setdefault(cid, decision.incident.incident_id)
            merges += [(old, decision.incident.incident_id) for old in decision.incident.absorbed]
    seconds = time.perf_counter() - started
    ids = [c.sketch.case_id for c in contacts]
    truth = {c.sketch.case_id: c.matter for c in contacts}
    precision, recall = pairwise(components(ids, links), truth)
    outage_truth = {c.sketch.case_id: c.outage or f"-{c.sketch.case_id}" for c in contacts}
    survivor = components(sorted({*incident_of.values()}), merges)  # merged incidents are one
    incident_of = {cid: survivor[i] for cid, i in incident_of.items()}
    predicted_incident = {i: incident_of.get(i, f"-{i}") for i in ids}
    ip, ir = pairwise(predicted_incident, outage_truth)
    return Outcome(precision, recall, ip, ir, len(set(incident_of.values())), len(links), seconds,
                   frozenset(links))


def describe(contacts: Sequence[Contact]) -> dict[str, Any]:
    """What the storm holds."""
    outages = {c.outage for c in contacts if c.outage}
    matters: dict[str, int] = defaultdict(int)
    for c in contacts:
        matters[c.matter] += 1
    return {
        "contacts": len(contacts), "outages": len(outages),
        "channels": dict(Counter(c.channel for c in contacts)),
        "unrelated": sum(1 for c in contacts if c.outage is None),
        "without_place": sum(1 for c in contacts if c.sketch.lat is None),
        "true_pairs": _pairs([["x"] * n for n in matters.values()]),
    }


def held_out(seeds: Sequence[int]) -> tuple[int, ...]:
    """`seeds` as the held-out storms; refused if fewer than 5, repeated, or one chose a default."""
    chosen = sorted(set(seeds) & TUNING_SEEDS)
    if chosen:
        raise ValueError(f"seeds {chosen} chose the defaults; held-out storms must not include them")
    if len(set(seeds)) < MIN_HELD_OUT or len(set(seeds)) != len(seeds):
        raise ValueError(f"at least {MIN_HELD_OUT} distinct held-out seeds, got {list(seeds)}")
    return tuple(seeds)


def _seeds(text: str) -> tuple[int, ...]:
    """`--seeds`: comma-separated held-out seeds, checked by `held_out`."""
    try:
        return held_out([int(x) for x in text.split(",") if x])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def median_row(label: str, outcomes: Sequence[Outcome]) -> str:
    """One row of the median (and range) of each score over `outcomes`."""
    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.4f} ({min(values):.4f}-{max(values):.4f})"

    return (f"| {label} | {spread([o.precision for o in outcomes])} | "
            f"{spread([o.recall for o in outcomes])} | {spread([o.incident_precision for o in outcomes])} | "
            f"{spread([o.incident_recall for o in outcomes])} | "
            f"{statistics.median(o.incidents_found for o in outcomes):g} | "
            f"{statistics.median(o.links for o in outcomes):g} | - |")


def _row(label: str, o: Outcome, n: int) -> str:
    return (f"| {label} | {o.precision:.4f} | {o.recall:.4f} | {o.incident_precision:.4f} | "
            f"{o.incident_recall:.4f} | {o.incidents_found} | {o.links} | {n / o.seconds:,.0f} |")


_HEADER = ("| run | pair precision | pair recall | incident precision | incident recall | "
           "incidents | links | contacts/s |\n|---|---|---|---|---|---|---|---|")


async def _report(args: argparse.Namespace) -> int:
    contacts = generate(args.seed, args.incidents, args.contacts)
    params = replace(LinkParams(), radius_m=args.radius, window_min=args.window)
    print(f"storm (seed {args.seed}): {json.dumps(describe(contacts), ensure_ascii=False)}")
    print(_HEADER)
    main_run = await run(contacts, params)
    n = len(contacts)
    tuning = " - the tuning storm" if args.seed in TUNING_SEEDS else ""
    print(_row(f"policy (R={params.radius_m:g} m, T={params.window_min:g} min), seed {args.seed}{tuning}",
               main_run, n))
    scan = await run(contacts, params, ScanCandidates(params))
    print(_row("baseline: brute-force candidate scan", scan, n))
    caller_only = await run(contacts, replace(params, radius_m=0.001))
    print(_row("baseline: same caller only", caller_only, n))
    if scan.links_set != main_run.links_set:
        print("ERROR: the indexed and the brute-force runs decided different links")
        return 1
    if args.pg:
        pg_run = await _run_on_postgres(args.pg, contacts, params)
        print(_row("policy on PostgreSQL (PgCandidates)", pg_run, n))
        if pg_run.links_set != main_run.links_set:
            print("ERROR: the PostgreSQL and the in-memory runs decided different links")
            return 1
    if args.sweep:
        for radius in (300.0, 500.0, 1000.0, 1500.0, 2500.0):
            for minutes in (30.0, 60.0, 120.0):
                outcome = await run(contacts, replace(params, radius_m=radius, window_min=minutes))
                print(_row(f"sweep R={radius:g} T={minutes:g}", outcome, n))
    return 0 if verdict(await _held_out(args, params)) else 1


async def _held_out(args: argparse.Namespace, params: LinkParams) -> list[Outcome]:
    """The policy on every held-out storm: one row each, then their median and range."""
    seeds: tuple[int, ...] = args.seeds
    print(f"\nHeld-out storms (seeds {', '.join(map(str, seeds))}; not used to choose any default; "
          f"{args.incidents} outages, about {args.contacts:,} contacts each):\n")
    print(_HEADER)
    outcomes = []
    for seed in seeds:
        contacts = generate(seed, args.incidents, args.contacts)
        outcomes.append(await run(contacts, params))
        print(_row(f"policy, seed {seed}", outcomes[-1], len(contacts)))
    print(median_row(f"**median (range) of {len(seeds)} held-out storms**", outcomes))
    return outcomes


def verdict(held: Sequence[Outcome]) -> bool:
    """Whether the held-out median meets the thresholds (pair precision >= 0.95, recall >= 0.90)."""
    precision = statistics.median(o.precision for o in held)
    recall = statistics.median(o.recall for o in held)
    ok = precision >= 0.95 and recall >= 0.90
    print(f"thresholds (precision >= 0.95, recall >= 0.90), median of the held-out storms: "
          f"{precision:.4f} / {recall:.4f}, {'met' if ok else 'NOT met'}")
    return ok


async def _run_on_postgres(dsn: str, contacts: Sequence[Contact], params: LinkParams) -> Outcome:
    """The same run over `PgCandidates`, in a scratch database created and dropped here."""
    import asyncpg

    from bench.scratch import create_database, drop_database
    from dispatch.linking.policy import PgCandidates
    from eventstore.migrate import migrate
    from gateway.schema import SCHEMA

    name = f"intake_bench_linking_{uuid.uuid4().hex[:8]}"
    scratch = await create_database(dsn, name)
    try:
        pool = await asyncpg.create_pool(scratch, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, SCHEMA)
            return await run(contacts, params, PgCandidates(pool, params))
        finally:
            await pool.close()
    finally:
        await drop_database(dsn, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `intake bench linking [--seed N] [--seeds A,B,..] [--contacts N] [--incidents N]
    [--sweep] [--pg DSN]`.

    Exit 1 when the thresholds are missed on the held-out median or two candidate sources disagree.
    """
    parser = argparse.ArgumentParser(prog="intake bench linking")
    parser.add_argument("--seed", type=int, default=TUNING_SEED,
                        help="the storm of the detailed rows (default: the one the defaults were swept on)")
    parser.add_argument("--seeds", type=_seeds, default=HELD_OUT_SEEDS,
                        help="held-out storms (at least 5, none of the tuning seeds "
                             f"{sorted(TUNING_SEEDS)}); the thresholds are held against their median")
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--incidents", type=int, default=24)
    parser.add_argument("--radius", type=float, default=LinkParams().radius_m)
    parser.add_argument("--window", type=float, default=LinkParams().window_min)
    parser.add_argument("--sweep", action="store_true", help="also try other radii and windows")
    parser.add_argument("--pg", metavar="DSN", help="also run over PostgreSQL (a scratch database is "
                        "created and dropped through this DSN)")
    return asyncio.run(_report(parser.parse_args(list(argv or []))))


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
