"""`intake load PATH...`: import reference data files as events.

GeoJSON FeatureCollections (CONTRACT.md, "Reference data files") or CSV with
a header: `kind`, `id` (or `adcode`), the kind's properties, and `lat`/`lon`
for a point. In CSV, list columns (`skills`, `districts`, `devices`,
`conditions`) are separated by `;`, `contacts` is JSON, `capacity` an integer
and `available` true/false.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dispatch.core.errors import DispatchError
from dispatch.core.messages import Json, JsonValue
from dispatch.gis.reference import InvalidReference, RecordReference, ReferenceProjection, parse_feature
from dispatch.knowledge import reference as knowledge_reference
from gateway.services import Services
from gateway.settings import Settings

CONCURRENCY = 16
_LISTS = ("skills", "districts", "devices", "conditions")


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


def _csv_features(path: Path) -> Iterator[Json]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            props: Json = {}
            for name, raw in row.items():
                if name is None or name in ("lat", "lon"):
                    continue
                try:
                    value = _csv_value(name, (raw or "").strip())
                except (ValueError, json.JSONDecodeError) as exc:
                    raise LoadError(f"{path}: line {row}: column {name}: {exc}") from exc
                if value is not None:
                    props[name] = value
            geometry = None
            if row.get("lat") and row.get("lon"):
                geometry = {"type": "Point", "coordinates": [float(row["lon"]), float(row["lat"])]}
            yield {"type": "Feature", "properties": props, "geometry": geometry}


def read_features(path: Path) -> list[Json]:
    """The features of a GeoJSON or CSV file; `LoadError` if it is neither."""
    try:
        if path.suffix.lower() == ".csv":
            return list(_csv_features(path))
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise LoadError(f"{path}: cannot read ({exc})") from exc
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise LoadError(f"{path}: not a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list):
        raise LoadError(f"{path}: features must be a list")
    return features


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
        try:
            item = parse_feature(feature if isinstance(feature, dict) else {}, index)
        except InvalidReference as exc:
            stats.errors.append(f"{path}: {exc}")
            return
        async with gate:
            stats.outcomes[await services.bus.handle(RecordReference(item, actor))] += 1

    for path in paths:
        try:
            features = read_features(path)
        except LoadError as exc:
            stats.errors.append(str(exc))
            continue
        await asyncio.gather(*(record(f, i, path) for i, f in enumerate(features)))
    return stats


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
