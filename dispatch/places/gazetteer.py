"""The gazetteer matcher: an address as people write it -> the place it names, or nothing.

Pure and in memory (built once from the `ref_places` rows, rebuilt when they
change). `Gazetteer.locate` normalises the text (full-width forms, spaces and
punctuation, the province and city), takes the district names out of it (they
narrow the search to those districts), segments the rest with jieba (every
place name and alias added to its dictionary, so a name comes out as one word)
and scores each run of up to four words against the names with rapidfuzz's
`ratio` (a normalised Indel similarity, 0-100: one wrong character in a
four-character name scores 75), as written and as heard (`sound_key`: each
character by its toneless pinyin, pypinyin); the score is the mean of the two,
so a homophone typo (今山社区 for 金山社区) scores 87.5 and a dropped character
85.7. A near miss counts only when each character it replaces sounds like the
one in the name (`sounds_alike`): callers' typos are homophones, a different
name one character away (银山社区) is not one.

A place is chosen when its best score reaches `threshold` and no other place,
at least as specific and more than `SAME_PLACE_M` away, scores within `margin`
of it: "人民路" alone, in a city with five 人民路, is left for an agent rather
than guessed. A text naming several places ("渭阳路金山小区3号楼") is located
at the most specific one (landmark > community / village > street), which is
where the caller is. Defaults chosen on the labelled set of `bench/places.py`
(bench/RESULTS.md).
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from dispatch.gis.geo import geodesic_m

SPECIFICITY: dict[str, int] = {"landmark": 3, "community": 2, "village": 2, "street": 1}
"""How precisely a place of each type says where the caller is (unknown types count as 2)."""
RANK_BONUS = 8.0
"""Added to a score per specificity step when choosing among the places a text names."""
SAME_PLACE_M = 300.0
"""Two entries this close are one place for ambiguity (a name and its neighbour record)."""
MAX_WORDS = 4
MIN_SPAN = 3
"""Fewer characters name a place only exactly (a village 马庄): two characters of a three-character
name score 80 ("星光" of 星光村, said of 星光小区)."""
_GENERIC_TEXT = (
    "社区 居委会 社区居委会 村 村委会 小区 花园 路 街 大道 东路 西路 南路 北路 东街 西街 "
    "南街 北街 超市 医院 小学 中学 学校 公园 广场 菜市场 市场 加油站 号楼 楼 单元 栋 "
    "号 门口 东门 西门 南门 北门 "
)
GENERIC = frozenset(_GENERIC_TEXT.split())
"""Words that say what kind of place, never which one: a run of words made of these alone names nothing."""
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_DIGITS = re.compile(r"\d+")
_LOG_SILENCED = False


@dataclass(frozen=True, slots=True)
class GazetteerEntry:
    """One place as the matcher knows it: names, type, district and WGS84 point."""

    id: str
    name: str
    type: str
    district: str | None
    district_name: str | None
    lat: float
    lon: float
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlaceMatch:
    """A located text: the place, its score (0-100) and the words of the text that named it."""

    entry: GazetteerEntry
    score: float
    matched: str


@dataclass(frozen=True, slots=True)
class MatchParams:
    """The decision thresholds (see the module doc)."""

    threshold: float = 75.0
    margin: float = 8.0
    words: bool = True
    """Score runs of jieba words (True) or every run of 2-10 characters (the benchmark's baseline)."""


def normalise(text: str) -> str:
    """Full-width to half-width, no spaces or punctuation, lower case."""
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", text)).strip().lower()


@functools.cache
def sound(char: str) -> str:
    """How a character sounds, as people confuse it: toneless pinyin with z/c/s for zh/ch/sh and
    n for ng (the flat-retroflex and front-back nasal pairs that Shaanxi speech and pinyin input
    mix up: 山 and 三, 金 and 京)."""
    from pypinyin import lazy_pinyin  # here, not at the top: its phrase table costs 1.2 s to import

    syllable = lazy_pinyin(char)[0]
    for hard, soft in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if syllable.startswith(hard):
            syllable = soft + syllable[len(hard):]
    return syllable[:-1] if syllable.endswith("ng") else syllable


def sounds_alike(said: str, name: str) -> bool:
    """Whether `said` can be `name` mistyped: every replaced character sounds like the one it
    replaces (what pinyin input and hearing produce), and at most one character is dropped or
    doubled. 银山超市 is not 金山超市 mistyped, nor 青山超市 常青超市; 今山超市 and 金山超 are."""
    ops = Levenshtein.editops(said, name)
    return (sum(op.tag != "replace" for op in ops) <= 1
            and all(op.tag != "replace" or sound(said[op.src_pos]) == sound(name[op.dest_pos]) for op in ops))


_SOUND_CODES: dict[str, str] = {}


def sound_key(text: str) -> str:
    """The text with each character replaced by one code per sound (`sound`): homophones alike."""
    return "".join(_SOUND_CODES.setdefault(sound(c), chr(0xE000 + len(_SOUND_CODES))) for c in text)


def _short(name: str) -> str | None:
    """The district name without 区/县/市 when what is left is still a name (秦都区 -> 秦都)."""
    return name[:-1] if len(name) > 2 and name[-1] in "区县市" else None


def _tokenizer(words: Iterable[str]) -> Any:
    """A jieba tokenizer knowing `words` (imported here: every process imports this module,
    few build a gazetteer)."""
    import jieba  # no stubs (pyproject: ignore_missing_imports); only lcut and add_word are used

    global _LOG_SILENCED
    if not _LOG_SILENCED:
        jieba.setLogLevel(logging.WARNING)
        _LOG_SILENCED = True
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word in words:
        tokenizer.add_word(word, freq=200_000)
    return tokenizer


class Gazetteer:
    """The places and the indexes the matcher needs (build once: jieba's dictionary takes ~1.5 s)."""

    def __init__(self, entries: Sequence[GazetteerEntry], districts: Mapping[str, str],
                 noise: Iterable[str] = (), params: MatchParams | None = None) -> None:
        self.entries = tuple(entries)
        self.params = params or MatchParams()
        self._names: list[str] = []
        self._heard: list[str] = []
        self._owner: list[int] = []
        for i, entry in enumerate(self.entries):
            for name in dict.fromkeys((entry.name, *entry.aliases)):
                self._names.append(normalise(name))
                self._heard.append(sound_key(self._names[-1]))
                self._owner.append(i)
        self._by_district: dict[str | None, list[int]] = {}
        for j, i in enumerate(self._owner):
            self._by_district.setdefault(self.entries[i].district, []).append(j)
        spoken = {normalise(n): code for code, n in districts.items()}
        spoken |= {normalise(s): code for code, n in districts.items() if (s := _short(n))}
        self._districts = dict(sorted(spoken.items(), key=lambda kv: -len(kv[0])))
        # District word -> the names that contain it (秦都区 -> 秦都区人民医院): where the text has
        # one of those, the district word stays in it as part of the name.
        self._named_after = {d: [n for n in self._names if d in n] for d in self._districts}
        self._noise = sorted({normalise(n) for n in noise if n}, key=len, reverse=True)
        self._tokenizer = _tokenizer([*self._names, *self._districts])

    def districts_in(self, text: str) -> tuple[list[str], str]:
        """The adcodes of the districts a (normalised) text names, and the text without them (but for
        those inside a place name), the province or the city."""
        found: list[str] = []
        for spoken, code in self._districts.items():
            if spoken in text:
                found.append(code)
                if not any(name in text for name in self._named_after.get(spoken, ())):
                    text = text.replace(spoken, " ")
        for word in self._noise:
            text = text.replace(word, " ")
        return list(dict.fromkeys(found)), text

    def _spans(self, text: str) -> list[str]:
        spans: list[str] = []
        for part in _DIGITS.sub(" ", text).split():
            if not self.params.words:
                runs = (part[i:j] for i in range(len(part)) for j in range(i + 2, min(i + 10, len(part)) + 1))
                spans += [run for run in runs if run not in self._districts]
                continue
            words = [w for w in self._tokenizer.lcut(part) if w.strip()]
            for i in range(len(words)):
                for j in range(i + 1, min(i + MAX_WORDS, len(words)) + 1):
                    span = "".join(words[i:j])
                    if (len(span) >= 2 and span not in self._districts
                            and not all(w in GENERIC for w in words[i:j])):
                        spans.append(span)
        return list(dict.fromkeys(spans))

    def scores(self, text: str) -> list[PlaceMatch]:
        """Every place some words of the text name, best first (each place once, its best score)."""
        codes, rest = self.districts_in(normalise(text))
        return self._scores(rest, codes)

    def _scores(self, rest: str, codes: Sequence[str]) -> list[PlaceMatch]:
        pool = [j for code in codes for j in self._by_district.get(code, ())] or range(len(self._names))
        choices = {j: self._heard[j] for j in pool}
        cutoff = self.params.threshold - self.params.margin
        best: dict[int, PlaceMatch] = {}
        for span in self._spans(rest):
            for _, heard, j in process.extract(sound_key(span), choices, scorer=fuzz.ratio,
                                               score_cutoff=cutoff, limit=8):
                name = self._names[j]
                written = fuzz.ratio(span, name)
                if written < 100 and (len(span) < MIN_SPAN or not sounds_alike(span, name)):
                    continue
                score = (heard + written) / 2  # a homophone is half a mistake
                i = self._owner[j]
                known = best.get(i)
                if known is None or (score, len(span)) > (known.score, len(known.matched)):
                    best[i] = PlaceMatch(self.entries[i], round(score, 1), span)
        return sorted(best.values(), key=_rank, reverse=True)

    def locate(self, text: str) -> PlaceMatch | None:
        """The place the text names, or None when none is named clearly enough (module doc).

        Without a district in the text, the district that most of the names it gives lie in
        (at least two, and more than in any other) settles a name several districts share:
        "人民路264号孙家庄村" is the 孙家庄村 of the district that has that 人民路.
        """
        codes, rest = self.districts_in(normalise(text))
        found = self._scores(rest, codes)
        chosen = self._decide(found)
        if chosen is None and not codes:
            area = self._consensus(found)
            if area is not None:
                chosen = self._decide([m for m in found if m.entry.district == area])
        return chosen

    def _decide(self, found: Sequence[PlaceMatch]) -> PlaceMatch | None:
        top = next((m for m in found if m.score >= self.params.threshold), None)
        if top is None:
            return None
        level = _specificity(top.entry)
        for other in found:
            e, o = top.entry, other.entry
            if (o.id != e.id and _specificity(o) >= level and other.score >= top.score - self.params.margin
                    and geodesic_m(e.lat, e.lon, o.lat, o.lon) > SAME_PLACE_M):
                return None
        return top

    def _consensus(self, found: Sequence[PlaceMatch]) -> str | None:
        """The district named by the most separate words of the text (two at least, and alone)."""
        support: dict[str | None, set[str]] = {}
        for m in found:
            if m.score >= self.params.threshold:
                support.setdefault(m.entry.district, set()).add(m.matched)
        counts = []
        for code, spans in support.items():
            separate = [s for s in spans if not any(s != t and s in t for t in spans)]
            counts.append((len(separate), code))
        counts.sort(reverse=True)
        if not counts or counts[0][0] < 2 or (len(counts) > 1 and counts[1][0] == counts[0][0]):
            return None
        return counts[0][1]


def _specificity(entry: GazetteerEntry) -> int:
    return SPECIFICITY.get(entry.type, 2)


def _rank(m: PlaceMatch) -> tuple[float, int]:
    return m.score + RANK_BONUS * _specificity(m.entry), len(m.matched)
