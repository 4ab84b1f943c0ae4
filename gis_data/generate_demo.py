"""Generate the demo reference data inside the real district boundaries.

Run from the repository root (same seed, same bytes):

    .venv/bin/python gis_data/generate_demo.py [--seed 20240605] [--out-dir gis_data]

Writes `demo_providers.geojson` (providers and field crews), `demo_units.geojson`,
`demo_agents.geojson` and `demo_elders.geojson` in the reference data format of
CONTRACT.md, every point inside its district polygon, coordinates WGS84 with six
decimals. All people, phone numbers and companies are fictitious.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape

HERE = Path(__file__).resolve().parent
DEFAULT_SEED = 20240605
# Providers per district, roughly following population (Dongguan ~10 M, Xianyang ~4 M).
PROVIDERS_PER_DISTRICT = {
    "441900": 1000, "610402": 250, "610404": 200, "610481": 120, "610422": 80,
    "610423": 80, "610424": 80, "610425": 70, "610431": 70, "610482": 60,
    "610403": 60, "610426": 40, "610428": 40, "610429": 40, "610430": 40,
}  # fmt: skip
ELDERS_PER_DISTRICT = 40
AGENTS = 40
CREW_SKILLS = ("power_repair", "line_repair", "transformer")
PROVIDER_SKILLS = (
    "plumbing", "locksmith", "cleaning", "appliance_repair", "elderly_care",
    "medical", "security", "power_repair",
)  # fmt: skip
AGENT_SKILLS = (
    "power_fault", "voltage_anomaly", "consultation", "complaint", "home_service",
    "elderly_emergency", "elderly_care", "enterprise_service", "public_affairs",
)  # fmt: skip
TRADES = {
    "plumbing": {"power_repair", "locksmith"}, "locksmith": {"security", "plumbing"},
    "cleaning": {"plumbing"}, "appliance_repair": {"power_repair", "plumbing"},
    "elderly_care": {"medical", "cleaning"}, "medical": {"elderly_care"},
    "security": {"locksmith"}, "power_repair": {"appliance_repair", "plumbing"},
}  # fmt: skip
"""The skills a provider of a trade may have besides it: an elderly-care or medical company
never has a power skill, so it is never offered an outage."""
SERVICE_WORDS = {
    "plumbing": "水电维修", "locksmith": "开锁换锁", "cleaning": "家政保洁",
    "appliance_repair": "家电维修", "elderly_care": "居家养老服务", "medical": "社区医疗服务",
    "security": "安保服务", "power_repair": "电工服务",
}  # fmt: skip
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华玉兰志强淑珍凤英永"
    "红海燕春梅文博子轩浩然欣怡梓涵宇航思远嘉怡俊杰佳琪雨桐"
)
CONDITIONS = (
    "高血压", "糖尿病", "冠心病", "独居", "行动不便", "慢阻肺", "阿尔茨海默病", "听力障碍",
)  # fmt: skip
STREETS = (
    "人民路",
    "渭阳路",
    "世纪大道",
    "文林路",
    "乐育路",
    "东城大道",
    "鸿福路",
    "莞太路",
    "胜利街",
    "建设路",
)


class Faker:
    """Deterministic fictitious Chinese names and unique mobile numbers."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.phones: set[str] = set()

    def name(self) -> str:
        """A two- or three-character personal name."""
        given = "".join(self.rnd.choice(GIVEN) for _ in range(self.rnd.choice((1, 2))))
        return self.rnd.choice(SURNAMES) + given

    def phone(self) -> str:
        """A unique 11-digit mainland mobile number, 1[3-9]xxxxxxxxx."""
        while True:
            number = f"1{self.rnd.randint(3, 9)}{self.rnd.randint(0, 999_999_999):09d}"
            if number not in self.phones:
                self.phones.add(number)
                return number


def load_districts(path: Path) -> dict[str, tuple[str, shapely.Geometry]]:
    """adcode -> (name, WGS84 geometry) from the districts file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        f["properties"]["adcode"]: (f["properties"]["name"], shape(f["geometry"])) for f in data["features"]
    }


def sample_points(geom: shapely.Geometry, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """n uniform (lon, lat) points inside geom, already rounded to six decimals."""
    shapely.prepare(geom)
    minx, miny, maxx, maxy = geom.bounds
    found: list[tuple[float, float]] = []
    while len(found) < n:
        xs = np.round(rng.uniform(minx, maxx, 4 * n), 6)
        ys = np.round(rng.uniform(miny, maxy, 4 * n), 6)
        inside = shapely.contains_xy(geom, xs, ys)
        found.extend(zip(xs[inside].tolist(), ys[inside].tolist(), strict=True))
    return found[:n]


def neighbours(districts: dict[str, tuple[str, shapely.Geometry]]) -> dict[str, list[str]]:
    """adcode -> adcodes of the districts sharing a border with it (sorted)."""
    result: dict[str, list[str]] = {}
    for code, (_, geom) in districts.items():
        grown = geom.buffer(0.002)
        result[code] = sorted(c for c, (_, g) in districts.items() if c != code and grown.intersects(g))
    return result


def point(lon: float, lat: float) -> dict[str, Any]:
    """A GeoJSON Point geometry."""
    return {"type": "Point", "coordinates": [lon, lat]}


def provider_props(pid: str, code: str, dname: str, near: list[str], fk: Faker) -> dict[str, Any]:
    """Properties of one provider or field crew."""
    rnd = fk.rnd
    served = [code] + [c for c in near if rnd.random() < 0.3]
    if rnd.random() < 0.35:
        skills = sorted(rnd.sample(CREW_SKILLS, rnd.randint(1, 3)))
        name = f"{dname}供电服务中心抢修{int(pid[1:])}组"
        return _provider(pid, name, "crew", skills, rnd.randint(3, 6), served, fk)
    drawn = rnd.sample(PROVIDER_SKILLS, rnd.randint(1, 3))
    trade = drawn[0]  # one trade, and only the skills that go with it (dispatch.gis.skills)
    skills = sorted({trade, *(s for s in drawn[1:] if s in TRADES[trade])})
    word = SERVICE_WORDS[trade]
    if rnd.random() < 0.5:
        name = f"{rnd.choice(SURNAMES)}师傅{word}"
    else:
        name = f"{dname}{rnd.choice(('安居', '惠民', '邻里', '顺心', '康乐', '诚信'))}{word}有限公司"
    return _provider(pid, name, "provider", skills, rnd.randint(1, 4), served, fk)


def _provider(
    pid: str, name: str, kind: str, skills: list[str], capacity: int, served: list[str], fk: Faker
) -> dict[str, Any]:
    return {
        "kind": "provider",
        "id": pid,
        "name": name,
        "type": kind,
        "skills": skills,
        "capacity": capacity,
        "phone": fk.phone(),
        "districts": served,
        "available": fk.rnd.random() < 0.9,
        "district": served[0],
    }


def providers(
    districts: dict[str, tuple[str, shapely.Geometry]], rng: np.random.Generator, fk: Faker
) -> list[Any]:
    """Provider and crew features, ids P00001..."""
    near = neighbours(districts)
    features: list[Any] = []
    for code, count in PROVIDERS_PER_DISTRICT.items():
        dname, geom = districts[code]
        for lon, lat in sample_points(geom, count, rng):
            props = provider_props(f"P{len(features) + 1:05d}", code, dname, near[code], fk)
            features.append({"type": "Feature", "properties": props, "geometry": point(lon, lat)})
    return features


def units(
    districts: dict[str, tuple[str, shapely.Geometry]], rng: np.random.Generator, fk: Faker
) -> list[Any]:
    """Receiving units: per district a power branch, water, city management, civil affairs."""
    kinds = (
        ("power", "供电分公司"),
        ("water", "供水所"),
        ("city_management", "城市管理局"),
        ("civil_affairs", "民政局"),
    )
    features: list[Any] = []
    for code, (dname, geom) in districts.items():
        spots = sample_points(geom, len(kinds), rng)
        for (dept, suffix), (lon, lat) in zip(kinds, spots, strict=True):
            props = {
                "kind": "unit",
                "id": f"U{len(features) + 1:03d}",
                "name": f"{dname}{suffix}",
                "phone": fk.phone(),
                "department": dept,
                "district": code,
            }
            features.append({"type": "Feature", "properties": props, "geometry": point(lon, lat)})
    return features


def agents(fk: Faker) -> list[Any]:
    """Hotline agents with the categories they handle."""
    features: list[Any] = []
    for i in range(1, AGENTS + 1):
        skills = sorted(fk.rnd.sample(AGENT_SKILLS, fk.rnd.randint(2, 4)))
        props = {"kind": "agent", "id": f"A{i:03d}", "name": fk.name(), "skills": skills}
        features.append({"type": "Feature", "properties": props, "geometry": None})
    return features


def contacts(fk: Faker) -> list[dict[str, str]]:
    """An elder's emergency contacts: family always, others usually."""
    roles = ["family"] + [r for r in ("family", "liaison", "doctor", "security") if fk.rnd.random() < 0.7]
    return [{"role": role, "name": fk.name(), "phone": fk.phone()} for role in roles]


def elders(
    districts: dict[str, tuple[str, shapely.Geometry]], rng: np.random.Generator, fk: Faker
) -> list[Any]:
    """Registered elders (60+) with one-touch devices E0001..., contacts and conditions."""
    features: list[Any] = []
    for code, (dname, geom) in districts.items():
        for lon, lat in sample_points(geom, ELDERS_PER_DISTRICT, rng):
            n = len(features) + 1
            props = {
                "kind": "elder",
                "id": f"ELD{n:05d}",
                "name": fk.name(),
                "phone": fk.phone(),
                "age": fk.rnd.randint(60, 98),
                "devices": [f"E{n:04d}"],
                "contacts": contacts(fk),
                "district": code,
                "address": f"{dname}{fk.rnd.choice(STREETS)}{fk.rnd.randint(1, 300)}号",
                "conditions": sorted(fk.rnd.sample(CONDITIONS, fk.rnd.randint(0, 3))),
            }
            features.append({"type": "Feature", "properties": props, "geometry": point(lon, lat)})
    return features


def generate(seed: int, districts_path: Path) -> dict[str, list[Any]]:
    """All demo collections by file name, deterministic for a seed."""
    districts = load_districts(districts_path)
    rng = np.random.default_rng(seed)
    fk = Faker(random.Random(seed))
    return {
        "demo_providers.geojson": providers(districts, rng, fk),
        "demo_units.geojson": units(districts, rng, fk),
        "demo_agents.geojson": agents(fk),
        "demo_elders.geojson": elders(districts, rng, fk),
    }


def dump(features: list[Any]) -> str:
    """Compact GeoJSON text of a FeatureCollection."""
    collection = {"type": "FeatureCollection", "features": features}
    return json.dumps(collection, ensure_ascii=False, separators=(",", ":")) + "\n"


Generator = Callable[[int, Path], dict[str, list[Any]]]


def main(argv: Sequence[str] | None = None, make: Generator | None = None,
         what: str = "the demo reference data", seed: int = DEFAULT_SEED) -> int:
    """Command-line entry point (`make`, `what` and `seed`: another generator's, as the gazetteer's)."""
    parser = argparse.ArgumentParser(description=f"Generate {what}.")
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument("--districts", type=Path, default=HERE / "districts.geojson")
    args = parser.parse_args(argv)
    for name, features in (make or generate)(args.seed, args.districts).items():
        path = args.out_dir / name
        path.write_text(dump(features), encoding="utf-8")
        print(f"wrote {path}: {len(features)} features, {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
