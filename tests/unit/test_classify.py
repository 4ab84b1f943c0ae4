"""The SMS keyword classifier."""

from __future__ import annotations

import pytest

from dispatch.cases.registration import CATEGORIES
from dispatch.intake.classify import DEFAULT_CATEGORY, KEYWORDS, classify, classify_text, life_priority


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("我家停电了，请尽快处理", "power_fault"),
        ("楼道跳闸没电", "power_fault"),
        ("Power cut on Main Street since 8am", "power_fault"),
        ("电压不稳，灯光忽明忽暗", "voltage_anomaly"),
        ("我要投诉抄表员态度差", "complaint"),
        ("请问电费怎么交", "consultation"),
        ("感谢师傅及时抢修", "praise"),
        ("举报有人窃电", "report"),
        ("", DEFAULT_CATEGORY),
        (None, DEFAULT_CATEGORY),
        ("随便说点什么", DEFAULT_CATEGORY),
    ],
)
def test_classifies_by_keyword(text: str | None, category: str) -> None:
    assert classify_text(text) == category


def test_every_category_is_a_contract_category() -> None:
    assert {c for c, _ in KEYWORDS} <= set(CATEGORIES)
    assert DEFAULT_CATEGORY in CATEGORIES


FLOORS = {category: 0.95 for category in CATEGORIES if category != "todo"}
"""Per-category accuracy floors on the labelled set (bench/classify_contacts.py; every category a
citizen writes in; `todo` is an agent's own)."""


def test_the_labelled_set_meets_every_floor_and_sends_every_danger_to_priority_one() -> None:
    from bench.classify import measure
    from bench.classify_contacts import LIFE, labelled

    contacts = labelled()
    assert len(contacts) >= 500
    counts = {c: sum(1 for x in contacts if x.category == c) for c in FLOORS}
    assert min(counts.values()) >= 20, counts
    result = measure(contacts)
    by_category = result["by_category"]
    assert isinstance(by_category, dict)
    low = {c: share for c, share in by_category.items() if share < FLOORS[c]}
    assert not low, (low, result["misses"])
    assert result["life_safety"] == 1.0, result["misses"]
    assert sum(1 for c in contacts if c.priority == LIFE) >= 100


@pytest.mark.parametrize(("text", "category"), [
    ("变压器冒烟，有焦味", "power_fault"),
    ("电梯困人", "public_affairs"),
    ("小区整栋楼停电，电梯困人", "power_fault"),
    ("煤气泄漏了", "public_affairs"),
    ("老人摔倒了起不来", "elderly_emergency"),
    ("电线断了掉在地上", "power_fault"),
    ("有人触电了", "power_fault"),
    ("楼道起火了", "public_affairs"),
])
def test_life_safety_phrases_are_priority_one(text: str, category: str) -> None:
    found = classify(text)
    assert (found.category, found.priority) == (category, 1)
    assert life_priority(text) == 1


@pytest.mark.parametrize("text", ["整条街停电了", "电压忽高忽低", "请问电费怎么交", "谢谢", "家里水管漏水"])
def test_ordinary_matters_keep_their_category_default(text: str) -> None:
    assert classify(text).priority is None and life_priority(text) is None


def test_a_closing_thanks_is_no_praise() -> None:
    assert classify_text("整栋楼都没电了，谢谢") == "power_fault"
    assert classify_text("谢谢你们连夜抢修") == "praise"
