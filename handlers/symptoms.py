"""The words of a report: symptoms, statuses, negations, bulk quantifiers and filler.

All data: `WORDS` maps each word to (kind, value) and `LENGTHS` gives, per first
character, the word lengths to try longest first (the lexer's dictionary lookup).
"""

from __future__ import annotations

import itertools

# Kinds of words (also token kinds in the parser).
SYM = "sym"  # value: canonical symptom
UNWELL = "unwell"  # feels unwell, no canonical symptom: abnormal, kept in the note
NORMAL = "normal"
UNREACH = "unreachable"
ABSENT = "absent"
NEG = "neg"
FILL = "fill"  # understood and ignored; never a name
NOTE = "note"  # worth passing on as the entry's note (就医, 买药), never a name
LIST = "list"  # 和 及 与: joins names or symptoms, like 、
POS = "pos"  # 有点 / 但是 / 还有: ends a negation ("不发烧，但是有点咳嗽")
QUANT_REST = "quant_rest"  # 其他/其余: "the others" — with a normal word, a bulk report
QUANT_ALL = "quant_all"  # 全部/都/均: "all" — bulk, unless it follows names ("张三李四都正常")
END = "end"  # 等 / 等症状: ends a negated list ("无发热、干咳…腹泻等症状")
OVER = "over"  # 好了 / 已消失: the symptoms just said are over ("咳嗽好了"); alone, normal


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SYMPTOMS: dict[str, tuple[str, ...]] = {
    "发热": _words("发热 发烧 低烧 高烧 发低烧 发高烧 有点烧 体温偏高"),
    "咳嗽": _words("咳嗽 咳 干咳 咳痰 有痰 咳嗽有痰 咳痰多"),
    "乏力": _words(
        """
        乏力 没力气 没有力气 没啥力气 无力 疲倦 疲劳 疲乏 没劲 没精神 浑身没劲
        全身无力 浑身无力 浑身乏力 全身乏力
        """
    ),
    "咽痛": _words("咽痛 咽喉肿痛 嗓子发炎 嗓子不舒服 喉咙不舒服 嗓子哑"),
    "腹泻": _words("腹泻 拉肚子 拉稀 闹肚子"),
    "头痛": _words("头痛 头疼"),
    "胸闷": _words("胸闷 胸口闷 胸口发闷 胸口憋闷 憋闷"),
    "气促": _words("气促 气短 呼吸困难 喘 气喘 喘不上气 喘不过气 呼吸急促 喘气困难 上不来气"),
    "流涕": _words("流涕 流鼻涕 鼻塞 鼻涕 鼻子不通气 鼻子堵"),
    "肌肉酸痛": _words("肌肉酸痛 肌肉痛 肌肉疼 肌痛 腰酸背痛 全身酸 浑身酸 全身酸痛 浑身疼"),
    "嗅味觉减退": _words(
        """
        嗅味觉减退 闻不到 闻不出 没味觉 没有味觉 味觉减退 嗅觉减退 尝不出味 尝不出味道
        吃不出味 吃不出味道 没嗅觉 没有嗅觉 味觉丧失 嗅觉丧失 失去味觉 失去嗅觉
        味觉嗅觉减退 嗅觉味觉减退 味嗅觉减退 嗅味觉丧失 嗅觉味觉丧失 嗅觉或味觉减退
        嗅觉和味觉减退 嗅觉及味觉减退
        """
    ),
    "呕吐": _words("呕吐 恶心 想吐 吐了 反胃"),
}
# Also canonical: body part × degree × feeling ("嗓子有点疼" → 咽痛); "" is no degree.
_DEGREE = ("",) + _words(
    "有点 有点儿 有些 有一点 一点 稍微 稍 比较 很 挺 特别 还 还是 一直 老是 也"
)
_BODY_PAIN: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("咽痛", _words("嗓子 喉咙 咽喉 嗓子眼 喉咙口"), _words("疼 痛 干痛 肿痛 发疼")),
    ("头痛", ("头",), ("疼", "痛")),
    ("肌肉酸痛", _words("全身 浑身 身上 身子 肌肉"), _words("疼 痛 酸痛 酸疼")),
    ("胸闷", _words("胸口 胸"), _words("闷 发闷 憋 憋得慌")),
)

UNWELL_WORDS = _words(
    """
    不舒服 不适 难受 头晕 头昏 肚子疼 肚子痛 腹痛 不正常 不太正常 异常 有异常
    情况异常 不太好 不好 身体不好 生病 病了 不对劲 感冒 打喷嚏 发冷 怕冷
    寒战 畏寒 打寒战 结膜充血 结膜炎 眼睛红 眼睛充血 关节疼痛 关节痛 关节酸痛 咽干
    咽部干痒 咽痒 食欲不振 没胃口 胸痛 心慌 皮疹 嗜睡 腹胀 纳差 可疑症状 相关症状
    呼吸道症状 发热症状 不适症状 新冠相关症状 新冠症状
    """
)

NORMAL_WORDS = _words(
    """
    正常 无异常 没有异常 没异常 未见异常 无症状 没有症状 没症状 良好 好
    很好 挺好 挺好的 还好 蛮好 健康 已联系 已联系上 联系上了 已电话联系 在家
    没什么不舒服 没有不舒服 没啥不舒服 没不舒服 没有什么不舒服 没感觉不舒服 无不适
    无明显不适 没有不适 无不适症状 没事 没什么事 没啥事 没有事 没有什么事 没问题
    没什么问题 平安 体温正常 情况正常 身体正常 身体好 身体很好 身体健康 状态良好
    精神好 精神不错 不错 情况良好 安好 稳定 情况稳定 平稳 无特殊 无异样 未见明显异常
    """
)

UNREACH_WORDS = _words(
    """
    未联系上 没联系上 没有联系上 没能联系上 联系不上 联系不到 未联系到 没联系到
    没有联系到 电话不通 电话打不通 打不通 没打通 未打通 无人接听 没人接听 没人接
    无人接 没接 没有接 没接电话 不接电话 未接电话 没接通 未接通 无法接通
    暂时无法接通 关机 手机关机 电话关机 停机 失联 占线 一直占线 没回 没回复
    没有回复 未回复 不回电话 不回信息 找不到人 未能联系 没能联系 未联系 没联系
    联系未果 未接 不在服务区 暂时联系不上 一直联系不上 未取得联系 没取得联系
    """
)

ABSENT_WORDS = _words(
    """
    外出 不在家 出门了 出门 出去了 擅自离开 离开了 私自外出 擅自外出 不在隔离点
    离开隔离点 人不在 不在 没在家 没回家 还没回来 没回来 去外地 去外地了 跑了 离家
    出去 出去买菜 出去买菜了 去买菜 去买菜了 买菜去了 出去买东西 出去买东西了 去超市
    去超市了 去医院了 已送医院 送医院 送医院了 送医 已送医 送医了 送医治疗 已送医治疗
    住院了 已住院 去上班 去上班了 上班去了 下地了 下地干活 去地里 去地里了 去干活了
    出去干活 出去干活了 去镇上 去镇上了 去县城 去县城了 回老家 回老家了 走亲戚
    走亲戚了 出差 出差了 外出了 外出务工 转运 已转运 被转运 转走 被接走 接走了 被接走了
    拉走了 已转移 转移到 转到
    """
)

# Before a symptom or a list of them, negates all of it (无发热、咳嗽等症状).
NEG_WORDS = _words(
    """
    无 没有 没 不 未 并无 也无 也没有 也没 否认 未见 没见 没出现 未出现 没什么
    没啥 无明显 没有明显 未有 没感觉 不再 已经不 不怎么 均无 都没有 都无 均未 也不
    无任何 没有任何 未出现 无其他 没有其他
    """
)

# 没有味觉 is a symptom but 没有味觉减退 a negation (of 嗅味觉减退, and of what follows).
NEG_SYMPTOM_WORDS = tuple(
    prefix + sense + change
    for prefix in ("没有", "没", "无", "未")
    for sense in ("味觉", "嗅觉", "味觉嗅觉", "嗅觉味觉", "嗅味觉", "味嗅觉")
    for change in ("减退", "丧失", "异常", "减弱", "改变")
)

# Understood and dropped. Mostly voice filler; also greetings (大家好 must not read as
# 大家 + 好 = a bulk report).
FILL_WORDS = _words(
    """
    今天 今日 今早 今晚 今天早上 今天上午 今天中午 今天下午 今天晚上 早上 上午
    中午 下午 晚上 傍晚 早晨 白天 刚才 刚刚 刚 现在 目前 暂时 测 测了 测量
    量了 量的 测的 测得 复测 体温 温度 度 那边 这边 家里 本人 自己 说 他说
    她说 他们 她们 反映 反馈 表示 自述 自诉 回复 电话 打了 打过 打 打了电话 次
    两次 几次 多次 一次 三次 好几次 也 已 已经 了 的 是 为 一点 稍微 比较 症状 情况 身体 另外
    然后 其中 再 又 啊 呀 吧 呢 哦 嗯
    哈 喂 吗 好的 收到 报告 汇报 上报 联系 各位 书记 领导 网格员 监测 隔离
    居家 对象 人员 正在 在 好像 感觉 觉得 明显 任何 出现 见 持续 一直 偶尔
    一下 下 而且 并且 还是 那个 这个 个 人 号 马上 情况如下 如下 名单 平时
    仍然 依然 目前为止 分别 分别是 接了 接通 接通了 通了 问了 问过 询问 经询问
    了解 核实 确认 什么 早 中 晚 再次 继续 观察 注意 天 小时 的话 记录 你好
    您好 大家好 各位好 领导好 书记好 早上好 中午好 下午好 晚上好 味道 味 东西 给
    过 家 本人说 接电话 接的电话 进行 进行了 随访 电话随访 状况 身体状况 精神状态
    状态 厉害 得厉害 得很 这两天 两天 这几天 几天 一天 这些天 最近 昨天 昨晚
    前天 开始 二人 两人 两个人 三人 俩 他俩 两位 男 女 对 地里 去 目前情况
    今天情况 各自
        谢谢 辛苦 辛苦了
    """
)

# Who else speaks or is spoken of (filler); before 都正常 they block a bulk report:
# "家里人都挺好的" is about the family, not about every subject.
FAMILY_WORDS = _words(
    """
    家里人 家人 家属 媳妇 老婆 老公 儿子 女儿 爱人 妻子 丈夫 母亲 父亲 妈妈
    爸爸 孩子 他 她 老伴 他们 她们 全家 一家人 家里 他家 她家
    """
)

# Bulk quantifiers: followed by a normal word they make a bulk report (其他都正常).
QUANT_REST_WORDS = _words(
    """
    其他 其余 其它 剩下 剩余 别的 余下 其他的 其余的 剩下的 其他人 其余人
    其他几个 其余几个 其他几位 其余几位 其他人员 其余人员 所有人 全体
    """
)

QUANT_ALL_WORDS = _words(
    """
    全部 全都 都 均 全 统统 一律 所有 都是 均为 全是 一切 大家
    """
)

END_WORDS = _words(
    """
    等 等症状 等情况 等不适 等表现 等不适症状 等异常 等异常情况 等异常症状 等可疑症状
    等相关症状 等呼吸道症状 等新冠相关症状 等新冠症状 等症状表现 等新冠肺炎症状 等疑似症状
    """
)

OVER_WORDS = _words(
    """
    好了 已好 已经好了 全好了 没了 已经没了 消失了 已消失 已经消失了 痊愈 已痊愈
    痊愈了 退了 已退 已经退了 退烧了 已退烧 已经退烧了 烧退了 止住了 已止住 不咳了
    不烧了 不疼了 不痛了 不拉了
    """
)

# 除张三外都正常: a bulk report for everyone but the names in between (handled by the parser;
# they are filler elsewhere).
EXCEPT_WORDS = _words("除 除了")
EXCEPT_END_WORDS = _words("外 以外 之外")

# Passed on in the note.
NOTE_WORDS = _words(
    """
    就医 看病 住院 去医院 医院 门诊 发热门诊 卫生院 卫生室 诊所 买菜 买药 拿药
    吃药 吃了药 打针 输液 上班 干活 下地 核酸 做核酸 核酸检测 阴性 阳性 复查
    隔离点 外地 返回 回来了 好多了 好些了 好点了 好一些了 好转 有好转 好转了 有所好转 减轻
    减轻了 缓解 缓解了 有所缓解
    """
)

LIST_WORDS = _words(
    """
    和 及 与 跟 或 以及 或者
    """
)

POS_WORDS = _words(
    """
    有 有点 有点儿 有些 还有 但 但是 不过 可是 只是 就是 却 还 就 又有 也有
    另外有 还有点 还有些 还有一点 有一点 又有点
    """
)


def _expand_body_pain() -> dict[str, str]:
    out: dict[str, str] = {}
    for canonical, parts, feelings in _BODY_PAIN:
        for part, degree, feeling in itertools.product(parts, _DEGREE, feelings):
            out[part + degree + feeling] = canonical
    return out


def _build_words() -> dict[str, tuple[str, str]]:
    words: dict[str, tuple[str, str]] = {}
    # later kinds win for a word listed twice: the order is the precedence
    by_kind = (
        (FILL, FILL_WORDS + FAMILY_WORDS + EXCEPT_WORDS + EXCEPT_END_WORDS),
        (END, END_WORDS),
        (LIST, LIST_WORDS),
        (POS, POS_WORDS),
        (NOTE, NOTE_WORDS),
        (QUANT_ALL, QUANT_ALL_WORDS),
        (QUANT_REST, QUANT_REST_WORDS),
        (NEG, NEG_WORDS + NEG_SYMPTOM_WORDS),
        (UNWELL, UNWELL_WORDS),
        (NORMAL, NORMAL_WORDS),
        (OVER, OVER_WORDS),
        (ABSENT, ABSENT_WORDS),
        (UNREACH, UNREACH_WORDS),
    )
    for kind, kind_words in by_kind:
        for w in kind_words:
            words[w] = (kind, w)
    for w, canonical in _expand_body_pain().items():
        words[w] = (SYM, canonical)
    for canonical, synonyms in SYMPTOMS.items():
        for w in synonyms:
            words[w] = (SYM, canonical)
    return words


# Later kinds win on a clash (a symptom word is never filler).
WORDS: dict[str, tuple[str, str]] = _build_words()


def _lengths() -> dict[str, tuple[int, ...]]:
    by_first: dict[str, set[int]] = {}
    for w in WORDS:
        by_first.setdefault(w[0], set()).add(len(w))
    return {ch: tuple(sorted(ls, reverse=True)) for ch, ls in by_first.items()}


LENGTHS: dict[str, tuple[int, ...]] = _lengths()
