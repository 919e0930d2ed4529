"""Parser throughput: typical member messages over several rosters (budget: DESIGN §9)."""

from __future__ import annotations

import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handlers.parser import parse_reply

BUDGET = 20_000.0  # messages per second, one core

ROSTERS: tuple[tuple[str, ...], ...] = (
    ("张三", "李四", "王五"),
    ("刘建国", "陈秀英", "杨志强", "黄丽", "赵磊"),
    ("周敏", "吴涛", "徐桂兰", "孙浩", "马丽娟", "朱伟", "胡静", "郭强"),
    ("林峰", "何平", "罗娟", "高远", "梁红", "宋佳"),
    ("谢婷", "韩冰", "唐亮", "冯雪"),
)

# The rest of the village (subjects of other members, for 多对一 cover reports).
VILLAGE: tuple[str, ...] = (
    "赵六", "孙七", "钱八", "高峰", "何伟", "罗斌", "郑红", "梁军", "谢芳", "宋涛", "唐娟",
    "许强", "韩梅", "冯刚", "邓辉", "曹静", "彭亮", "曾敏", "肖勇", "田甜",
)  # fmt: skip

# {0}, {1}, {2} are the roster's first names; {h0} a homophone or courtesy form of {0}.
TEMPLATES: tuple[str, ...] = (
    "{0} 36.5 正常，{1} 36.8",
    "早：{0}36.5{1}36.7{2}未联系上",
    "{2} 37.6 咳嗽 乏力",
    "{1}体温三十六度八，无发热咳嗽等症状",
    "全部正常",
    "都正常，{0} 37.4",
    "{h0} 36.6",
    "{c2} 不在家",
    "更正 {0} 36.4",
    "{0}今天早上体温36度5没什么不舒服",
    "{1}那边打了两次电话都没人接",
    "{2}说他嗓子有点疼，体温三十七度二",
    "{0}36.5，{1}36.6，{2}36.4，其他都正常",
    "晚上\n{0} 36.5\n{1} 36.7 正常\n{2} 36.6",
    "{0}、{1}都正常",
    "{0} ３６．５ {1} 36.9度 {2} T36.6",
    "赵六 36.5",
    "{0} 36.5℃ 无异常",
    "中午{0}36.3{1}36.4{2}36.5均正常",
    "{0} 体温 37.8 发烧 头疼 {1} 36.5",
    "{0}、{1}、{2}都正常，赵六 36.6",
    "1.{0} 36.5 2.{1} 36.7 3.{2} 外出",
    "{1}今天量了体温三十六点八度，没有发烧也没有咳嗽",
    "{h0}",
)


def corpus(size: int = 4000, seed: int = 7) -> list[tuple[str, tuple[str, ...]]]:
    """A mixed corpus of (text, roster) pairs (the rest of the village is VILLAGE)."""
    rng = random.Random(seed)
    homophone = {"张": "章", "刘": "柳", "周": "州", "林": "琳", "谢": "解"}
    out = []
    for _ in range(size):
        roster = rng.choice(ROSTERS)
        first = roster[0]
        h0 = homophone.get(first[0], first[0]) + first[1:]
        c2 = "老" + roster[2][0]
        template = rng.choice(TEMPLATES)
        out.append((template.format(*roster[:3], h0=h0, c2=c2), roster))
    return out


BATCH_LINES = 40_000


def batch_rate(lines: int = BATCH_LINES, tries: int = 3) -> float:
    """Lines per second of `gridwatch parse --batch` itself, as a subprocess: the time for a
    file of `lines` lines minus the time for a 1-line file (start-up: Python, imports, the
    config), best of `tries` each."""
    gridwatch = Path(sys.executable).with_name("gridwatch")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDWATCH_", "WECHAT_"))}
    with tempfile.TemporaryDirectory() as tmp:
        big, one, out = Path(tmp, "big.jsonl"), Path(tmp, "one.jsonl"), Path(tmp, "out.jsonl")
        rows = [
            json.dumps({"text": text, "names": list(roster), "at": "2026-03-02T09:15"})
            for text, roster in corpus(lines)
        ]
        big.write_text("\n".join(rows) + "\n", encoding="utf-8")
        one.write_text(rows[0] + "\n", encoding="utf-8")

        def seconds(path: Path) -> float:
            with out.open("w", encoding="utf-8") as sink:
                start = time.perf_counter()
                subprocess.run(
                    [str(gridwatch), "parse", "--batch", str(path)],
                    stdout=sink,
                    cwd=tmp,
                    env=env,
                    check=True,
                )
                return time.perf_counter() - start

        startup = min(seconds(one) for _ in range(tries))
        whole = min(seconds(big) for _ in range(tries))
        with out.open(encoding="utf-8") as written:
            assert sum(1 for _ in written) == lines, "parse --batch lost lines"
    return lines / (whole - startup)


def run() -> list[dict]:
    """Measure messages per second, best of five passes over the corpus (best: least
    disturbed by other processes), then through `gridwatch parse --batch`."""
    messages = corpus()
    at = datetime.datetime(2026, 3, 2, 9, 15)
    for text, roster in messages[:200]:  # warm the per-roster caches
        parse_reply(text, roster, at, others=VILLAGE)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for text, roster in messages:
            parse_reply(text, roster, at, others=VILLAGE)
        best = min(best, time.perf_counter() - start)
    measured = len(messages) / best
    batch = batch_rate()
    return [
        {
            "name": "parser",
            "budget": ">= 20000 msg/s",
            "measured": round(measured, 1),
            "unit": "msg/s",
            "pass": measured >= BUDGET,
        },
        {
            "name": "parser: gridwatch parse --batch (start-up excluded)",
            "budget": ">= 20000 msg/s",
            "measured": round(batch, 1),
            "unit": "msg/s",
            "pass": batch >= BUDGET,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
