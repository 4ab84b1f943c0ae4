"""Generate the demo gazetteer of Xianyang inside the real district boundaries.

Run from the repository root (same seed, same bytes):

    .venv/bin/python gis_data/generate_places.py [--seed 20261206] [--out-dir gis_data]

Writes `demo_places.geojson`: features of kind `place` (CONTRACT.md) - communities
(社区) and villages (村) as small polygons, streets (路/街) and landmarks (超市,
医院, 学校, 小区, 公园...) as points - each inside its district, WGS84 with six
decimals. The names are made up from common Chinese place-name syllables: they
read like real places, and some (人民路, 建设路...) repeat across districts as
they do in real towns; none is meant to be a real place.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import generate_demo
import numpy as np
import shapely
from generate_demo import load_districts, sample_points

HERE = Path(__file__).resolve().parent
DEFAULT_SEED = 20261206
CITY = "咸阳市"
URBAN = frozenset({"610402", "610404"})
"""The two city districts: more communities, streets and landmarks, fewer villages."""
COUNTS = {True: {"community": 14, "village": 8, "street": 12, "landmark": 22},
          False: {"community": 5, "village": 14, "street": 7, "landmark": 11}}
_SYLLABLE_TEXT = (
    "金山 文林 渭阳 古渡 玉泉 兴隆 龙泉 太平 永安 和平 建设 团结 幸福 朝阳 东风 红旗 新华 长庆 世纪 "
    "乐育 鸿福 胜利 吴家 陈杨 双照 马泉 钓台 沣东 沣西 渭滨 秦皇 咸通 安谷 望贤 窑店 正阳 北杜 周陵 "
    "底张 高庄 西吴 马庄 花园 民生 育才 光明 友谊 振兴 富民 丰收 长兴 平安 吉祥 福安 润泽 锦绣 翠苑 "
    "凤凰 白鹿 青龙 桃园 梨园 杏林 柳营 槐荫 松柏 竹园 兰亭 梅村 荷塘 清河 泾河 石桥 土门 南塬 北原 "
    "东关 西关 南关 北关 城隍 钟楼 鼓楼 文庙 书院 学府 宝塔 仙桥 天宁 玉皇 泰和 宏达 恒信 聚源 德兴 "
    "鑫源 华府 盛世 嘉园 御景 君悦 紫薇 丽景 秀水 碧波 银河 星光 曙光 晨光 阳光 春晖 秋实 瑞丰 康乐 "
    "宁静 安居 乐业 泉湖 湖滨 滨河 河堤 新兴 繁荣 昌盛 永乐 永丰 永兴 长乐 长安 常青 万福 百顺 千禧 "
)
SYLLABLES = tuple(_SYLLABLE_TEXT.split())
COMMON_STREETS = ("人民路", "建设路", "文化路", "解放路", "中山街", "东大街", "西大街", "北大街")
"""Street names that repeat across towns (a district name or a landmark tells them apart)."""
STREET_ENDS = ("路", "路", "街", "大道", "东路", "西路", "北街", "南街")
VILLAGE_SURNAMES = (
    "王李张刘陈杨赵吴周徐孙马朱胡郭何高罗郑谢宋唐许韩冯邓曹彭曾田董潘蒋蔡杜"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史黎贺顾毛郝龚邵万钱严武戴孔"
)
VILLAGE_ENDS = (
    "家庄", "家堡", "家寨", "家沟", "家坡", "家湾", "家河", "家塬", "家峪", "家台", "家营", "家巷",
)  # fmt: skip
LANDMARK_KINDS = (
    ("超市", "supermarket"), ("超市", "supermarket"), ("小区", "residential"), ("小区", "residential"),
    ("花园", "residential"), ("小学", "school"), ("中学", "school"), ("医院", "hospital"),
    ("社区卫生服务中心", "clinic"), ("公园", "park"), ("广场", "square"), ("菜市场", "market"),
    ("加油站", "fuel"),
)  # fmt: skip


def _unique(rnd: random.Random, used: set[str], make: Any) -> str:
    """A stem not used yet in the district: one town has one 金山 (its 金山社区 or 金山小区)."""
    for _ in range(200):
        name = str(make())
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError("ran out of names")


def _square(lon: float, lat: float, half: float, district: shapely.Geometry) -> dict[str, Any]:
    """A small square around a point, clipped to the district (its largest part)."""
    box = shapely.box(lon - half, lat - half * 0.8, lon + half, lat + half * 0.8).intersection(district)
    if box.geom_type == "MultiPolygon":
        box = max(box.geoms, key=lambda g: g.area)
    ring = [[round(x, 6), round(y, 6)] for x, y in box.exterior.coords]
    return {"type": "Polygon", "coordinates": [ring]}


def _feature(pid: str, name: str, kind: str, code: str, dname: str, geometry: dict[str, Any],
             aliases: Sequence[str] = (), category: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"kind": "place", "id": pid, "name": name, "type": kind, "district": code,
                             "district_name": dname, "aliases": list(aliases)}
    if category:
        props["category"] = category
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _district_places(code: str, dname: str, geom: shapely.Geometry, rnd: random.Random,
                     rng: np.random.Generator, first: int) -> list[dict[str, Any]]:
    counts = COUNTS[code in URBAN]
    inner = geom.buffer(-0.002) if geom.area > 0.001 else geom
    points = iter(sample_points(inner, sum(counts.values()), rng))
    used: set[str] = set()
    out: list[dict[str, Any]] = []

    def add(name: str, kind: str, geometry: dict[str, Any], aliases: Sequence[str] = (),
            category: str | None = None) -> None:
        pid = f"PL{first + len(out):05d}"
        out.append(_feature(pid, name, kind, code, dname, geometry, aliases, category))

    for _ in range(counts["community"]):
        stem = _unique(rnd, used, lambda: rnd.choice(SYLLABLES))
        lon, lat = next(points)
        add(f"{stem}社区", "community", _square(lon, lat, 0.006, geom), [f"{stem}社区居委会"])
    for _ in range(counts["village"]):
        stem = _unique(rnd, used, lambda: rnd.choice(VILLAGE_SURNAMES) + rnd.choice(VILLAGE_ENDS)
                       if rnd.random() < 0.7 else rnd.choice(SYLLABLES))
        lon, lat = next(points)
        spoken = [stem] if len(stem) > 2 else []  # 孙家庄 is a name, 丰收 alone is not
        add(f"{stem}村", "village", _square(lon, lat, 0.01, geom), [*spoken, f"{stem}村委会"])
    streets = list(rnd.sample(COMMON_STREETS, 2))
    while len(streets) < counts["street"]:
        stem = _unique(rnd, used, lambda: rnd.choice(SYLLABLES))
        streets.append(stem + rnd.choice(STREET_ENDS))
    for name in streets:
        add(name, "street", {"type": "Point", "coordinates": list(next(points))})
    short = dname[:-1] if len(dname) > 2 else dname
    add(f"{dname}人民医院", "landmark", {"type": "Point", "coordinates": list(next(points))},
        [f"{short}人民医院", f"{short}县医院" if dname.endswith("县") else f"{short}区医院"], "hospital")
    for _ in range(counts["landmark"] - 1):
        end, category = rnd.choice(LANDMARK_KINDS)
        name = _unique(rnd, used, lambda: rnd.choice(SYLLABLES)) + end
        add(name, "landmark", {"type": "Point", "coordinates": list(next(points))}, (), category)
    return out


def generate(seed: int, districts_path: Path) -> dict[str, list[Any]]:
    """The gazetteer by file name, deterministic for a seed (Xianyang's districts only)."""
    districts = load_districts(districts_path)
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    features: list[dict[str, Any]] = []
    for code, (dname, geom) in sorted(districts.items()):
        if code.startswith("6104"):
            features += _district_places(code, dname, geom, rnd, rng, len(features) + 1)
    return {"demo_places.geojson": features}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    return generate_demo.main(argv, generate, "the demo gazetteer", DEFAULT_SEED)


if __name__ == "__main__":
    sys.exit(main())
