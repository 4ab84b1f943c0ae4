"""The SMS keyword classifier."""

from __future__ import annotations

import pytest

from dispatch.cases.registration import CATEGORIES
from dispatch.intake.classify import DEFAULT_CATEGORY, KEYWORDS, classify_text


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
