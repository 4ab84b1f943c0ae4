"""The labelled set the intake classifier learns from (dispatch.intake.learned).

Written for this project, from the categories of the 95598 and 12345 lines
(../shared/DOMAIN.md and its seeds): each core matter is a citizen's own words, as an
SMS or WeChat text reads (colloquial, often without the category's name), labelled
with its category and, for a danger to life or safety, priority 1. `labelled()` wraps
every core in an opening and an ending drawn with a fixed seed, so a run always gives
the same set; some cores are written twice (a second wording). None of these texts
came from real citizens. The keyword rules (dispatch.intake.classify) were written
together with it; held-out sets to measure on are in bench/ (never trained on).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LIFE = 1
"""Priority of a danger to life or safety (the green channel)."""

CORES: dict[str, tuple[str, ...]] = {
    "power_fault": (
        "家里突然停电了", "整栋楼都没电了", "我们小区停电两个小时了还没来电", "整条街停电了路灯也不亮",
        "家里没电了邻居家也没电", "空开跳闸了推不上去", "电闸一合上就跳", "单元楼道停电了",
        "村里一大片都断电了", "刮大风以后就停电了", "电表箱里冒火花", "昨晚开始一直没电",
        "我家没电了请派人来修", "下雨后整个村停电", "厂区外面的线路断电了", "小区配电房那边没电了",
        "停电了冰箱里的东西要坏了", "家里插座都没电", "一到晚上就断电", "电路故障家里全黑了",
    ),
    "voltage_anomaly": (
        "家里电压忽高忽低", "灯光一闪一闪的", "晚上灯忽明忽暗", "电压太低空调启动不了",
        "电压不稳冰箱老是停", "电压太高烧坏了电视", "灯一会亮一会暗", "家里电压只有一百五十伏",
        "电压低得热水器都用不了", "灯泡闪个不停是不是电压有问题", "用电高峰时电压很低",
        "电压不稳电脑老是重启",
    ),
    "consultation": (
        "请问电费怎么在手机上交", "阶梯电价是怎么算的", "峰谷电怎么申请", "我想问一下户号在哪里查",
        "新装电表需要带什么材料", "居住证怎么办理", "公积金怎么提取", "社保卡丢了怎么补办",
        "请问孩子上学需要什么证明", "办理营业执照要多长时间", "医保报销比例是多少",
        "请问明天我们那里计划停电吗",
        "电表过户需要什么手续", "老年证在哪里办", "请问不动产登记在哪个窗口", "请问交通违章在哪里处理",
        "想咨询一下廉租房申请条件", "充电桩报装怎么申请", "请问电费发票怎么开", "户口迁移需要什么材料",
    ),
    "complaint": (
        "我要投诉抢修人员态度恶劣", "装修噪音每天吵到半夜", "物业乱收费没人管",
        "楼下饭店油烟太大熏得没法开窗",
        "营业厅工作人员推诿不办事", "抄表员估抄电量多收我电费", "小区垃圾好几天没人清运",
        "对上次的处理结果不满意",
        "工地晚上施工扰民", "说好上门维修一直没人来", "客服电话一直打不进去", "出租车司机绕路还骂人",
        "商家卖过期食品", "广场舞音响太吵了", "小区电梯坏了一个月没人修",
    ),
    "report": (
        "我要举报有人偷电", "隔壁私拉电线窃电", "有人在变电站附近私自挖土", "举报工地私接电源",
        "发现有人破坏电力设施", "有人盗割电缆", "举报供电所工作人员吃拿卡要", "有人私自改动电表",
        "举报无证经营的黑作坊", "有人在高压线下放风筝还烧荒",
    ),
    "suggestion": (
        "建议在小区多装几个充电桩", "希望停电前能提前发短信通知", "建议营业厅周末也开门",
        "建议公交站加个遮雨棚",
        "能不能把缴费渠道再多开几个", "希望路口加个红绿灯", "建议增加老年人办事绿色通道",
        "提个建议网上办理流程再简化一些",
        "建议社区多组织一些老年活动", "希望公园多放几个垃圾桶",
    ),
    "praise": (
        "表扬一下昨天来抢修的师傅", "感谢供电公司连夜抢修", "非常感谢客服耐心解答",
        "给上门维修的小王点个赞",
        "谢谢你们这么快就来电了", "表扬社区工作人员热心帮忙", "服务很好非常满意", "感谢师傅冒雨抢修",
        "感谢12345帮我解决了问题", "今天的工作人员态度特别好",
    ),
    "home_service": (
        "家里水管漏水找个师傅来修", "钥匙丢了需要开锁", "想找个家政阿姨打扫卫生", "热水器坏了谁能上门修",
        "洗衣机不转了找人维修", "马桶堵了需要疏通", "想找人上门清洗油烟机", "空调不制冷了找人修一下",
        "家里门锁坏了要换锁", "需要找人上门保洁", "厨房下水道堵了", "想请人上门安装灯具",
    ),
    "elderly_care": (
        "想给家里老人申请居家养老服务", "老人需要人上门助浴", "请问助餐服务怎么申请", "想给母亲找个护工",
        "老人行动不便需要上门理发", "独居老人想申请定期探访", "老年人日间照料中心在哪里",
        "想给老人申请适老化改造",
        "老人需要上门送餐", "请问养老服务补贴怎么申请",
    ),
    "enterprise_service": (
        "我们公司想办理增容", "企业用电报装流程是什么", "工厂需要临时用电", "公司营业执照变更要去哪里",
        "企业想申请稳岗补贴", "小微企业贷款贴息怎么申请", "我们厂想申请专线供电", "企业开办一窗通办在哪里",
        "公司想咨询高新技术企业认定", "企业电费可以开专票吗",
    ),
    "public_affairs": (
        "路边井盖丢了", "小区门口路灯坏了", "马路上有个大坑", "公园的树倒了挡住路",
        "下水道堵了污水漫到路上", "小区停水了", "路边有只流浪狗咬人", "红绿灯坏了路口很乱",
        "公厕没人打扫很脏", "暖气不热", "自来水发黄", "人行道上的地砖松了",
        "广告牌被风吹得快掉了", "河边护栏断了",
    ),
    "simple_affair": (
        "帮我查一下我的工单办到哪了", "我想查询一下上次反映的问题进度", "帮我改一下工单里的电话号码",
        "上次的事情已经解决了可以撤销",
        "请帮我把反映的问题转给街道", "我想补充一下上次反映的地址", "帮忙查一下我的缴费记录",
        "请给我回个电话",
    ),
}
"""Ordinary matters by category: the category's default priority."""

LIFE_SAFETY: dict[str, tuple[str, ...]] = {
    "power_fault": (
        "变压器冒烟，有焦味", "变压器着火了", "电线断了掉在地上", "电线杆倒了电线垂下来很危险",
        "有人触电了", "高压线被风刮断了", "电表箱冒烟了", "配电箱着火了", "电线冒火花噼里啪啦的",
        "小区整栋楼停电，电梯困人", "停电了电梯里困了人", "电线掉在水里了有人要过去",
    ),
    "elderly_emergency": (
        "老人摔倒了起不来", "我家老人晕倒了", "独居老人突然昏迷", "老人胸口疼喘不上气",
        "一键通报警老人需要急救", "老父亲心脏病发作了", "奶奶摔倒了头上流血", "一键通按了老人不说话",
        "爷爷摔倒在卫生间了", "奶奶突然说不出话", "老人从床上摔下来了", "隔壁独居老人倒在家里叫不醒",
    ),
    "public_affairs": (
        "电梯困人了赶紧来", "电梯突然停了里面困着小孩", "楼道里有很大的煤气味", "家里煤气泄漏了",
        "燃气管道漏气了", "楼下着火了", "闻到很浓的燃气味", "天然气泄漏了味道很大", "有人掉进河里了",
        "楼道起火了",
    ),
}
"""Dangers to life or safety: priority 1 whatever else the text says."""

OPENINGS = ("", "你好，", "您好，", "喂，", "麻烦问一下，", "紧急情况，", "12345你好，", "打扰了，")
ENDINGS = ("", "。", "！", "，请尽快处理", "，地址秦都区人民路12号", "，谢谢", "，在渭城区文林路", "，急！")


@dataclass(frozen=True, slots=True)
class Contact:
    """One labelled contact: its text, category and priority (1: life-safety, else None: the default)."""

    text: str
    category: str
    priority: int | None
    core: str = ""
    """The core matter the text was written from (copies of one core are one group when the
    set is split for cross-validation); empty for a text written whole."""


def labelled(seed: int = 21, copies: int = 3) -> list[Contact]:
    """The set: each core `copies` times, wrapped differently, ordinary ones then life-safety ones."""
    rnd = random.Random(seed)
    out: list[Contact] = []
    for cores, priority in ((CORES, None), (LIFE_SAFETY, LIFE)):
        for category, texts in cores.items():
            for core in texts:
                for _ in range(copies):
                    text = f"{rnd.choice(OPENINGS)}{core}{rnd.choice(ENDINGS)}"
                    out.append(Contact(text, category, priority, core))
    return out
