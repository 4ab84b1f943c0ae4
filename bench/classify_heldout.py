"""A held-out set for the intake classifier: 161 contacts, never used to train or tune it.

Written fresh for this measurement (2026-12-06), after the rules and the labelled training set
(dispatch/intake/classify_corpus.py) and before the learned model was first run on it; not
copied from either. Real-style wording as it arrives on the lines: phone-call transcripts
("喂"), SMS and WeChat shorthand, web-form sentences, Shaanxi dialect (额, 咋, 这达), typos
(停点 for 停电), and English. Every category of CONTRACT.md a citizen's contact can be, with
26 dangers to life or safety (priority 1); `todo` is left out: it is an agent's own reminder,
never a citizen's text. None of these texts came from real citizens.

Never tune on this set: `python -m bench.classify` reports it; the labelled set is for training
and for choosing the model (grouped cross-validation, dispatch.intake.learned).
"""

from __future__ import annotations

from bench.classify_contacts import LIFE, Contact

ORDINARY: dict[str, tuple[str, ...]] = {
    "power_fault": (
        "喂，我们家这会儿一点电都没有了，灯不亮电视也开不了",
        "小区3号楼从早上八点开始就停了，到现在还没恢复",
        "家里总闸老是掉，推上去没两分钟又掉了",
        "村子里整片黑灯瞎火的，啥时候能好啊",
        "额们这达没电咧，麻烦派人看一哈",
        "停点了！！整条巷子都停点了",
        "power's been out in our building since noon, please send someone",
        "昨晚打雷以后家里的电就断了，邻居家也一样",
        "家里一半插座有电一半没电",
        "我们店铺突然断电了，冷柜里的东西要化了",
        "我家又没电了，赶紧派人来看看",
        "楼道灯和家里都不亮，电表上也没显示",
    ),
    "voltage_anomaly": (
        "家里的灯一直在闪，跟迪厅一样",
        "电压不够，电饭锅煮饭半天煮不熟",
        "晚上七八点空调开不起来，说是电压低",
        "电灯一阵亮一阵暗的，是不是线路有问题",
        "家里电压测了一下才160V",
        "电压太高了，已经烧了两个灯泡",
        "一开微波炉全屋灯就变暗",
        "冰箱压缩机启动不了，电工说电压偏低",
        "lights keep flickering and dimming every evening",
        "电压忽上忽下的，电器都不敢开",
        "家里的LED灯频闪得厉害，眼睛受不了",
    ),
    "consultation": (
        "电费单上的峰谷电价是啥意思",
        "想问下一户一表改成两个表咋办理",
        "在哪可以查到我家这个月用了多少度电",
        "新生儿上户口需要带哪些证件",
        "请问公租房摇号什么时候开始",
        "退休人员医保卡异地咋用",
        "光伏板装在自家屋顶要去哪申请",
        "电动车充电桩安装需要物业同意吗",
        "how can I pay my electricity bill online",
        "我想知道下周二我们小区检修停不停电",
        "营业厅周六上不上班",
        "交电费的户号忘了咋办",
    ),
    "complaint": (
        "打了好几次电话反映问题到现在都没人处理，太不负责了",
        "抢修师傅来了说不归他管就走了",
        "楼下烧烤摊天天半夜还在营业，吵得睡不着",
        "物业把小区绿地改成停车位收钱",
        "营业厅排队两小时，窗口只开了一个",
        "这个月电费比上个月翻了一倍，肯定是表有问题，你们还不给查",
        "对面工地渣土车把路弄得全是泥也不管",
        "快递员态度太差还把包裹乱扔",
        "你们的工作人员上门收费不给开票",
        "上次反映的噪音根本没解决，就打电话说办结了",
        "I want to complain about the rude staff at the service hall",
        "网约车司机故意多绕了好几公里",
    ),
    "report": (
        "发现有人在电线杆上私自搭线",
        "我怀疑隔壁出租屋在偷电，电表都不转",
        "有人晚上偷偷剪电缆去卖",
        "举报某餐馆后厨用地沟油",
        "小区里有人偷偷开棋牌室赌博",
        "实名反映村干部侵占低保",
        "有个厂子半夜偷排污水到河里",
        "街口有人无照卖假烟",
        "someone is tapping the power line to steal electricity",
        "有人把路灯的电接到自己家去了",
        "有人在变电站围墙边堆了一大堆易燃物",
    ),
    "suggestion": (
        "建议地铁站出口多设几个共享单车停放点",
        "希望你们的APP能加个停电地图",
        "要是晚上也开个缴费窗口就好了",
        "能否在学校门口设置减速带",
        "提议小区里多装几盏路灯",
        "可以考虑给老人寄纸质电费账单",
        "盼着公交末班车能再晚一点",
        "my suggestion: send a text before planned maintenance",
        "觉得营业厅可以多放几把椅子",
        "最好停电的时候能通知一下大概几点来电",
        "公园里多设几个饮水点会方便很多",
    ),
    "praise": (
        "昨天晚上那个抢修小伙子真不错，冒着大雨干到半夜",
        "给你们客服小李点赞，讲得很清楚",
        "太感谢了，问题这么快就解决了",
        "社区的张姐帮了我们大忙，要好好表扬她",
        "师傅们辛苦了，修得很及时",
        "你们服务真到位，给五星好评",
        "many thanks to the repair crew, great job",
        "真心感谢热线帮我要回了工资",
        "上门装表的师傅很专业，还帮我们检查了线路",
        "这次办事效率很高，必须夸一下",
        "对处理结果非常满意，辛苦你们了",
    ),
    "home_service": (
        "家里马桶一直流水关不住，找个师傅",
        "门反锁了进不去，帮忙找个开锁的",
        "想找个钟点工每周来打扫两次",
        "燃气灶点不着，能不能派人来修",
        "油烟机声音特别大需要清洗",
        "卫生间墙面渗水，要找人补一下",
        "需要找人帮忙搬家",
        "空调外机滴水厉害找人看看",
        "my washing machine broke, need a repairman",
        "热水器打不着了，洗不了澡",
        "家里下水道返臭味，想找人通一下",
    ),
    "elderly_care": (
        "我爸八十多了一个人住，想申请社区定期上门看看",
        "有没有给老年人送饭的服务",
        "老人腿脚不好，想找人每周来帮洗个澡",
        "请问高龄津贴怎么申请",
        "想把家里卫生间改成适合老人用的，有补助吗",
        "社区老年食堂一顿饭多少钱",
        "老母亲失能需要长期护理，有什么政策",
        "想给老人装个紧急呼叫器，去哪申请",
        "looking for a daytime care center for my grandmother",
        "独居老人能不能安排志愿者陪着聊聊天",
        "老人想找个理发师上门剪头发",
    ),
    "enterprise_service": (
        "我们工厂要新上一条生产线，需要增加用电容量",
        "公司新办公楼需要申请高压供电",
        "企业开办需要准备哪些材料",
        "我们是小饭馆，想申请商业用电",
        "厂里想装光伏自发自用，怎么并网",
        "公司想了解一下今年的稳岗返还政策",
        "企业电费能不能按月开增值税专用发票",
        "our company needs a temporary power connection for a construction site",
        "园区企业想申请双电源供电",
        "企业社保缴费基数怎么调整",
        "新注册的公司要刻章去哪里办",
    ),
    "public_affairs": (
        "路口那个窨井盖翻了，车过去哐哐响",
        "小区门口的路灯一到晚上就灭",
        "马路中间塌了个大洞",
        "公园里的健身器材坏了",
        "停水一整天了，也没个通知",
        "暖气片冰凉冰凉的",
        "人行道上的树根把地面拱起来了，容易绊倒",
        "道路两边的排水沟堵了，下雨就淹",
        "the traffic light at the crossing is broken",
        "小区里好几只野狗晚上乱叫还追人",
        "水龙头出来的水有股怪味",
        "桥上的护栏被车撞坏了",
    ),
    "simple_affair": (
        "我上个礼拜打电话说的那个事现在处理得怎么样了",
        "工单号是C2026开头的，帮我看下进度",
        "我反映的问题已经好了，可以不用派人了",
        "麻烦把我留的联系电话改成另一个号",
        "上次说的地址写错了，应该是12号楼不是21号楼",
        "能不能让处理的人给我回个电话",
        "what's the status of my earlier request",
        "帮我把之前的诉求撤掉吧",
        "我想查一下上个月交电费的记录",
        "之前的问题能不能转到区里处理",
    ),
}
"""Ordinary contacts by category (the category's default priority)."""

DANGERS: dict[str, tuple[str, ...]] = {
    "power_fault": (
        "路边变压器在冒黑烟，还有噼啪声",
        "一根电线掉到路中间了，还在冒火星",
        "我儿子摸了插座被电了一下，现在手发麻",
        "大风把电线杆刮歪了，线垂得很低，小孩在下面玩",
        "楼下配电柜着火了",
        "停电了，我们被关在电梯里出不去了",
        "a power line came down on the road and it's sparking",
        "电缆井里往外冒烟，一股烧焦的味道",
    ),
    "elderly_emergency": (
        "我爸在厕所摔了一跤，爬不起来",
        "外婆突然晕过去了，叫她没反应",
        "老人家说胸口闷得厉害，喘不过气",
        "隔壁阿婆两天没出门，敲门也没人应",
        "我妈突然半边身子动不了，说话也不清楚",
        "my elderly father fell down the stairs and can't get up",
        "老人按了紧急按钮，电话打过去没人接",
        "老伴吃了药以后一直昏睡叫不醒",
    ),
    "public_affairs": (
        "电梯卡在七楼了，里面有个老太太",
        "厨房里燃气味特别大，头有点晕",
        "对面楼窗户往外冒火，好像烧起来了",
        "有个小孩掉进河里了，快来人",
        "楼道里全是烟，看不清路",
        "there's a strong smell of gas in the stairwell",
        "商场电梯突然停了，卡了好几个人",
        "天然气管子好像破了，嘶嘶响",
        "家里的煤气罐阀门关不上了",
        "河堤边有人落水了在扑腾",
    ),
}
"""Dangers to life or safety: priority 1."""


def held_out_fresh() -> list[Contact]:
    """The set, ordinary contacts then dangers."""
    return [Contact(text, category, priority)
            for cores, priority in ((ORDINARY, None), (DANGERS, LIFE))
            for category, texts in cores.items() for text in texts]
