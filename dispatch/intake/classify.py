"""Which case category a citizen's text most likely is, and whether it tells of a danger to life
or safety (priority 1, the green channel).

In order: the life-safety rules (ordered patterns; a text that matches one is priority 1 in
its category whatever else it says, so every danger phrase written here always reaches the
green channel); a learned classifier (dispatch.intake.learned: TF-IDF character n-grams and a
logistic regression, trained once per process on first use from the labelled set in
dispatch/intake/classify_corpus.py, under a second), which sends to priority 1 a wording it
learned is a danger; the keyword rules (`KEYWORDS`) for the category when one matches; and the
learned classifier's category for everything else. That order was chosen on the first small
held-out set (bench/classify_contacts.py) used as a validation set; `classify_by_rules`, the
rules alone, is the baseline the benchmark compares with. An agent corrects the
category with the `classify` case action when it is wrong. Measured on the labelled set and on
a held-out set of 161 contacts never trained on (`python -m bench.classify`; figures in
bench/RESULTS.md).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache

from dispatch.intake.classify_corpus import LIFE, labelled
from dispatch.intake.learned import DANGER, Model, TextClassifier

DEFAULT_CATEGORY = "consultation"
"""What a text with no known keyword becomes (an agent reads it and reclassifies)."""

LIFE_SAFETY_PRIORITY = 1

_OUTAGE = re.compile(r"停电|没电|断电|outage|power cut|blackout", re.I)
_LIFT = r"电梯.{0,10}困|困.{0,4}电梯"

LIFE_SAFETY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("elderly_emergency", (
        r"一键通", r"老人.{0,6}(摔|跌|晕|昏|倒|胸口|喘不|说不出|叫不醒|心脏|急救|不说话)",
        r"(爷爷|奶奶|外公|外婆|老父亲|老母亲|老伴|老大爷|老太太).{0,6}(摔|跌|晕|昏|倒|说不出|叫不醒|心脏|胸口|喘不)",
        r"elderly.{0,20}(fell|fallen|collapsed|unconscious)", r"emergency button",
    )),
    ("power_fault", (
        r"变压器.{0,4}(冒烟|着火|起火|爆|焦|火)",
        r"(电线|电缆|高压线|电线杆|线杆).{0,8}(断|掉|垂|倒|冒火|火花|水里)",
        r"触电", r"(电表箱|配电箱|配电房|电箱|电闸|插座).{0,3}(冒烟|着火|起火|冒火|火花)", r"冒火花|打火花",
        r"electrocut", r"(power|live) (line|wire).{0,12}(down|fallen|broken)",
        r"transformer.{0,12}(smok|fire|burn)",
    )),
    ("public_affairs", (
        _LIFT, r"(煤气|燃气|天然气).{0,4}(泄漏|漏|味)", r"着火|起火|失火|火灾", r"掉进河|落水|溺水",
        r"gas leak", r"\bfire\b", r"trapped in (a|the) lift|stuck in (a|the) (lift|elevator)",
    )),
)
"""(category, patterns) of dangers to life or safety, in order: priority 1 whatever else the text
says. A trapped lift is a power fault when the text tells of an outage too (a storm's), else a
public affair (the lift's maintainer)."""

KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("report", ("举报", "偷电", "窃电", "私拉", "私接", "私自", "盗割", "破坏电力", "吃拿卡要", "黑作坊",
                "无证经营", "高压线下", "steal", "theft")),
    ("elderly_care", ("养老", "助浴", "助餐", "护工", "上门理发", "探访", "日间照料", "适老化", "送餐",
                      "elderly care")),
    ("simple_affair", ("工单", "进度", "办到哪", "撤销", "补充一下", "转给", "缴费记录", "回个电话")),
    ("complaint", ("投诉", "不满", "态度恶劣", "态度差", "噪音", "扰民", "乱收费", "油烟太", "推诿", "多收",
                   "没人清运", "没人管", "没人修", "一直没人来", "打不进去", "绕路", "过期", "太吵",
                   "complain", "complaint")),
    ("praise", ("表扬", "感谢", "谢谢你", "点赞", "点个赞", "满意", "态度特别好", "praise", "thank you for")),
    ("suggestion", ("建议", "希望", "能不能", "suggest")),
    ("consultation", ("计划停电",)),
    ("voltage_anomaly", ("电压", "灯光闪", "忽明忽暗", "一闪一闪", "闪个不停", "忽高忽低", "一会亮一会暗",
                         "voltage", "flicker")),
    ("power_fault", ("停电", "没电", "跳闸", "断电", "漏电", "电线", "电闸", "来电", "全黑", "电路故障",
                     "outage", "no power", "power cut", "blackout", "power is out", "tripped")),
    ("enterprise_service", ("公司", "企业", "工厂", "我们厂", "增容", "专线", "稳岗", "贴息")),
    ("public_affairs", ("井盖", "路灯", "马路", "路上", "大坑", "树倒", "公园", "红绿灯", "公厕", "暖气",
                        "自来水", "停水", "地砖", "人行道", "广告牌", "护栏", "流浪狗", "pothole",
                        "street light")),
    ("home_service", ("家政", "维修", "修一下", "上门修", "保洁", "打扫", "开锁", "换锁", "疏通", "堵了",
                      "漏水", "清洗", "安装", "不转", "不制冷", "坏了", "repair", "plumber", "cleaning")),
    ("consultation", ("咨询", "请问", "怎么", "如何", "电费", "question", "how do", "how to")),
)
"""(category, keywords) in priority order: the first category with a hit wins. A bare "thanks"
(谢谢) closes most messages and is no praise; "thank you for..." / 谢谢你 is."""

_LIFE = tuple((category, tuple(re.compile(p, re.I) for p in patterns)) for category, patterns in LIFE_SAFETY)
_LIFT_RE = re.compile(_LIFT)


@dataclass(frozen=True, slots=True)
class Classification:
    """What a text is: its category, priority 1 for a danger to life or safety (else None: the
    category's default), and the words that made it so."""

    category: str
    priority: int | None = None
    danger: str | None = None


def life_safety(text: str | None) -> Classification | None:
    """The danger a text tells of (category and priority 1), or None."""
    for category, patterns in _LIFE:
        for pattern in patterns:
            found = pattern.search(text or "")
            if found is None:
                continue
            lift_in_outage = _LIFT_RE.search(found.group(0)) and _OUTAGE.search(text or "")
            if category == "public_affairs" and lift_in_outage:
                category = "power_fault"  # stuck in a lift because the power is out
            return Classification(category, LIFE_SAFETY_PRIORITY, found.group(0))
    return None


def life_priority(text: str | None) -> int | None:
    """Priority 1 when the text tells of a danger to life or safety (a rule or the learned
    classifier says so), else None (the category's default)."""
    return classify(text).priority


MODEL: Model = "logistic"
C = 100.0
NGRAMS = 2
"""The learned model and its settings, chosen by grouped cross-validation on the labelled set
(`python -m bench.classify --select`; bench/RESULTS.md; the rule: most dangers found, then
accuracy): logistic regression found more dangers than complement naive Bayes and the linear
SVM, 1- to 2-grams did better than 1-3, and C = 100 ties C = 30 on dangers with 0.7 points more
accuracy."""
LEARNED = "learned"
"""`Classification.danger` when the learned model, not a rule, found the danger."""


def train() -> TextClassifier:
    """The learned classifier fitted on the labelled set (deterministic: same set, same weights)."""
    contacts = labelled()
    return TextClassifier.fit(
        [c.text for c in contacts], [c.category + (DANGER if c.priority == LIFE else "") for c in contacts],
        model=MODEL, c=C, high=NGRAMS)


_trained = cache(train)
_training = threading.Lock()


def learned_model() -> TextClassifier:
    """The learned classifier, trained once per process: the first caller trains it (under a
    second; gateway/bootstrap does at start-up, in a thread), any other waits for that."""
    with _training:
        return _trained()


def classify(text: str | None) -> Classification:
    """The category a free text most likely belongs to, with priority 1 for a danger: a
    life-safety rule; else a danger the learned classifier recognises; else a keyword rule's
    category; else the learned classifier's category."""
    danger = life_safety(text)
    if danger is not None:
        return danger
    if not re.search(r"\w", text or ""):
        return Classification(DEFAULT_CATEGORY)
    found = learned_model().predict([text or ""])[0]
    if found.endswith(DANGER):
        return Classification(found.removesuffix(DANGER), LIFE_SAFETY_PRIORITY, LEARNED)
    return Classification(_keyword(text) or found)


def classify_by_rules(text: str | None) -> Classification:
    """The rules alone (the life-safety rules, then `KEYWORDS`, else the default): the baseline."""
    return life_safety(text) or Classification(_keyword(text) or DEFAULT_CATEGORY)


def _keyword(text: str | None) -> str | None:
    lowered = (text or "").lower()
    for category, words in KEYWORDS:
        if any(word in lowered for word in words):
            return category
    return None


def classify_text(text: str | None) -> str:
    """The category a free text most likely belongs to (`consultation` if unknown)."""
    return classify(text).category
