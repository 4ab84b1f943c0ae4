"""Search made for Chinese: words (jieba), pinyin and initials (pypinyin), typos (rapidfuzz), BM25 (bm25s).

An article is indexed as tokens of three kinds: the words jieba finds in it
(search mode, so 国家电网 also gives 国家 and 电网), each word's full pinyin
(`py:tingdian`) and its initials (`sx:td`). A query is read the same way, and
Latin letters in it are taken as pinyin or initials; a word the index does not
know is matched by its pinyin (停店 sounds like 停电) or, failing that, by the
nearest pinyin in the index (rapidfuzz, `tingdain` finds `tingdian`).
Each kind of token has a weight (a word the citizen typed counts more than a
sound-alike); the title counts three times and keywords twice.

`confidence` says how much of the query an article covers (the share of the
query's words, weighted by their rarity, IDF, found in it), lowered when the
next article scores nearly as well (`CLEAR_LEAD`). Self-service
answers need it above a threshold measured on a labelled set (`bench.knowledge`).

BM25 in memory was measured against PostgreSQL full-text search on the same
10,000 articles (`python -m bench.knowledge`, bench/RESULTS.md): PostgreSQL has
no Chinese parser without an extension, its `ts_rank` is not BM25, and a query
took a round trip plus a scan of the GIN posting lists, several times slower.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

import numpy as np

PINYIN = "py:"
INITIALS = "sx:"
WEIGHTS: dict[str, float] = {"word": 1.0, "ascii_pinyin": 1.0, "ascii_initials": 0.8,
                             "homophone": 0.6, "fuzzy": 0.5}
"""How much a query token counts by where it came from."""
TITLE_REPEAT = 3
KEYWORD_REPEAT = 2
CATEGORY_BOOST = 1.25
"""An article written for the case's category ranks this much higher."""
FUZZY_CUTOFF = 80.0
"""rapidfuzz ratio (0-100) a pinyin must reach to stand for an unknown one."""
SNIPPET_CHARS = 80
LONGEST_PIECE = 30
"""The longest pinyin or initials of one word a run of letters is split into (中华人民共和国 is 23)."""
MAX_SPLIT = 200
"""A run of letters longer than this is not split (it is no phrase anyone types)."""
SINGLE_CHAR = 0.5
CLEAR_LEAD = 0.3
"""An article scoring 30 % above the next one is a clear answer; a closer race lowers confidence
(near-duplicates such as 电费缴纳 and 缴费未到账 were the wrong answers at high coverage)."""
"""A one-character word (老, 合, 交) says less than a longer one; it counts half in confidence."""

_STOP_TEXT = (
    "的 了 吗 呢 吧 啊 呀 么 是 在 有 和 与 及 或 我 你 您 他 她 它 我们 你们 请问 请 问 一下 "
    "怎么 怎么办 怎样 如何 什么 哪里 哪儿 为什么 多少 几 能 能否 可以 可不可以 需要 要 想 "
    "你好 您好 谢谢 麻烦 这 那 这个 那个 个 就 都 也 还 又 把 被 给 让 对 从 到 吗？ 啥 咋 "
    "情况 问题 现在 今天 一个 如果 是不是 有没有 应该 还是 已经 知道 "
    "咨询 下 问下 尽快 回复 急 找 谁 哪 很 太 好 来 得 说 看 帮忙 有个 感觉 我家 我们 这条 "
    "时候 什么时候 会 不会 吗 呢 哦 嗯 喂 请教 打听 一直 总是 老是")
"""Words that say nothing about the matter: particles, pronouns, greetings and a message's
fillers (问下, 尽快回复, 急, 谢谢), which citizens add to every kind of question."""
STOPWORDS: frozenset[str] = frozenset(_STOP_TEXT.split())
_CJK = re.compile(r"[\u4e00-\u9fff]")
_ASCII_WORD = re.compile(r"^[a-z]+$")
_KEEP = re.compile(r"[\w\u4e00-\u9fff]")
_TONE_NUMBER = re.compile(r"(?<=[aeiouvngr])[1-5](?=[a-z\s]|$)")
"""A tone written as a number after a syllable (`ting2 dian4`: a syllable ends in a vowel, n, ng or
r; the next syllable, a space or the end follows, so `a4纸` and `95598` stay as typed)."""
_DIAERESIS = "\u0308"


def normalise(text: str) -> str:
    """Full-width to half-width, lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def untoned(text: str) -> str:
    """Pinyin typed with its tones as the index spells it: marks and numbers dropped, ü as v
    (`tíng diàn`, `ting2 dian4` -> `ting dian`; `lǜ` -> `lv`, as pypinyin writes it)."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", normalise(text)):
        if not unicodedata.combining(ch) or not out or not out[-1].isascii():
            out.append(ch)  # a mark on a letter that is not Latin (kana's dakuten) is kept
        elif ch == _DIAERESIS and out[-1] == "u":
            out[-1] = "v"
    return _TONE_NUMBER.sub("", unicodedata.normalize("NFC", "".join(out)))


@cache
def _jieba() -> Any:
    """jieba, imported on first use: the libraries of search take a second to import, which a
    process that never searches (and the time to start serving) should not pay."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


@lru_cache(maxsize=65536)
def sounds(word: str) -> tuple[str, str]:
    """A Chinese word's full pinyin and its initials (`停电` -> `tingdian`, `td`)."""
    from pypinyin import lazy_pinyin

    syllables = lazy_pinyin(word, errors="ignore")
    return "".join(syllables), "".join(s[0] for s in syllables if s)


def words(text: str) -> list[str]:
    """The words of a text (jieba search mode), without punctuation and stop words."""
    return [w for w in _jieba().lcut_for_search(normalise(text))
            if _KEEP.search(w) and w.strip() and w not in STOPWORDS]


def document_tokens(text: str) -> list[str]:
    """Index tokens of a text: words, and each Chinese word's pinyin and initials."""
    tokens: list[str] = []
    for word in words(text):
        tokens.append(word)
        if _CJK.search(word):
            full, initials = sounds(word)
            if full:
                tokens.append(PINYIN + full)
                if len(initials) > 1:
                    tokens.append(INITIALS + initials)
    return tokens


@dataclass(frozen=True, slots=True)
class Document:
    """What the index knows of one published article."""

    article_id: str
    title: str
    body: str
    short_answer: str = ""
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    kind: str = "faq"


@dataclass(frozen=True, slots=True)
class Hit:
    """One article found for a query: score (BM25, weighted) and confidence (0-1)."""

    article_id: str
    title: str
    snippet: str
    score: float
    confidence: float
    short_answer: str
    kind: str


@dataclass(frozen=True, slots=True)
class QueryToken:
    """A token to look up, its weight, and the query word it stands for."""

    token: str
    weight: float
    word: str


def tokens_of(doc: Document) -> list[str]:
    """The index tokens of an article: title thrice, keywords twice, then the body."""
    return (document_tokens(doc.title) * TITLE_REPEAT
            + document_tokens(" ".join(doc.keywords)) * KEYWORD_REPEAT
            + document_tokens(doc.body))


@dataclass(slots=True)
class SearchIndex:
    """An immutable BM25 index over published articles (build once, search many times)."""

    docs: tuple[Document, ...]
    vocab: dict[str, int]
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    idf: np.ndarray
    doc_tokens: tuple[frozenset[int], ...]
    pinyins: tuple[str, ...]
    _boost: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, docs: Iterable[Document], token_cache: dict[Document, list[str]] | None = None
              ) -> SearchIndex:
        """Index the documents (`token_cache` keeps their tokens between rebuilds)."""
        items = tuple(docs)
        cache = token_cache if token_cache is not None else {}
        corpus = []
        for doc in items:
            if doc not in cache:
                cache[doc] = tokens_of(doc)
            corpus.append(cache[doc] or [""])
        if token_cache is not None:
            live = set(items)
            for stale in [d for d in token_cache if d not in live]:
                del token_cache[stale]
        return cls._from_corpus(items, corpus)

    @classmethod
    def _from_corpus(cls, items: tuple[Document, ...], corpus: list[list[str]]) -> SearchIndex:
        if not items:
            empty = np.zeros(0)
            return cls((), {}, empty, empty.astype(np.int32), np.zeros(1, dtype=np.int32), empty, (), ())
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(corpus, show_progress=False)
        vocab = {str(k): int(v) for k, v in retriever.vocab_dict.items()}
        scores = retriever.scores
        indptr = np.asarray(scores["indptr"])
        df = np.diff(indptr).astype(np.float64)
        n = len(items)
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        doc_tokens = tuple(frozenset(vocab[t] for t in tokens if t in vocab) for tokens in corpus)
        pinyins = tuple(sorted(t[len(PINYIN):] for t in vocab if t.startswith(PINYIN)))
        return cls(items, vocab, np.asarray(scores["data"]), np.asarray(scores["indices"]), indptr, idf,
                   doc_tokens, pinyins)

    def __len__(self) -> int:
        return len(self.docs)

    def _fuzzy(self, spelled: str) -> str | None:
        if len(spelled) < 4 or not self.pinyins:
            return None
        from rapidfuzz import fuzz, process

        best = process.extractOne(spelled, self.pinyins, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
        return None if best is None else PINYIN + str(best[0])

    def _known(self, piece: str) -> bool:
        return piece in self.vocab or PINYIN + piece in self.vocab or INITIALS + piece in self.vocab

    def split(self, word: str) -> list[str]:
        """A run of letters typed as several words' pinyin or initials without spaces (`jihuatingdian`
        for 计划停电, `jhtd`) as the fewest pieces of two or more letters the index knows; the run
        itself when it is known or no split covers it (left to the fuzzy match)."""
        if self._known(word) or len(word) > MAX_SPLIT:
            return [word]
        best: list[list[str] | None] = [[], None, *([None] * (len(word) - 1))]
        for end in range(2, len(word) + 1):
            for start in range(max(0, end - LONGEST_PIECE), end - 1):
                before, piece = best[start], word[start:end]
                if before is not None and (best[end] is None or len(before) + 1 < len(best[end] or ())) \
                        and self._known(piece):
                    best[end] = [*before, piece]
        return best[-1] or [word]

    def _ascii(self, word: str) -> list[QueryToken]:
        found = [QueryToken(t, WEIGHTS[kind], word) for t, kind in (
            (word, "word"), (PINYIN + word, "ascii_pinyin"), (INITIALS + word, "ascii_initials"))
            if t in self.vocab]
        if not found and (near := self._fuzzy(word)) is not None:
            found.append(QueryToken(near, WEIGHTS["fuzzy"], word))
        return found

    def _chinese(self, word: str) -> list[QueryToken]:
        full, _ = sounds(word)
        if word in self.vocab:
            return [QueryToken(word, WEIGHTS["word"], word)]
        if PINYIN + full in self.vocab:
            return [QueryToken(PINYIN + full, WEIGHTS["homophone"], word)]
        near = self._fuzzy(full) if len(word) > 1 else None
        return [] if near is None else [QueryToken(near, WEIGHTS["fuzzy"], word)]

    def query_tokens(self, query: str) -> tuple[list[QueryToken], list[str]]:
        """The tokens a query looks up, and the words it was read as (for confidence)."""
        read = words(untoned(query))
        spelled = [w for w in read if _ASCII_WORD.match(w)]
        joined = "".join(spelled)
        if len(spelled) > 1 and (PINYIN + joined in self.vocab or INITIALS + joined in self.vocab):
            read = [w for w in read if w not in spelled] + [joined]  # "ting dian" typed with a space
        read = [piece for w in read for piece in (self.split(w) if _ASCII_WORD.match(w) else (w,))]
        tokens: list[QueryToken] = []
        for word in dict.fromkeys(read):
            tokens.extend(self._ascii(word) if _ASCII_WORD.match(word) else self._chinese(word))
        return tokens, list(dict.fromkeys(read))

    def _scores(self, tokens: Sequence[QueryToken]) -> np.ndarray:
        rows, values = [], []
        for qt in tokens:
            t = self.vocab[qt.token]
            lo, hi = self.indptr[t], self.indptr[t + 1]
            rows.append(self.indices[lo:hi])
            values.append(qt.weight * self.data[lo:hi])
        return np.bincount(np.concatenate(rows), weights=np.concatenate(values), minlength=len(self.docs))

    def _category_boost(self, category: str) -> np.ndarray:
        if category not in self._boost:
            self._boost[category] = np.array(
                [CATEGORY_BOOST if category in d.categories else 1.0 for d in self.docs])
        return self._boost[category]

    def confidence(self, tokens: Sequence[QueryToken], read: Sequence[str], doc: int) -> float:
        """The IDF-weighted share of the query's words the article contains (0-1)."""
        if not read:
            return 0.0
        best: dict[str, float] = {}
        for qt in tokens:
            t = self.vocab[qt.token]
            if t in self.doc_tokens[doc]:
                best[qt.word] = max(best.get(qt.word, 0.0), float(self.idf[t]) * min(qt.weight, 1.0))
        unknown = math.log(1.0 + len(self.docs))  # a word no article has is as rare as can be
        weight = {w: self._word_idf(w, tokens, unknown) * (SINGLE_CHAR if len(w) == 1 else 1.0)
                  for w in read}
        total = sum(weight.values())
        return 0.0 if total <= 0 else min(1.0, sum(best.values()) / total)

    def _word_idf(self, word: str, tokens: Sequence[QueryToken], unknown: float) -> float:
        idfs = [float(self.idf[self.vocab[qt.token]]) for qt in tokens if qt.word == word]
        return max(idfs) if idfs else unknown

    def search(self, query: str, *, category: str | None = None, k: int = 10) -> list[Hit]:
        """The best `k` articles for a query, best first (none when nothing matches)."""
        if not self.docs:
            return []
        tokens, read = self.query_tokens(query)
        if not tokens:
            return []
        scores = self._scores(tokens)
        if category:
            scores *= self._category_boost(category)
        wanted = min(k + 1, len(self.docs))  # one more: the runner-up of the last hit
        top = (np.argpartition(-scores, wanted - 1)[:wanted] if wanted < len(scores)
               else np.arange(len(scores)))
        order = [int(i) for i in top[np.lexsort((top, -scores[top]))] if scores[i] > 0]
        nexts = [float(scores[i]) for i in order[1:]] + [0.0]
        return [self._hit(i, float(scores[i]), runner_up, tokens, read)
                for i, runner_up in zip(order[:k], nexts, strict=False)]

    def _hit(self, i: int, score: float, runner_up: float, tokens: Sequence[QueryToken],
             read: Sequence[str]) -> Hit:
        doc = self.docs[i]
        lead = min(1.0, (1.0 - runner_up / score) / CLEAR_LEAD)
        confidence = self.confidence(tokens, read, i) * lead
        return Hit(doc.article_id, doc.title, snippet(doc.body, read), round(score, 4),
                   round(confidence, 4), doc.short_answer, doc.kind)


_SENTENCE = re.compile(r"[^。！？；\n]+[。！？；]?")


@lru_cache(maxsize=16384)
def _sentences(body: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    sentences = tuple(s.strip() for s in _SENTENCE.findall(body) if s.strip()) or (body,)
    return sentences, tuple(normalise(s) for s in sentences)


def snippet(body: str, read: Sequence[str]) -> str:
    """The sentence of the body with the most query words in it, cut to `SNIPPET_CHARS`."""
    sentences, lowered = _sentences(body)
    if len(sentences) == 1:
        return sentences[0] if len(sentences[0]) <= SNIPPET_CHARS else sentences[0][:SNIPPET_CHARS - 1] + "…"
    best = max(range(len(sentences)), key=lambda i: (sum(w in lowered[i] for w in read), -i))
    text = sentences[best]
    return str(text) if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 1] + "…"
