"""A small keyword classifier: which case category an SMS text most likely is.

Pure and deliberately simple; an agent corrects the category with the
`classify` case action when it is wrong.
"""

from __future__ import annotations

DEFAULT_CATEGORY = "consultation"
"""What a text with no known keyword becomes (an agent reads it and reclassifies)."""

KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("elderly_emergency", ("一键通", "老人摔倒", "急救", "emergency")),
    ("voltage_anomaly", ("电压", "灯光闪", "忽明忽暗", "voltage", "flicker")),
    ("power_fault", ("停电", "没电", "跳闸", "断电", "漏电", "电线", "outage", "no power",
                     "power cut", "blackout", "power is out", "tripped")),
    ("complaint", ("投诉", "不满", "complain", "complaint")),
    ("praise", ("表扬", "感谢", "thank", "praise")),
    ("suggestion", ("建议", "suggest")),
    ("report", ("举报", "窃电", "report")),
    ("home_service", ("家政", "维修", "保洁", "开锁", "repair", "plumber", "cleaning")),
    ("consultation", ("咨询", "请问", "怎么", "如何", "电费", "question", "how do", "how to")),
)
"""(category, keywords) in priority order: the first category with a hit wins."""


def classify_text(text: str | None) -> str:
    """The category a free text most likely belongs to (`consultation` if unknown)."""
    lowered = (text or "").lower()
    for category, words in KEYWORDS:
        if any(word in lowered for word in words):
            return category
    return DEFAULT_CATEGORY
