"""Labelled contacts for the intake classifier (bench.classify, tests/unit): the training set
(dispatch/intake/classify_corpus.py, re-exported here) and the first, small held-out set.

The 45-contact `held_out()` below was written after the keyword rules; the larger held-out set
written for the learned classifier is bench/classify_heldout.py. None of these texts came from
real citizens.
"""

from __future__ import annotations

from dispatch.intake.classify_corpus import CORES, ENDINGS, LIFE, LIFE_SAFETY, OPENINGS, Contact, labelled

__all__ = ["CORES", "ENDINGS", "HELD_OUT", "HELD_OUT_LIFE", "LIFE", "LIFE_SAFETY", "OPENINGS", "Contact",
           "held_out", "labelled"]

HELD_OUT: dict[str, tuple[str, ...]] = {
    "power_fault": ("我们这片从中午就没有电", "保险丝烧了整个屋子不亮", "楼上楼下都黑着灯",
                    "电一直来不了急死了", "刚才砰的一声然后家里就停了"),
    "voltage_anomaly": ("日光灯老是一跳一跳的", "家用电器带不动感觉电不够", "电压只有180伏"),
    "consultation": ("电费可以用微信交吗", "办理居住证要几天", "供电营业厅几点下班",
                     "想了解一下光伏发电并网政策", "残疾人补贴找哪个部门"),
    "complaint": ("抢修的人来了看一眼就走了", "邻居家狗整夜叫", "营业员玩手机不理人",
                  "打了三次电话都没人处理"),
    "report": ("有人把电表倒着装", "小区有人私挂电线偷电给电动车充电", "举报楼下违规经营"),
    "suggestion": ("最好能在小区装个快递柜", "可不可以延长营业时间"),
    "praise": ("你们的师傅真负责", "特别感激昨天帮忙的小伙子"),
    "home_service": ("灶台打不着火了找人看看", "想找人疏通一下下水管", "窗户玻璃碎了要换"),
    "elderly_care": ("老人想找个保姆陪护", "社区有没有给老人做饭的食堂"),
    "enterprise_service": ("我们商户想申请三相电", "单位要办理用电变更"),
    "public_affairs": ("路中间的下水道盖子没了", "小区门口的路灯一直不亮", "垃圾桶满了没人倒",
                       "路边树枝快断了"),
    "simple_affair": ("我之前打过电话想知道结果", "帮我撤回上午提交的问题"),
}
"""Written after the rules were set and never used to tune them: how the classifier does on
wordings it has not seen (bench.classify reports it apart)."""

HELD_OUT_LIFE: dict[str, tuple[str, ...]] = {
    "power_fault": ("电线杆歪了线快掉下来了", "路边电箱冒黑烟", "有小孩被电到了"),
    "elderly_emergency": ("我妈突然倒地不起", "老人按了呼叫器说头晕站不住"),
    "public_affairs": ("厨房一股煤气味", "楼里冒烟了好像着火", "电梯卡在两层中间人出不来"),
}
"""Held-out dangers to life or safety."""


def held_out() -> list[Contact]:
    """The held-out set, unwrapped."""
    return [Contact(text, category, priority)
            for cores, priority in ((HELD_OUT, None), (HELD_OUT_LIFE, LIFE))
            for category, texts in cores.items() for text in texts]
