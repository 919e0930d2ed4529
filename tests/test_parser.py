"""The reply grammar (DESIGN §3), as members really type and dictate it.

Each table row is one message and the complete meaningful result, written compactly:

- an entry is "name[=typed] temperature status [symptoms] [flags]": temperature "-" for
  none, symptoms joined by 、 in order, flags `bulk`, `cover` (a subject of `others`) and
  `note=…` (leftover text; when absent the note must be empty);
- a problem is "reason: fragment [-> candidate,candidate]";
- the slot defaults to "morning/time" (messages are sent at 08:30 unless `at` says else).
"""

from __future__ import annotations

import datetime
import json
import string
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from handlers.parser import SLOTS, Entry, ParseResult, Problem, parse_batch_line, parse_reply

R3 = ("张三", "李四", "王五")
R6 = ("刘建国", "陈秀英", "杨志强", "黄丽", "赵磊", "周敏")
TWO_WANG = ("王五", "王建军", "李四")
SAME_SOUND = ("张伟", "章伟", "李娜")
OTHERS = ("赵六", "孙七")
ZW = ("张伟", "王芳", "张建军")
ONE = ("张三",)
DAY = datetime.date(2026, 3, 2)


def case(
    text: str,
    entries: list[str] | tuple[str, ...] = (),
    problems: list[str] | tuple[str, ...] = (),
    *,
    names: tuple[str, ...] = R3,
    others: tuple[str, ...] = (),
    at: str = "08:30",
    slot: str = "morning/time",
    date: datetime.date = DAY,
    correction: bool = False,
    id: str | None = None,  # noqa: A002
):
    return pytest.param(
        text, list(entries), list(problems), names, others, at, slot, date, correction, id=id
    )


def show_entry(e: Entry) -> str:
    """An entry in the table's notation."""
    head = e.name if e.typed == e.name or e.bulk else f"{e.name}={e.typed}"
    parts = [head, "-" if e.temperature is None else f"{e.temperature:g}", e.status]
    if e.symptoms:
        parts.append("、".join(e.symptoms))
    if e.bulk:
        parts.append("bulk")
    if not e.assigned:
        parts.append("cover")
    if e.note:
        parts.append(f"note={e.note}")
    return " ".join(parts)


def show_problem(p: Problem) -> str:
    """A problem in the table's notation."""
    text = f"{p.reason}: {p.text}"
    return text + (" -> " + ",".join(p.candidates) if p.candidates else "")


def when(at: str) -> datetime.datetime:
    if "T" in at:
        return datetime.datetime.fromisoformat(at)
    hour, minute = map(int, at.split(":"))
    return datetime.datetime.combine(DAY, datetime.time(hour, minute))


CASES = [
    # ---- DESIGN §3 examples -------------------------------------------------------------
    case("张三 36.5 正常，李四 36.8", ["张三 36.5 normal", "李四 36.8 normal"]),
    case(
        "早：张三36.5李四36.7王五未联系上",
        ["张三 36.5 normal", "李四 36.7 normal", "王五 - unreachable"],
        slot="morning/explicit",
    ),
    case("王五 37.6 咳嗽 乏力", ["王五 37.6 abnormal 发热、咳嗽、乏力"]),
    case("李四体温三十六度八，无发热咳嗽等症状", ["李四 36.8 normal"]),
    case("全部正常", ["张三 - normal bulk", "李四 - normal bulk", "王五 - normal bulk"]),
    case(
        "都正常，张三 37.4",
        ["张三 37.4 abnormal 发热", "李四 - normal bulk", "王五 - normal bulk"],
    ),
    case("章三 36.6", ["张三=章三 36.6 normal"]),
    case("老王 不在家", ["王五=老王 - absent"]),
    case("更正 张三 36.4", ["张三 36.4 normal"], correction=True),
    # ---- voice input (WeChat's Recognition text) ------------------------------------------
    case("张三今天早上体温36度5没什么不舒服", ["张三 36.5 normal"]),
    case("李四那边打了两次电话都没人接", ["李四 - unreachable"]),
    case("王五说他嗓子有点疼，体温三十七度二", ["王五 37.2 abnormal 咽痛"]),
    case("张三体温三十六度五，身体挺好的", ["张三 36.5 normal"]),
    case("李四今天量了体温三十六点八度，没有发烧也没有咳嗽", ["李四 36.8 normal"]),
    case("王五家里人说他出门了", ["王五 - absent"]),
    case("张三早上测的体温是36.6度一切正常", ["张三 36.6 normal"]),
    case("李四说有点拉肚子体温三十六度九", ["李四 36.9 abnormal 腹泻"]),
    case("王五电话关机了", ["王五 - unreachable"]),
    case("张三他说头有点疼还有点咳嗽", ["张三 - abnormal 头痛、咳嗽"]),
    case("刚才给张三打电话他说没什么事体温三十六度六", ["张三 36.6 normal"]),
    case("李四嗓子疼有点咳嗽体温37度5", ["李四 37.5 abnormal 咽痛、咳嗽、发热"]),
    case("王五浑身没劲还拉肚子", ["王五 - abnormal 乏力、腹泻"]),
    case("张三说闻不到味道了", ["张三 - abnormal 嗅味觉减退"]),
    case("李四说喘不上气胸口闷", ["李四 - abnormal 气促、胸闷"]),
    case(
        "张三今天三十六度七李四三十六度五王五三十六度八",
        [
            "张三 36.7 normal",
            "李四 36.5 normal",
            "王五 36.8 normal",
        ],
    ),  # fmt: skip
    case("王五体温三十八度发烧了", ["王五 38 abnormal 发热"]),
    case("张三的体温是三十六度没有什么症状", ["张三 36 normal"]),
    case("李四这边联系了体温正常", ["李四 - normal"]),
    case("王五刚才电话没人接听", ["王五 - unreachable"]),
    case("张三今天上午联系上了，三六点五度，无不适", ["张三 36.5 normal"]),
    case("张三今天早上体温36.5", ["张三 36.5 normal"], at="14:00", slot="noon/time"),
    case("张三早上体温是三十六度四，家里人都挺好的", ["张三 36.4 normal"]),
    case("李四说这两天有点拉肚子，没发烧", ["李四 - abnormal 腹泻"]),
    case("王五昨天晚上开始咳嗽，今天早上体温37度3", ["王五 37.3 abnormal 咳嗽、发热"]),
    case("刘建国 陈秀英 二人体温正常", ["刘建国 - normal", "陈秀英 - normal"], names=R6),
    case("陈秀英在医院陪护 电话联系 体温36.3", ["陈秀英 36.3 normal note=医院陪护"], names=R6),
    case("张三的老伴说他去地里干活了", ["张三 - absent note=干活"]),
    case(
        "已对张三、李四、王五进行电话随访，体温均正常",
        [
            "张三 - normal",
            "李四 - normal",
            "王五 - normal",
        ],
    ),  # fmt: skip
    case(
        "张三 体温36.5 正常 李四 电话无人接听 王五 外出买菜",
        [
            "张三 36.5 normal",
            "李四 - unreachable",
            "王五 - absent note=买菜",
        ],
    ),  # fmt: skip
    case(
        "今天早上对张三进行了电话联系，体温36.5度，无发热、干咳、乏力等症状",
        [
            "张三 36.5 normal",
        ],
        at="09:00",
        slot="morning/explicit",
    ),  # fmt: skip
    case("张三今天发烧了38度5咳嗽得厉害", ["张三 38.5 abnormal 发热、咳嗽"]),
    case("张三，男，体温36.5，无异常，谢谢", ["张三 36.5 normal"]),
    case("他们都正常"),
    # ---- typing habits: no spaces, mixed punctuation, full width, units -------------------
    case("张三36.5李四36.6王五36.7", ["张三 36.5 normal", "李四 36.6 normal", "王五 36.7 normal"]),
    case("张三，36.5。李四，36.6。", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三:36.5 李四:36.6", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三：36.5；李四：36.6。", ["张三 36.5 normal", "李四 36.6 normal"]),
    case(
        "张三36.5、李四36.6、王五36.4",
        [
            "张三 36.5 normal",
            "李四 36.6 normal",
            "王五 36.4 normal",
        ],
    ),  # fmt: skip
    case(
        "张三 36.5\n李四 36.6\n王五 36.4",
        [
            "张三 36.5 normal",
            "李四 36.6 normal",
            "王五 36.4 normal",
        ],
    ),  # fmt: skip
    case("张三　３６．５　李四　３６．６", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三３６．５，李四３７．５", ["张三 36.5 normal", "李四 37.5 abnormal 发热"]),
    case("张三36.5度,李四36.6度", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三 36.5°C 李四 36.6℃", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三T36.5 李四t36.6", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三 T:36.7", ["张三 36.7 normal"]),
    case("张三 体温36.5 正常", ["张三 36.5 normal"]),
    case("张三36点5，李四36度6", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三 36 度 5", ["张三 36.5 normal"]),
    case("张三 365 李四 366", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三 36。5", ["张三 36.5 normal"]),
    case("张三 37", ["张三 37 normal"]),
    case("张三 36.55", ["张三 36.55 normal"]),
    case("1.张三 36.5 2.李四 36.6", ["张三 36.5 normal", "李四 36.6 normal"]),
    case(
        "1、张三 36.5，2、李四 36.6，3、王五 36.4",
        [
            "张三 36.5 normal",
            "李四 36.6 normal",
            "王五 36.4 normal",
        ],
    ),  # fmt: skip
    case("①张三36.5②李四36.6", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三 36.5 👍 李四 36.6 😊", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三 36.5 正常 ✅", ["张三 36.5 normal"]),
    case(
        "张三36.5正常李四36.4正常王五36.6正常",
        [
            "张三 36.5 normal",
            "李四 36.4 normal",
            "王五 36.6 normal",
        ],
    ),  # fmt: skip
    case(
        "张三 36.5 李四 36.6 王五 36.7",
        [
            "张三 36.5 normal",
            "李四 36.6 normal",
            "王五 36.7 normal",
        ],
    ),  # fmt: skip
    case("张三（36.5）李四（36.6）", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三【36.5】", ["张三 36.5 normal"]),
    case("张三 36.5 11点36分联系的", ["张三 36.5 normal"]),
    case("张三 36.5 8:30联系", ["张三 36.5 normal"]),
    case("张三 体温36.5 正常 电话13800000001", ["张三 36.5 normal note=13800000001"]),
    case("张三 36.5 正常 78岁", ["张三 36.5 normal note=78岁"]),
    case("李四打了3次电话都没接", ["李四 - unreachable"]),
    # ---- several subjects, same subject twice --------------------------------------------
    case("张三36.5 李四36.6 张三36.7", ["张三 36.7 normal", "李四 36.6 normal"]),
    case("张三 36.5，张三 咳嗽", ["张三 - abnormal 咳嗽"]),
    case("张三、李四、王五正常", ["张三 - normal", "李四 - normal", "王五 - normal"]),
    case("张三李四王五均正常", ["张三 - normal", "李四 - normal", "王五 - normal"]),
    case("张三和李四都正常", ["张三 - normal", "李四 - normal"]),
    case("张三，李四正常，王五咳嗽", ["张三 - normal", "李四 - normal", "王五 - abnormal 咳嗽"]),
    case("张三 李四 未联系上", ["张三 - unreachable", "李四 - unreachable"]),
    case("张三、李四都没有发烧", ["张三 - normal", "李四 - normal"]),
    case("张三还有李四都在家", ["张三 - normal", "李四 - normal"]),
    case("张三、李四 36.5", ["李四 36.5 normal"], ["no_content: 张三"]),
    case(
        "张三36.5，李四和王五都联系不上",
        [
            "张三 36.5 normal",
            "李四 - unreachable",
            "王五 - unreachable",
        ],
    ),  # fmt: skip
    # ---- homophones / IME typos / close matches ------------------------------------------
    case("李思36.5", ["李四=李思 36.5 normal"]),
    case("王武 不在家", ["王五=王武 - absent"]),
    case("张山 36.5", ["张三=张山 36.5 normal"]),
    case("张珊36.6", ["张三=张珊 36.6 normal"]),
    case("李斯 三十六度六", ["李四=李斯 36.6 normal"]),
    case("李时 36.5", ["李四=李时 36.5 normal"]),
    case("张三36.5李思36.7", ["张三 36.5 normal", "李四=李思 36.7 normal"]),
    case(
        "张三 36.5 李思 36.7 其他都正常",
        [
            "张三 36.5 normal",
            "李四=李思 36.7 normal",
            "王五 - normal bulk",
        ],
    ),  # fmt: skip
    case("刘建果 36.5", ["刘建国=刘建果 36.5 normal"], names=R6),
    case("陈秀莹 36.6", ["陈秀英=陈秀莹 36.6 normal"], names=R6),
    case("杨智强36.4", ["杨志强=杨智强 36.4 normal"], names=R6),
    case("赵雷 36.6 周民 36.5", ["赵磊=赵雷 36.6 normal", "周敏=周民 36.5 normal"], names=R6),
    case("陈秀云 36.6", ["陈秀英=陈秀云 36.6 normal"], names=R6),
    case("牛建国 36.6", ["刘建国=牛建国 36.6 normal"], names=R6),
    case("黄莉莉 36.5", [], ["unknown_name: 黄莉莉 36.5 -> 黄丽"], names=R6),
    case("刘建 36.5", [], ["unknown_name: 刘建 36.5 -> 刘建国"], names=R6),
    case("彰伟 36.5", [], ["ambiguous_name: 彰伟 36.5 -> 张伟,章伟"], names=SAME_SOUND),
    case("张伟 36.5 章伟 36.6", ["张伟 36.5 normal", "章伟 36.6 normal"], names=SAME_SOUND),
    case("李那 36.5", ["李娜=李那 36.5 normal"], names=SAME_SOUND),
    # ---- courtesy forms ------------------------------------------------------------------
    case("张奶奶36.5", ["张三=张奶奶 36.5 normal"]),
    case("李叔 36.6 正常", ["李四=李叔 36.6 normal"]),
    case("王阿姨电话打不通", ["王五=王阿姨 - unreachable"]),
    case("小张 36.5", ["张三=小张 36.5 normal"]),
    case("李婶咳嗽", ["李四=李婶 - abnormal 咳嗽"]),
    case("张大爷 三十六度八 老李 三十六度五", ["张三=张大爷 36.8 normal", "李四=老李 36.5 normal"]),
    case("刘大爷 36.8", ["刘建国=刘大爷 36.8 normal"], names=R6),
    case("黄姐 正常", ["黄丽=黄姐 - normal"], names=R6),
    case("陈阿姨 三十六度五", ["陈秀英=陈阿姨 36.5 normal"], names=R6),
    case("老王 36.5", [], ["ambiguous_name: 老王 36.5 -> 王五,王建军"], names=TWO_WANG),
    case("老赵 36.5", [], ["unknown_name: 老赵 36.5"]),
    case("王奶奶说她没什么不舒服", ["王五=王奶奶 - normal"]),
    # ---- negation ------------------------------------------------------------------------
    case("张三 36.5 无发热、咳嗽、乏力等症状", ["张三 36.5 normal"]),
    case("张三 没有发烧 没有咳嗽", ["张三 - normal"]),
    case("张三 不发烧 不咳嗽", ["张三 - normal"]),
    case("张三 无发热 咳嗽", ["张三 - normal"]),
    # a comma ends the clause, and the negation with it, unless 等 closes a list (§3)
    case("张三 无发热，咳嗽，乏力", ["张三 - abnormal 咳嗽、乏力"]),
    case("张三 无发热，咳嗽", ["张三 - abnormal 咳嗽"]),
    case("张三 无发热，咳嗽，乏力等症状", ["张三 - normal"]),
    case("张三 无发热，无咳嗽", ["张三 - normal"]),
    case("张三 36.5，无发热，咳嗽乏力等症状。李四 36.6", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("张三 否认发热咳嗽", ["张三 - normal"]),
    case("张三 体温36.5 无不适", ["张三 36.5 normal"]),
    case("张三 没有不舒服", ["张三 - normal"]),
    case("张三 咳嗽 没发烧", ["张三 - abnormal 咳嗽"]),
    case("张三不咳嗽了但是有点发烧", ["张三 - abnormal 发热"]),
    case("张三没发烧，有点咳嗽", ["张三 - abnormal 咳嗽"]),
    case("张三 没力气", ["张三 - abnormal 乏力"]),
    case("张三 全身无力", ["张三 - abnormal 乏力"]),
    case("张三 没味觉", ["张三 - abnormal 嗅味觉减退"]),
    case("李四 不咳了 36.6", ["李四 36.6 normal"]),
    case("王五 无异常", ["王五 - normal"]),
    case("王五 体温不正常", ["王五 - abnormal note=不正常"]),
    case("王五 无发热 37.5", ["王五 37.5 abnormal 发热"]),
    # ---- statuses ------------------------------------------------------------------------
    case(
        "张三 联系不上 李四 电话不通 王五 无人接听",
        [
            "张三 - unreachable",
            "李四 - unreachable",
            "王五 - unreachable",
        ],
    ),  # fmt: skip
    case(
        "张三没接，李四关机，王五失联",
        [
            "张三 - unreachable",
            "李四 - unreachable",
            "王五 - unreachable",
        ],
    ),  # fmt: skip
    case("张三 打不通", ["张三 - unreachable"]),
    case(
        "张三外出，李四擅自离开，王五不在家",
        [
            "张三 - absent",
            "李四 - absent",
            "王五 - absent",
        ],
    ),  # fmt: skip
    case("张三 良好 李四 好 王五 健康", ["张三 - normal", "李四 - normal", "王五 - normal"]),
    case("张三 已联系", ["张三 - normal"]),
    case("张三 无症状", ["张三 - normal"]),
    case("张三 不舒服", ["张三 - abnormal note=不舒服"]),
    case("张三 头晕", ["张三 - abnormal note=头晕"]),
    case("张三 发烧 38.2", ["张三 38.2 abnormal 发热"]),
    case("张三 37.3", ["张三 37.3 abnormal 发热"]),
    case("张三 37.2", ["张三 37.2 normal"]),
    case("张三外出就医 体温38度", ["张三 38 abnormal 发热 note=就医"]),
    case("张三 低烧 李四 高烧", ["张三 - abnormal 发热", "李四 - abnormal 发热"]),
    case("张三 干咳", ["张三 - abnormal 咳嗽"]),
    case(
        "张三 疲倦 李四 喉咙痛 王五 咽喉痛",
        [
            "张三 - abnormal 乏力",
            "李四 - abnormal 咽痛",
            "王五 - abnormal 咽痛",
        ],
    ),  # fmt: skip
    case("张三 头疼 胸闷 气短", ["张三 - abnormal 头痛、胸闷、气促"]),
    case("张三 呼吸困难 流鼻涕 鼻塞", ["张三 - abnormal 气促、流涕"]),
    case("张三 全身酸痛 李四 浑身疼", ["张三 - abnormal 肌肉酸痛", "李四 - abnormal 肌肉酸痛"]),
    case(
        "张三 味觉减退 李四 嗅觉减退",
        [
            "张三 - abnormal 嗅味觉减退",
            "李四 - abnormal 嗅味觉减退",
        ],
    ),  # fmt: skip
    case("张三 恶心 呕吐", ["张三 - abnormal 呕吐"]),
    case("张三 咳 喘", ["张三 - abnormal 咳嗽、气促"]),
    case("王五 37.6 发烧 咳嗽", ["王五 37.6 abnormal 发热、咳嗽"]),
    # ---- bulk ----------------------------------------------------------------------------
    case(
        "张三37.4，其他都正常",
        [
            "张三 37.4 abnormal 发热",
            "李四 - normal bulk",
            "王五 - normal bulk",
        ],
    ),  # fmt: skip
    case(
        "王五未联系上，其他人都正常",
        [
            "王五 - unreachable",
            "张三 - normal bulk",
            "李四 - normal bulk",
        ],
    ),  # fmt: skip
    case("其余正常", ["张三 - normal bulk", "李四 - normal bulk", "王五 - normal bulk"]),
    case("全部无异常", ["张三 - normal bulk", "李四 - normal bulk", "王五 - normal bulk"]),
    case("均正常", ["张三 - normal bulk", "李四 - normal bulk", "王五 - normal bulk"]),
    case("今天全部正常", ["张三 - normal bulk", "李四 - normal bulk", "王五 - normal bulk"]),
    case("大家体温都正常", ["张三 - normal bulk", "李四 - normal bulk", "王五 - normal bulk"]),
    case(
        "老王不在家，其余都正常",
        [
            "王五=老王 - absent",
            "张三 - normal bulk",
            "李四 - normal bulk",
        ],
    ),  # fmt: skip
    case("全部正常 张三 36.8", ["张三 36.8 normal", "李四 - normal bulk", "王五 - normal bulk"]),
    case(
        # after names that each carry a report, 都正常 speaks of them only (DESIGN §3)
        "张三 36.5 李四 36.6 都正常",
        ["张三 36.5 normal", "李四 36.6 normal"],
    ),
    case(
        "老王不在家，其他都正常",
        ["李四 - normal bulk"],
        ["ambiguous_name: 老王不在家 -> 王五,王建军"],
        names=TWO_WANG,
    ),
    case(
        "全部正常，赵六未联系上",
        ["张三 - normal bulk", "李四 - normal bulk", "王五 - normal bulk"],
        ["unknown_name: 赵六未联系上"],
    ),
    case("张三，其他都正常", ["李四 - normal bulk", "王五 - normal bulk"], ["no_content: 张三"]),
    case("都没联系上"),
    case("大家好，张三36.5", ["张三 36.5 normal"]),
    # ---- slots and dates -----------------------------------------------------------------
    case(
        "早上\n张三 36.5\n李四 36.6",
        ["张三 36.5 normal", "李四 36.6 normal"],
        slot="morning/explicit",
    ),  # fmt: skip
    case("中午：张三36.5", ["张三 36.5 normal"], slot="noon/explicit"),
    case("晚上好，张三36.5", ["张三 36.5 normal"], at="19:00", slot="evening/explicit"),
    case("补报早上 张三36.5", ["张三 36.5 normal"], at="14:00", slot="morning/explicit"),
    case("补报中午的：李四 36.6", ["李四 36.6 normal"], at="20:00", slot="noon/explicit"),
    case("下午 张三 36.6", ["张三 36.6 normal"], slot="noon/explicit"),
    case("傍晚 张三 36.6", ["张三 36.6 normal"], slot="evening/explicit"),
    case("晚间:张三36.6", ["张三 36.6 normal"], at="21:00", slot="evening/explicit"),
    case("午间 张三 36.6", ["张三 36.6 normal"], at="12:10", slot="noon/explicit"),
    case("上午 张三 36.6", ["张三 36.6 normal"], at="09:10", slot="morning/explicit"),
    case("早间，张三36.6", ["张三 36.6 normal"], at="07:10", slot="morning/explicit"),
    case(
        "晚：张三36.6",
        ["张三 36.6 normal"],
        at="01:30",
        slot="evening/explicit",
        date=DAY - datetime.timedelta(days=1),
    ),  # fmt: skip
    case(
        "张三36.6",
        ["张三 36.6 normal"],
        at="01:30",
        slot="evening/time",
        date=DAY - datetime.timedelta(days=1),
    ),  # fmt: skip
    case(
        "张三36.6",
        ["张三 36.6 normal"],
        at="04:59",
        slot="evening/time",
        date=DAY - datetime.timedelta(days=1),
    ),  # fmt: skip
    case("张三36.6", ["张三 36.6 normal"], at="05:00", slot="morning/time"),
    case("张三36.6", ["张三 36.6 normal"], at="10:59", slot="morning/time"),
    case("张三36.6", ["张三 36.6 normal"], at="11:00", slot="noon/time"),
    case("张三36.6", ["张三 36.6 normal"], at="16:59", slot="noon/time"),
    case("张三36.6", ["张三 36.6 normal"], at="17:00", slot="evening/time"),
    case("张三36.6", ["张三 36.6 normal"], at="23:59", slot="evening/time"),
    case("各位领导好\n早上：张三36.5", ["张三 36.5 normal"], at="13:00", slot="morning/explicit"),
    case("今天早上张三36.5", ["张三 36.5 normal"], at="14:00", slot="morning/explicit"),
    case("早张三36.5李四36.6", ["张三 36.5 normal", "李四 36.6 normal"], slot="morning/explicit"),
    case("【晚】张三36.5", ["张三 36.5 normal"], at="19:00", slot="evening/explicit"),
    case("晚点再报张三的", [], ["no_content: 张三"], at="13:00", slot="noon/time"),
    case(
        "晚上\n\n张三 36.5\n李四 咳嗽\n王五 外出",
        [
            "张三 36.5 normal",
            "李四 - abnormal 咳嗽",
            "王五 - absent",
        ],
        at="18:30",
        slot="evening/explicit",
    ),  # fmt: skip
    case("张三 36.5", ["张三 36.5 normal"], at="2026-03-02T18:30:00+08:00", slot="evening/time"),
    # ---- corrections ---------------------------------------------------------------------
    case("更正：李四36.6", ["李四 36.6 normal"], correction=True),
    case("更正一下，王五37.5", ["王五 37.5 abnormal 发热"], correction=True),
    case("早上更正 张三 36.4", ["张三 36.4 normal"], correction=True, slot="morning/explicit"),
    case("更正 早上 张三 36.4", ["张三 36.4 normal"], correction=True, slot="morning/explicit"),
    case("张三 36.4 更正", ["张三 36.4 normal note=更正"]),
    # ---- cover reports (多对一): subjects of the village not assigned to this member ------
    case("赵六 36.5", ["赵六 36.5 normal cover"], others=OTHERS),
    case("张三 36.5 赵六 36.6", ["张三 36.5 normal", "赵六 36.6 normal cover"], others=OTHERS),
    case("孙琪 36.5", ["孙七=孙琪 36.5 normal cover"], others=OTHERS),
    case("老孙 36.5", [], ["unknown_name: 老孙 36.5"], others=OTHERS),
    case(
        "全部正常",
        [
            "张三 - normal bulk",
            "李四 - normal bulk",
            "王五 - normal bulk",
        ],
        others=OTHERS,
    ),  # fmt: skip
    case("章三 36.5", ["张三=章三 36.5 normal"], names=("张三",), others=("章三",)),
    # ---- problems ------------------------------------------------------------------------
    case("赵六 36.5", [], ["unknown_name: 赵六 36.5"]),
    case("张三36.5 赵六37.8", ["张三 36.5 normal"], ["unknown_name: 赵六37.8"]),
    case("孙悟空 36.5 李四 36.6", ["李四 36.6 normal"], ["unknown_name: 孙悟空 36.5"]),
    case("张三 63.5", [], ["bad_temperature: 张三 63.5 -> 张三"]),
    case("张三 33.5", [], ["bad_temperature: 张三 33.5 -> 张三"]),
    case("张三 45度", [], ["bad_temperature: 张三 45度 -> 张三"]),
    case("张三 3.65", [], ["bad_temperature: 张三 3.65 -> 张三"]),
    case("张三 98.6", [], ["bad_temperature: 张三 98.6 -> 张三"]),
    case("张三 体温 28", [], ["bad_temperature: 张三 体温 28 -> 张三"]),
    case("张三 四十五度", [], ["bad_temperature: 张三 四十五度 -> 张三"]),
    case("张三 63.5 咳嗽", ["张三 - abnormal 咳嗽"], ["bad_temperature: 张三 63.5 咳嗽 -> 张三"]),
    case("张三 35", ["张三 35 normal"]),
    case(
        "张三 42.5 李四 42.6", ["张三 42.5 abnormal 发热"], ["bad_temperature: 李四 42.6 -> 李四"]
    ),
    case("张三", [], ["no_content: 张三"]),
    case("张三 李四", [], ["no_content: 张三", "no_content: 李四"]),
    case("张三，李四 36.5", ["李四 36.5 normal"], ["no_content: 张三"]),
    case("张三 好的收到", [], ["no_content: 张三"]),
    case("张三 abc", [], ["no_content: 张三 abc"]),
    case("张三？", [], ["no_content: 张三"]),
    case("张三 36.5 张三", ["张三 36.5 normal"]),
    case("张三李四张三李四", [], ["no_content: 张三", "no_content: 李四"]),
    case("张三血压高 体温36.5", ["张三 36.5 normal note=血压高"]),
    case(
        "老张 体温36.8 老李 体温36.5 老王 体温36.6",
        [
            "张三=老张 36.8 normal",
            "李四=老李 36.5 normal",
            "王五=老王 36.6 normal",
        ],
    ),  # fmt: skip
    # ---- real chats and notices (the issue of 一日三联系 as circulated) ----------------------
    # a comma or a doubled dot as decimal mark: the digit is never dropped
    case("王五 37,8", ["王五 37.8 abnormal 发热"]),
    case("王五 37，8", ["王五 37.8 abnormal 发热"]),
    case("王五 36,5", ["王五 36.5 normal"]),
    case("王五 37..8", ["王五 37.8 abnormal 发热"]),
    case("王五 3７.8", ["王五 37.8 abnormal 发热"]),
    case("王五 378", ["王五 37.8 abnormal 发热"]),
    case("王五 37 8", [], ["bad_temperature: 王五 37 8 -> 王五"]),
    case("王五 37. 8", [], ["bad_temperature: 王五 37. 8 -> 王五"]),
    case("王五 36.555", [], ["bad_temperature: 王五 36.555 -> 王五"]),
    case("王五 3780", [], ["bad_temperature: 王五 3780 -> 王五"]),
    case("王五 37 8 咳嗽", ["王五 - abnormal 咳嗽"], ["bad_temperature: 王五 37 8 咳嗽 -> 王五"]),
    # the notice's wording: a negated list whatever it holds, brackets included
    case("王五无发热、干咳、乏力、咽痛、嗅（味）觉减退、腹泻等症状", ["王五 - normal"]),
    case(
        "王五 36.5 无发热、寒战、干咳、咳痰、鼻塞、流涕、咽痛、头痛、乏力、肌肉酸痛、关节疼痛、"
        "气促、呼吸困难、胸闷、结膜充血、恶心、呕吐、腹泻、腹痛等症状",
        ["王五 36.5 normal"],
    ),
    case("李四 体温正常，无发热、咳嗽、乏力等不适", ["李四 - normal"]),
    case("张三无发热、寒战等症状，有点咳嗽", ["张三 - abnormal 咳嗽"]),
    # a bulk after named reports speaks of those names only
    case("张伟36.5 王芳36.7 都好", ["张伟 36.5 normal", "王芳 36.7 normal"], names=ZW),
    case(
        "除张伟外都正常，张伟未联系上",
        ["张伟 - unreachable", "王芳 - normal bulk", "张建军 - normal bulk"],
        names=ZW,
    ),
    case(
        "除张伟外都正常",
        ["王芳 - normal bulk", "张建军 - normal bulk"],
        ["no_content: 张伟"],
        names=ZW,
    ),
    case(
        "除了张伟、王芳，其他都正常",
        ["张建军 - normal bulk"],
        ["no_content: 张伟", "no_content: 王芳"],
        names=ZW,
    ),
    case("张伟 王芳 都好", ["张伟 - normal", "王芳 - normal"], names=ZW),
    # acknowledgements are no report, even from a member with one subject
    case("收到", names=ONE),
    case("好的", names=ONE),
    case("嗯嗯", names=ONE),
    case("👌", names=ONE),
    case("谢谢", names=ONE),
    case("[抱拳]", names=ONE),
    # a member with one subject may leave the name out
    case("一切正常", ["张三 - normal bulk"], names=ONE),
    case("36.5", ["张三 36.5 normal"], names=ONE),
    case("今天体温37.6，有点咳嗽", ["张三 37.6 abnormal 发热、咳嗽"], names=ONE),
    case("36.5"),  # three subjects: whose? nothing is recorded
    # the status first
    case("未联系上：张伟", ["张伟 - unreachable"], names=ZW),
    case("未联系上的有张伟、王芳", ["张伟 - unreachable", "王芳 - unreachable"], names=ZW),
    case(
        "正常：张伟、张建军\n外出：王芳",
        ["张伟 - normal", "张建军 - normal", "王芳 - absent"],
        names=ZW,
    ),
    # given name, 老师, traditional characters
    case("建军 36.5", ["张建军=建军 36.5 normal"], names=ZW),
    case("张老师 36.2", ["张伟=张老师 36.2 normal"], names=("张伟", "王芳")),
    case("張偉 頭痛", ["张伟 - abnormal 头痛"], names=ZW),
    case("王芳 體溫36.8 無發燒咳嗽", ["王芳 36.8 normal"], names=ZW),
    # a symptom said to be over; being out
    case("王五 咳嗽好了", ["王五 - normal"]),
    case("王五 已经不咳了 36.6", ["王五 36.6 normal"]),
    case("王五咳嗽发烧都好了", ["王五 - normal"]),
    case("王五 咳嗽好多了", ["王五 - abnormal 咳嗽 note=好多了"]),
    case("王五 37 8咳嗽", ["王五 - abnormal 咳嗽"], ["bad_temperature: 王五 37 8咳嗽 -> 王五"]),
    case("张三 36.5 2 李四 36.6", ["张三 36.5 normal", "李四 36.6 normal"]),
    case("王五 出去买菜了", ["王五 - absent"]),
    case("王五 已送医院", ["王五 - absent"]),
    case("张三在家没出去", ["张三 - normal"]),
    # ---- gibberish and hostile input -----------------------------------------------------
    case(""),
    case("   "),
    case("😀😀😀"),
    case("'; DROP TABLE subjects; --"),
    case("<script>alert(1)</script>"),
    case("你好"),
    case("帮助"),
    case("123456"),
    case("好的，收到"),
    case("哈哈哈哈哈哈"),
    case("\x00\x01张三 36.5\x07", ["张三 36.5 normal"]),
    case("张三 36.5 ' OR 1=1 --", ["张三 36.5 normal note=OR 1=1"]),
    case("张三36.5" * 2000, ["张三 36.5 normal"]),
]


@pytest.mark.parametrize(
    ("text", "entries", "problems", "names", "others", "at", "slot", "date", "correction"),
    CASES,
)
def test_table(
    text: str,
    entries: list[str],
    problems: list[str],
    names: tuple[str, ...],
    others: tuple[str, ...],
    at: str,
    slot: str,
    date: datetime.date,
    correction: bool,
) -> None:
    result = parse_reply(text, names, when(at), others=others)
    assert [show_entry(e) for e in result.entries] == entries
    assert [show_problem(p) for p in result.problems] == problems
    assert f"{result.slot}/{result.slot_source}" == slot
    assert result.date == date
    assert result.correction is correction


def test_table_size() -> None:
    assert len(CASES) >= 150


def test_to_json_shape() -> None:
    result = parse_reply("早：章三 36.6 赵六 36.5", R3, when("08:30"))
    assert result.to_json() == {
        "slot": "morning",
        "slot_source": "explicit",
        "entries": [
            {
                "name": "张三",
                "typed": "章三",
                "temperature": 36.6,
                "status": "normal",
                "symptoms": [],
                "note": "",
            }
        ],
        "problems": [{"text": "赵六 36.5", "reason": "unknown_name", "candidates": []}],
    }
    json.dumps(result.to_json())


def test_typed_of_bulk_and_flags() -> None:
    result = parse_reply("赵六 36.5，其他都正常", R3, when("08:30"), others=OTHERS)
    cover, *bulk = result.entries
    assert (cover.name, cover.assigned, cover.bulk) == ("赵六", False, False)
    assert [(e.name, e.typed, e.bulk, e.assigned) for e in bulk] == [
        ("张三", "其他都正常", True, True),
        ("李四", "其他都正常", True, True),
        ("王五", "其他都正常", True, True),
    ]


def test_fever_threshold_is_configurable() -> None:
    result = parse_reply("张三 37.2", R3, when("08:30"), fever_threshold=37.0)
    assert (result.entries[0].status, result.entries[0].symptoms) == ("abnormal", ("发热",))


def test_names_given_as_list_and_with_blanks() -> None:
    result = parse_reply("张三 36.5", ["", " 张三 ", "张三", "李四"], when("08:30"))
    assert [(e.name, e.temperature) for e in result.entries] == [("张三", 36.5)]
    assert [
        e.name for e in parse_reply("全部正常", ["张三", " ", "李四"], when("08:30")).entries
    ] == [
        "张三",
        "李四",
    ]


def test_aware_time_uses_its_local_hour() -> None:
    at = datetime.datetime(2026, 3, 3, 0, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
    result = parse_reply("张三 36.5", R3, at)
    assert (result.slot, result.date) == ("evening", datetime.date(2026, 3, 2))


# ---- parse_batch_line ----------------------------------------------------------------------


def test_batch_line_ok() -> None:
    line = json.dumps({"text": "章三 36.6", "names": ["张三", "李四"], "at": "2026-03-02T08:30"})
    assert parse_batch_line(line) == parse_reply("章三 36.6", R3, when("08:30")).to_json()


def test_batch_line_names_as_string() -> None:
    line = json.dumps({"text": "全部正常", "names": "张三,李四", "at": "2026-03-02T19:00:00"})
    out = parse_batch_line(line)
    assert out["slot"] == "evening"
    assert [e["name"] for e in out["entries"]] == ["张三", "李四"]


def test_batch_line_uses_the_configured_threshold_and_zone() -> None:
    line = json.dumps({"text": "张三 37.4", "names": ["张三"], "at": "2026-03-02T00:30:00Z"})
    out = parse_batch_line(line, fever_threshold=37.5, tz=ZoneInfo("Asia/Shanghai"))
    assert out["slot"] == "morning"  # 08:30 in Shanghai, as `parse --at` reads it
    assert out["entries"][0]["status"] == "normal"  # 37.4 is below a 37.5 threshold


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"names": ["张三"], "at": "2026-03-02T08:00"}', "'text'"),
        ('{"text": "张三 36.5", "names": ["张三"]}', "'at'"),
        ('{"text": "张三 36.5", "names": ["张三"], "at": "yesterday"}', "bad 'at'"),
        ('{"text": "张三 36.5", "names": [1], "at": "2026-03-02T08:00"}', "'names'"),
        ("", "not JSON"),
    ],
)
def test_batch_line_errors(line: str, reason: str) -> None:
    out = parse_batch_line(line)
    assert set(out) == {"error", "line"}
    assert reason in out["error"]
    assert out["line"] == line


def test_batch_line_truncates_long_lines() -> None:
    out = parse_batch_line("x" * 1000 + "\n")
    assert out["line"] == "x" * 200


# ---- properties ----------------------------------------------------------------------------

STATUSES = {"normal", "abnormal", "unreachable", "absent"}
REASONS = {"unknown_name", "ambiguous_name", "bad_temperature", "no_content"}
ENTRY_KEYS = {"name", "typed", "temperature", "status", "symptoms", "note"}
CANONICAL = {
    "发热", "咳嗽", "乏力", "咽痛", "腹泻", "头痛", "胸闷", "气促", "流涕", "肌肉酸痛",
    "嗅味觉减退", "呕吐",
}  # fmt: skip


def check_valid(result: ParseResult, names: tuple[str, ...], others: tuple[str, ...]) -> None:
    assert result.slot in SLOTS
    assert result.slot_source in ("explicit", "time")
    seen = set()
    for e in result.entries:
        assert e.status in STATUSES
        assert e.temperature is None or 34.0 <= e.temperature <= 42.5
        assert e.name in names or (e.name in others and not e.assigned)
        assert e.name not in seen
        seen.add(e.name)
        assert set(e.symptoms) <= CANONICAL
        assert len(set(e.symptoms)) == len(e.symptoms)
        if e.symptoms:
            assert e.status == "abnormal"
    for p in result.problems:
        assert p.reason in REASONS
    data = result.to_json()
    assert set(data) == {"slot", "slot_source", "entries", "problems"}
    assert all(set(e) == ENTRY_KEYS for e in data["entries"])
    assert all(set(p) == {"text", "reason", "candidates"} for p in data["problems"])
    json.dumps(data)


WORDS = [
    "张三", "李四", "王五", "章三", "李思", "老王", "小张", "赵六", "孙七", "张", "三",
    "36.5", "37.8", "三十六度五", "36度5", "365", "T36", "98.6", "1.", "②", "体温", "度",
    "咳嗽", "发烧", "无", "没有", "不", "未联系上", "不在家", "正常", "全部", "都", "其他",
    "好", "早上", "晚", "更正", "补报", "嗓子有点疼", "没力气", "和", "、", "，", "。", " ",
    "\n", ":", "😀", "'", ";", "--", "DROP", "%s", "\\", "\x00",
    "37,8", "37..8", "37，", "除", "外", "其他人", "好了", "等症状", "嗅（味）觉减退", "寒战",
    "未联系上：", "三", "张老师", "張三", "收到", "👌", "是否外出：否", "「", "」", "- - -",
    "一切正常", "出去买菜了",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_never_raises(text: str) -> None:
    check_valid(parse_reply(text, R3, when("08:30"), others=OTHERS), R3, OTHERS)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(WORDS) | st.text(alphabet=string.digits + ".", max_size=5)),
    st.sampled_from([R3, R6, TWO_WANG, SAME_SOUND, ()]),
    st.integers(min_value=0, max_value=23),
)
def test_grammar_like_text_is_valid(words: list[str], names: tuple[str, ...], hour: int) -> None:
    text = "".join(words)
    result = parse_reply(text, names, datetime.datetime(2026, 3, 2, hour), others=OTHERS)
    check_valid(result, names, OTHERS)


@settings(max_examples=100, deadline=None)
@given(st.text(), st.lists(st.text(max_size=4), max_size=6), st.lists(st.text(max_size=4)))
def test_any_names_never_raise(text: str, names: list[str], others: list[str]) -> None:
    result = parse_reply(text, names, when("12:00"), others=others)
    # noon by the clock, unless the text names a slot ("晚" alone says evening)
    assert result.slot in ("morning", "noon", "evening")


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_batch_never_raises(line: str) -> None:
    out = parse_batch_line(line)
    assert isinstance(out, dict)


# ---- safety: unsure means asked back or left missing, never a made-up normal ----------------
SEPARATORS = [
    ".", ",", "，", "..", "。", "、", " ", ". ", "点", "度", "", "．", ",,", "。。", "，。", "·",
    "-", "/", "_", "!", ":", "：", "°", "°C", "~", "…", " , ",
]  # fmt: skip
AFTER = [
    "", " 咳嗽", " 正常", "，无发热咳嗽等症状", "，李四 36.5", "度", "℃", "\n李四 36.6", "摄氏度",
    " 2.李四 36.5", "。其他都正常", "°",
]  # fmt: skip
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@settings(max_examples=400, deadline=None)
@given(
    st.integers(min_value=34, max_value=42),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(SEPARATORS),
    st.sampled_from(AFTER),
    st.booleans(),
)
def test_a_digit_is_never_dropped(
    whole: int, tenth: int, separator: str, after: str, wide: bool
) -> None:
    reading = f"{whole}{separator}{tenth}"
    text = f"王五 {reading.translate(FULL_WIDTH) if wide else reading}{after}"
    result = parse_reply(text, R3, when("08:30"))
    asked = [p for p in result.problems if p.reason == "bad_temperature"]
    wang = [e for e in result.entries if e.name == "王五"]
    value = whole + tenth / 10
    if wang and wang[0].temperature is not None:
        assert wang[0].temperature == pytest.approx(value), text
        assert ("发热" in wang[0].symptoms) is (value >= 37.3), text
    else:
        assert asked or value > 42.5, text
        assert not wang or wang[0].status != "normal", text


NEGATED_ITEMS = [
    "发热", "干咳", "乏力", "咽痛", "嗅（味）觉减退", "嗅(味)觉减退", "腹泻", "寒战", "咳痰",
    "鼻塞", "流涕", "头痛", "肌肉酸痛", "关节疼痛", "气促", "呼吸困难", "胸闷", "结膜充血",
    "恶心", "呕吐", "腹痛", "味觉减退", "嗅觉减退", "咳嗽", "发烧", "拉肚子", "肌痛",
    "嗅觉、味觉减退", "结膜炎", "食欲不振", "畏寒", "头晕", "嗓子疼", "全身酸痛",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["无", "没有", "没", "未见", "无明显", "否认", "均无", "未出现"]),
    st.lists(st.sampled_from(NEGATED_ITEMS), min_size=1, max_size=12),
    st.sampled_from(["、", "，", "和", " "]),
    st.sampled_from(["等症状", "等", "等不适", "", "等症状。", "等症状，体温正常"]),
    st.sampled_from(["王五", "王五 36.5 ", "王五体温36.6，", "王五今天"]),
)
def test_a_negated_list_never_alerts(
    negation: str, items: list[str], joiner: str, end: str, head: str
) -> None:
    # a comma ends a clause (DESIGN §3): a list joined by ， is negated when 等 closes it
    assume(joiner != "，" or len(items) == 1 or "等" in end)
    text = head + negation + joiner.join(items) + end
    result = parse_reply(text, R3, when("08:30"))
    got = [(e.name, e.status, e.symptoms) for e in result.entries]
    assert got == [("王五", "normal", ())], text
    assert result.problems == (), text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(ZW), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(["36.5", "36.7", "正常", "体温36.4", "36,6", "无异常"]), min_size=3),
    st.sampled_from([" ", "，", "、", "\n", "；"]),
    st.sampled_from(["都好", "都正常", "均正常", "一切正常", "都没问题", "全部正常", "都无异常"]),
)
def test_a_bulk_after_names_marks_no_one_unnamed(
    named: list[str], reports: list[str], joiner: str, bulk: str
) -> None:
    text = joiner.join(f"{n}{r}" for n, r in zip(named, reports, strict=False)) + joiner + bulk
    result = parse_reply(text, ZW, when("08:30"))
    assert {e.name for e in result.entries} == set(named), text
    assert not any(e.bulk for e in result.entries), text
