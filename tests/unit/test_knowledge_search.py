"""Ranking of the Chinese search; each test names the small bug it would catch."""

# ruff: noqa: E501 (Chinese fixtures: each character counts two columns)

from __future__ import annotations

import pytest

from dispatch.knowledge.search import Document, SearchIndex, snippet, untoned

DOCS = (
    Document("OUT", "计划停电查询", "计划停电提前7天在网上国网公告。", "网上国网查询计划停电。", ("power_fault",)),
    Document("FEE", "电费缴纳方式", "电费可以通过网上国网、支付宝、微信缴纳。停电不影响缴费。", "支付宝、微信均可缴费。",
             ("consultation",)),
    Document("ID", "居住证办理", "居住证在派出所办理，需要身份证和租房合同。", "到派出所办理。", ("public_affairs",)),
    Document("GAS", "闻到燃气味怎么办", "立即关闭燃气阀门，开窗通风，不要开关电器。", "关阀开窗。", ("consultation",)),
    Document("LAMP", "路灯不亮报修", "城市道路路灯由路灯管理部门负责，拨打12345报修。", "拨打12345。", ("consultation",)),
)


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex.build(DOCS)


def ids(index: SearchIndex, q: str, **kw: object) -> list[str]:
    return [h.article_id for h in index.search(q, **kw)]  # type: ignore[arg-type]


@pytest.mark.parametrize("q", ["停电", "tingdian", "td", "ting dian", "TingDian"])
def test_pinyin_and_initials_find_the_chinese_word(index: SearchIndex, q: str) -> None:
    # Catches: pinyin or initials not indexed, case not folded, a spaced pinyin not joined.
    assert ids(index, q)[0] == "OUT"


@pytest.mark.parametrize("q", ["tíng diàn", "tīngdiàn", "TÍNG DIÀN", "ting2 dian4", "ting2dian4", "ránqì", "ran2 qi4"])
def test_pinyin_written_with_its_tones_finds_the_chinese_word(index: SearchIndex, q: str) -> None:
    # Catches: tone marks (í) or tone numbers (ting2) kept, so the syllables are read as other
    # words or as nothing (tíng diàn found 电压 articles, ting1 dian4 found none).
    expected = "GAS" if q.lower().startswith("r") else "OUT"
    assert ids(index, q)[:1] == [expected]


@pytest.mark.parametrize(("q", "expected"), [
    ("jihuatingdian", "OUT"), ("jhtd", "OUT"), ("dianfeijiaona", "FEE"), ("dfjn", "FEE"),
    ("ranqiwei", "GAS"), ("jzzbl", "ID"), ("jihua tingdian", "OUT")])
def test_a_phrase_typed_as_pinyin_or_initials_without_spaces_finds_what_its_words_find(
        index: SearchIndex, q: str, expected: str) -> None:
    """Pinyin or initials of several words typed as one run of letters (`jihuatingdian` for 计划停电,
    `jhtd`, as typed without an input method) find the article the Chinese words find, at full
    weight: they found nothing (or only a fuzzy near-miss) since the index knows each word's
    pinyin, not the phrase's."""
    hits = index.search(q)
    assert [h.article_id for h in hits][:1] == [expected], q
    assert hits[0].confidence >= 0.6, hits[0]


def test_a_run_of_letters_the_index_cannot_split_is_still_matched_by_its_nearest_pinyin(
        index: SearchIndex) -> None:
    """A run no split covers keeps its fuzzy match (tingdain), and a very long one costs nothing."""
    assert ids(index, "tingdain")[:1] == ["OUT"]
    assert ids(index, "td" * 1000) == []


def test_lv_is_typed_with_v_or_with_its_umlaut() -> None:
    # Catches: ü left as u after the tone is dropped (lǜ read as lu, not pypinyin's lv).
    green = SearchIndex.build([Document("GREEN", "绿色通道", "老人可走绿色通道。"),
                               Document("ROAD", "路灯报修", "路灯不亮。")])
    assert [h.article_id for h in green.search("lǜsè")][:1] == ["GREEN"]
    assert [h.article_id for h in green.search("lü4 se4")][:1] == ["GREEN"]
    assert untoned("A4纸 95598") == "a4纸 95598"  # a digit that is no tone stays


def test_title_outranks_a_passing_mention_in_the_body(index: SearchIndex) -> None:
    # Catches: the title weighted like the body (FEE mentions 停电 once in its body).
    hits = index.search("停电")
    assert [h.article_id for h in hits][:2] == ["OUT", "FEE"] and hits[0].score > hits[1].score


def test_results_come_best_first(index: SearchIndex) -> None:
    # Catches: sorting ascending, or returning argpartition's unordered top k.
    scores = [h.score for h in index.search("网上国网 电费 停电 缴纳")]
    assert len(scores) >= 2 and scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(("q", "expected"), [("停店", "OUT"), ("tingdain", "OUT"), ("juzhuzhen", "ID")])
def test_typos_still_find_the_article(index: SearchIndex, q: str, expected: str) -> None:
    # Catches: a homophone typo or a misspelt pinyin dropped instead of matched (rapidfuzz).
    assert ids(index, q)[:1] == [expected]


def test_a_typo_counts_less_than_the_word_itself(index: SearchIndex) -> None:
    # Catches: sound-alike and fuzzy tokens weighted like typed words.
    assert index.search("停店")[0].score < index.search("停电")[0].score


def test_category_boosts_its_articles(index: SearchIndex) -> None:
    # Catches: the case category ignored by suggestions (网上国网 is in OUT and FEE alike).
    assert ids(index, "网上国网", category="power_fault")[0] == "OUT"
    assert ids(index, "网上国网", category="consultation")[0] == "FEE"


def test_stop_words_alone_find_nothing_and_k_is_respected(index: SearchIndex) -> None:
    # Catches: stop words indexed (every article would match 请问怎么办), and k ignored.
    assert index.search("请问，怎么办？") == []
    assert len(index.search("网上国网 电费 停电 居住证 燃气", k=2)) == 2


def test_confidence_is_high_when_the_article_covers_the_question_and_low_otherwise(index: SearchIndex) -> None:
    # Catches: confidence from the raw BM25 score (unbounded) or ignoring words no article has.
    assert index.search("闻到燃气味怎么办")[0].confidence >= 0.9
    partial = index.search("燃气 银行卡 冻结 挂失")
    assert partial and partial[0].confidence < 0.4
    assert all(0.0 <= h.confidence <= 1.0 for h in index.search("网上国网 电费 停电"))


def test_an_empty_index_and_an_unknown_query_answer_nothing(index: SearchIndex) -> None:
    assert SearchIndex.build(()).search("停电") == [] and index.search("qqqqzzzz") == []


def test_snippet_is_the_sentence_with_the_query_words() -> None:
    body = "第一句没有关系。第二句说到停电恢复。第三句。"
    assert snippet(body, ["停电"]) == "第二句说到停电恢复。"
