"""Addresses to places: how often the gazetteer matcher finds the right place.

    .venv/bin/python -m bench.places [--n 1000] [--seed 7] [--threshold 75 --margin 8] [--sweep]

A labelled set of address strings is generated from the demo gazetteer
(`gis_data/demo_places.geojson`) in the styles callers use - full postal form,
partial ("金山社区3栋"), with a typo (a homophone or a dropped character),
relative to a landmark ("金桥超市对面"), with and without the district - each
labelled with the place it names. The matcher (`dispatch.places.gazetteer`)
answers a place or nothing; the figures are the share located at the labelled
place, the share located at a wrong place, and the share left for an agent,
overall and per style. Same seed, same set.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dispatch.places.gazetteer import Gazetteer, GazetteerEntry, MatchParams

GIS = Path(__file__).resolve().parents[1] / "gis_data"
STYLES = ("full", "partial", "typo", "landmark", "bare")
HOMOPHONES = dict(zip(
    "山金园华阳泉新安城林东明兴宁和平家龙凤渭秦庄堡寨花文玉乐福光",
    "三今圆化杨全心按成琳冬名星凝合萍佳隆风卫琴装宝债华闻育勒富广", strict=True))
"""Characters callers (and input methods) confuse: same or near pinyin."""
RELATIVE = ("对面", "旁边", "附近", "门口", "后面", "东边", "往西100米", "斜对面")
TROUBLES = ("停电了", "没电了", "路灯不亮", "电压不稳", "水管漏水", "有电线掉下来了", "", "")
UNITS = ("3号楼2单元", "5栋", "12号", "东门", "2单元301", "")


@dataclass(frozen=True, slots=True)
class Labelled:
    """One address string, the place it names and the style it is written in."""

    text: str
    place_id: str
    style: str
    with_district: bool


def load_entries(path: Path = GIS / "demo_places.geojson") -> list[GazetteerEntry]:
    """The demo gazetteer's places as matcher entries (points: a polygon's centre)."""
    import shapely
    from shapely.geometry import shape

    entries = []
    for f in json.loads(path.read_text(encoding="utf-8"))["features"]:
        p = f["properties"]
        centre = shapely.point_on_surface(shape(f["geometry"]))
        entries.append(GazetteerEntry(p["id"], p["name"], p["type"], p["district"], p["district_name"],
                                      centre.y, centre.x, tuple(p.get("aliases", ()))))
    return entries


def load_districts(path: Path = GIS / "districts.geojson") -> dict[str, str]:
    """adcode -> name of the real districts."""
    return {f["properties"]["adcode"]: f["properties"]["name"]
            for f in json.loads(path.read_text(encoding="utf-8"))["features"]}


def build(params: MatchParams | None = None) -> Gazetteer:
    """The matcher over the demo gazetteer."""
    return Gazetteer(load_entries(), load_districts(), ("陕西省", "陕西", "咸阳市", "咸阳"), params)


def _typo(name: str, rnd: random.Random) -> str:
    spots = [i for i, c in enumerate(name) if c in HOMOPHONES]
    if spots and rnd.random() < 0.75:
        i = rnd.choice(spots)
        return name[:i] + HOMOPHONES[name[i]] + name[i + 1:]
    if len(name) >= 4:  # a dropped character, never the first
        i = rnd.randrange(1, len(name))
        return name[:i] + name[i + 1:]
    return name + name[-1]  # a doubled last character


def _district(entry: GazetteerEntry, rnd: random.Random) -> str:
    name = entry.district_name or ""
    return name[:-1] if len(name) > 2 and rnd.random() < 0.3 else name


def address(entry: GazetteerEntry, street: GazetteerEntry | None, style: str, with_district: bool,
            rnd: random.Random) -> str:
    """An address naming `entry` in `style` (see the module doc)."""
    name = rnd.choice((entry.name, *entry.aliases)) if entry.aliases and rnd.random() < 0.3 else entry.name
    where = _district(entry, rnd) if with_district else ""
    trouble = rnd.choice(TROUBLES)
    if style == "full":
        prefix = rnd.choice(("陕西省咸阳市", "咸阳市", "咸阳", ""))
        number = f"{rnd.randint(1, 300)}号"
        if entry.type == "street" or street is None:
            return f"{prefix}{where}{name}{number}{trouble}"
        return f"{prefix}{where}{street.name}{number}{name}{rnd.choice(UNITS)}{trouble}"
    if style == "partial":
        return f"{where}{name}{rnd.choice(UNITS)}{trouble}"
    if style == "typo":
        return f"{where}{_typo(name, rnd)}{rnd.choice(UNITS)}{trouble}"
    if style == "landmark":
        return f"{rnd.choice(('', '我在', '就在'))}{where}{name}{rnd.choice(RELATIVE)}{trouble}"
    return f"{where}{name}"


def labelled_set(entries: Sequence[GazetteerEntry], n: int, seed: int) -> list[Labelled]:
    """`n` labelled addresses, the styles in turn, half with the district (deterministic)."""
    rnd = random.Random(seed)
    streets: dict[str | None, list[GazetteerEntry]] = {}
    for e in entries:
        if e.type == "street":
            streets.setdefault(e.district, []).append(e)
    landmarks = [e for e in entries if e.type == "landmark"]
    out = []
    for k in range(n):
        style = STYLES[k % len(STYLES)]
        entry = rnd.choice(landmarks if style == "landmark" else entries)
        with_district = rnd.random() < 0.5
        street = rnd.choice(streets.get(entry.district) or [None])  # type: ignore[list-item]
        text = address(entry, street, style, with_district, rnd)
        out.append(Labelled(text, entry.id, style, with_district))
    return out


SUFFIXES = ("社区", "村", "路", "街", "小区", "超市", "花园", "小学")
STEMS = ("东方", "西华", "南山", "北辰", "东兴", "新民", "安康", "金城", "银山", "华山", "青山", "绿园",
         "龙门", "凤鸣", "瑞祥", "兴旺", "福林", "宝山", "丰乐", "吉庆")
"""Name stems absent from the demo gazetteer, for addresses of places it does not know."""


def unknown_set(entries: Sequence[GazetteerEntry], n: int, seed: int) -> list[str]:
    """`n` addresses naming places the gazetteer does not have (the right answer: none)."""
    rnd = random.Random(seed)
    known = {name for e in entries for name in (e.name, *e.aliases)}
    districts = sorted({e.district_name or "" for e in entries})
    out: list[str] = []
    while len(out) < n:
        name = rnd.choice(STEMS) + rnd.choice(SUFFIXES)
        if name in known:
            continue
        where = rnd.choice(districts) if rnd.random() < 0.5 else ""
        out.append(f"{where}{name}{rnd.choice(UNITS)}{rnd.choice(TROUBLES)}")
    return out


@dataclass(frozen=True, slots=True)
class Figures:
    """Shares of a run: located at the labelled place, at a wrong place, left unlocated."""

    n: int
    right: int
    wrong: int
    ms_per_address: float

    @property
    def located(self) -> float:
        """Share located at the labelled place."""
        return self.right / self.n

    @property
    def wrong_rate(self) -> float:
        """Share located at a wrong place."""
        return self.wrong / self.n


def measure(gazetteer: Gazetteer, items: Sequence[Labelled]) -> tuple[Figures, dict[str, Figures], list[str]]:
    """Run the matcher over the set: overall figures, figures per style, the wrong answers."""
    counts: Counter[tuple[str, str]] = Counter()
    wrong: list[str] = []
    start = time.perf_counter()
    for item in items:
        found = gazetteer.locate(item.text)
        outcome = "none" if found is None else "right" if found.entry.id == item.place_id else "wrong"
        counts[(item.style, outcome)] += 1
        if outcome == "wrong" and found is not None:
            wrong.append(f"{item.text} -> {found.entry.name} {found.entry.district_name} "
                         f"({found.score}, '{found.matched}'); label {item.place_id}")
    ms = (time.perf_counter() - start) * 1000 / max(len(items), 1)
    per = {}
    for style in STYLES:
        n = sum(v for (s, _), v in counts.items() if s == style)
        per[style] = Figures(n, counts[(style, "right")], counts[(style, "wrong")], ms)
    total = Figures(len(items), sum(f.right for f in per.values()), sum(f.wrong for f in per.values()), ms)
    return total, per, wrong


def _row(label: str, f: Figures) -> str:
    return (f"| {label} | {f.n} | {100 * f.located:.1f} % | {100 * f.wrong_rate:.1f} % "
            f"| {100 * (1 - f.located - f.wrong_rate):.1f} % |")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures (and, with --sweep, a grid of thresholds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threshold", type=float, default=MatchParams().threshold)
    parser.add_argument("--margin", type=float, default=MatchParams().margin)
    parser.add_argument("--sweep", action="store_true", help="also try other thresholds and margins")
    parser.add_argument("--show-wrong", action="store_true")
    parser.add_argument("--compare", action="store_true",
                        help="also score every run of characters instead of jieba's words")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    gazetteer = build(MatchParams(args.threshold, args.margin))
    built = time.perf_counter() - started
    items = labelled_set(gazetteer.entries, args.n, args.seed)
    total, per, wrong = measure(gazetteer, items)
    print(f"gazetteer: {len(gazetteer.entries)} places, built in {built:.2f} s; {args.n} addresses, "
          f"seed {args.seed}, threshold {args.threshold}, margin {args.margin}; "
          f"{total.ms_per_address:.2f} ms per address")
    print("| style | addresses | located right | located wrong | left for an agent |")
    print("|---|---:|---:|---:|---:|")
    for style, f in per.items():
        print(_row(style, f))
    print(_row("**all**", total))
    unknown = unknown_set(gazetteer.entries, args.n // 5, args.seed)
    guessed = [t for t in unknown if gazetteer.locate(t) is not None]
    print(f"\n{len(unknown)} addresses of places not in the gazetteer: {len(guessed)} located anyway "
          f"({100 * len(guessed) / len(unknown):.1f} %)")
    if args.show_wrong:
        print("\n".join(wrong + [f"{t} -> {gazetteer.locate(t)}" for t in guessed]))
    if args.compare:
        gazetteer.params = MatchParams(args.threshold, args.margin, words=False)
        f, _, _ = measure(gazetteer, items)
        print(f"\ncharacter runs instead of words: {100 * f.located:.1f} % right, "
              f"{100 * f.wrong_rate:.1f} % wrong, {f.ms_per_address:.2f} ms per address")
    if args.sweep:
        print("\n| threshold | margin | located right | located wrong | unknown place located |\n"
              "|---:|---:|---:|---:|---:|")
        for threshold in (65.0, 70.0, 75.0, 80.0, 85.0):
            for margin in (0.0, 4.0, 8.0, 12.0):
                gazetteer.params = MatchParams(threshold, margin)
                f, _, _ = measure(gazetteer, items)
                stray = sum(gazetteer.locate(t) is not None for t in unknown) / len(unknown)
                print(f"| {threshold:.0f} | {margin:.0f} | {100 * f.located:.1f} % "
                      f"| {100 * f.wrong_rate:.1f} % | {100 * stray:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
