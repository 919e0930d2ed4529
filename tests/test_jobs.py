"""The scheduled jobs one by one, on the demo roster (2026-03-02: 29 active subjects)."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from bot.config import Config
from schedules import jobs
from storage.outbox import queue_send
from tests.routine_helpers import ids, report

TZ = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 2)


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


class Sink:
    """A `send` that claims and queues like the runner does and remembers what it was given."""

    def __init__(self, db: sqlite_utils.Database, when: dt.datetime) -> None:
        self.db, self.when, self.sent = db, when, []

    def __call__(
        self, person: dict, kind: str, text: str, key: str, card: dict | None = None
    ) -> bool:
        queued = queue_send(
            self.db,
            at=self.when,
            person=person,
            kind=kind,
            text=text,
            key=key,
            now=self.when,
            card=card,
        )
        if queued:
            self.sent.append((person["name"], kind, text, key))
        return bool(queued)

    def to(self, name: str) -> str:
        texts = [text for person, _, text, _ in self.sent if person == name]
        assert len(texts) == 1, (name, self.sent)
        return texts[0]


MEMBERS = ["梁红", "韩冰", "周建国", "吴秀兰", "郑海峰", "孙丽萍"]


def test_prompt_each_member_with_list_and_example(loaded_db: sqlite_utils.Database) -> None:
    sink = Sink(loaded_db, at(8))
    assert jobs.prompt(loaded_db, Config(), sink, at(8), slot="morning") == 6
    assert [person for person, *_ in sink.sent] == MEMBERS
    assert {kind for _, kind, _, _ in sink.sent} == {"prompt"}
    text = sink.to("梁红").splitlines()
    assert text[0] == "【早间联系】3月2日，请联系您负责的 6 位监测对象："
    assert text[1] == "张三、李四、王五、罗娟、林峰、朱丽"
    assert text[-1] == "张三 36.5 正常，李四 36.8"
    # 何平's last day was yesterday: no longer on 韩冰's list; 朱丽 is shared (多对一)
    assert sink.to("韩冰").splitlines()[1] == "高远、宋佳、马晓东、朱丽"
    assert sink.sent[0][3] == f"prompt|person:{ids(loaded_db, 'people')['梁红']}|2026-03-02|morning"


def test_prompt_is_idempotent_and_per_slot(loaded_db: sqlite_utils.Database) -> None:
    sink = Sink(loaded_db, at(8))
    jobs.prompt(loaded_db, Config(), sink, at(8), slot="morning")
    assert jobs.prompt(loaded_db, Config(), sink, at(8, 5), slot="morning") == 0
    assert jobs.prompt(loaded_db, Config(), sink, at(12), slot="noon") == 6
    assert loaded_db["outbox"].count == 12


def test_prompt_single_subject_example(loaded_db: sqlite_utils.Database) -> None:
    loaded_db.execute(
        "DELETE FROM assignments WHERE person_id = ? AND subject_id != ?",
        [ids(loaded_db, "people")["吴秀兰"], ids(loaded_db, "subjects")["唐伟"]],
    )
    sink = Sink(loaded_db, at(8))
    jobs.prompt(loaded_db, Config(), sink, at(8), slot="morning")
    assert sink.to("吴秀兰").splitlines()[-1] == "唐伟 36.5 正常"


def test_prompt_skips_members_without_active_subjects(loaded_db: sqlite_utils.Database) -> None:
    loaded_db.execute("UPDATE subjects SET status = 'hospitalized', released_on = '2026-03-01'")
    assert jobs.prompt(loaded_db, Config(), Sink(loaded_db, at(8)), at(8), slot="morning") == 0


def test_reminder_lists_names_left_and_counts_cover(loaded_db: sqlite_utils.Database) -> None:
    report(loaded_db, ["张三", "李四", "王五", "罗娟"], "morning", at(8, 30), "梁红")
    report(loaded_db, ["朱丽"], "morning", at(8, 40), "韩冰")  # covers for 梁红 too
    report(loaded_db, ["杨桂芳", "徐志强", "胡晓燕", "郭明", "谢婷"], "morning", at(9), "周建国")
    sink = Sink(loaded_db, at(9, 30))
    sent = jobs.reminder(loaded_db, Config(), sink, at(9, 30), slot="morning")
    assert sent == 5  # everyone but 周建国
    assert "周建国" not in [person for person, *_ in sink.sent]
    lines = sink.to("梁红").splitlines()
    assert lines[0] == "【早间提醒】还有 1 位监测对象未报告（10:00 截止）："
    assert lines[1] == "林峰"
    assert lines[2] == "联系后直接回复，例如：林峰 36.5 正常"
    assert sink.to("韩冰").splitlines()[1] == "高远、宋佳、马晓东"
    assert jobs.reminder(loaded_db, Config(), sink, at(9, 31), slot="morning") == 0


def test_reminder_counts_unreachable_as_contacted(loaded_db: sqlite_utils.Database) -> None:
    report(loaded_db, ["高远", "宋佳", "马晓东", "朱丽"], "noon", at(12, 10), "韩冰", "unreachable")
    sink = Sink(loaded_db, at(13, 30))
    jobs.reminder(loaded_db, Config(), sink, at(13, 30), slot="noon")
    assert "韩冰" not in [person for person, *_ in sink.sent]
    assert "朱丽" not in sink.to("梁红")


def test_deadline_one_alert_per_monitor_listing_per_member(
    loaded_db: sqlite_utils.Database,
) -> None:
    everyone = [
        name for name in ids(loaded_db, "subjects") if name not in ("何平", "高远", "林峰", "朱丽")
    ]
    report(loaded_db, everyone, "morning", at(9), "梁红")
    sink = Sink(loaded_db, at(10))
    assert jobs.deadline(loaded_db, Config(), sink, at(10), slot="morning") == 1
    person, kind, text, key = sink.sent[0]
    assert (person, kind) == ("刘敏", "missed_alert")
    assert text.splitlines() == [
        "【早间未报】3月2日 10:00 截止，3 位监测对象未报告：",
        "梁红：林峰、朱丽（共管）",
        "韩冰：高远、朱丽（共管）",
    ]
    assert key == f"missed_alert|person:{ids(loaded_db, 'people')['刘敏']}|2026-03-02|morning"
    assert jobs.deadline(loaded_db, Config(), sink, at(10), slot="morning") == 0


def test_deadline_sends_nothing_when_nothing_missing(loaded_db: sqlite_utils.Database) -> None:
    report(loaded_db, list(ids(loaded_db, "subjects")), "noon", at(12), "梁红")
    assert jobs.deadline(loaded_db, Config(), Sink(loaded_db, at(14)), at(14), slot="noon") == 0


def test_deadline_counts_only_reports_made_by_the_deadline(
    loaded_db: sqlite_utils.Database,
) -> None:
    everyone = [name for name in ids(loaded_db, "subjects") if name != "高远"]
    report(loaded_db, everyone, "morning", at(9), "梁红")
    report(loaded_db, ["高远"], "morning", at(10, 20), "韩冰")  # late; the job runs at 10:25
    sink = Sink(loaded_db, at(10, 25))
    jobs.deadline(loaded_db, Config(), sink, at(10), slot="morning")
    assert sink.to("刘敏").splitlines()[1:] == ["韩冰：高远"]


def _add_second_town(db: sqlite_utils.Database) -> None:
    """Town NZ / village NX with its own monitor, secretary, member and subject."""
    db["units"].insert_all(
        [
            {"code": "NZ", "name": "南镇", "level": "town", "parent": "KC"},
            {"code": "NX", "name": "南溪村", "level": "village", "parent": "NZ"},
            {"code": "NX01", "name": "南溪村第一网格", "level": "grid", "parent": "NX"},
        ]
    )
    people = [
        ("王督查", "monitor", "NZ"),
        ("李书记", "secretary", "NX"),
        ("赵网格", "member", "NX01"),
        ("钱县督", "monitor", "KC"),
    ]
    for name, role, unit in people:
        db["people"].insert({"name": name, "roles": role, "unit": unit, "wechat_id": name})
    subject = (
        db["subjects"]
        .insert(
            {
                "name": "孔明",
                "category": "涉鄂人员",
                "unit": "NX01",
                "start_date": "2026-03-01",
                "days": 14,
            }
        )
        .last_pk
    )
    db["assignments"].insert({"subject_id": subject, "person_id": ids(db, "people")["赵网格"]})


def test_deadline_monitor_sees_only_its_units(loaded_db: sqlite_utils.Database) -> None:
    _add_second_town(loaded_db)
    everyone = [name for name in ids(loaded_db, "subjects") if name not in ("高远", "孔明")]
    report(loaded_db, everyone, "morning", at(9), "梁红")
    sink = Sink(loaded_db, at(10))
    assert jobs.deadline(loaded_db, Config(), sink, at(10), slot="morning") == 3
    assert sink.to("刘敏").splitlines()[1:] == ["韩冰：高远"]
    assert sink.to("王督查").splitlines()[1:] == ["赵网格：孔明"]
    # the county monitor sees both villages, each member tagged with the village
    assert sink.to("钱县督").splitlines()[1:] == ["韩冰（河西村）：高远", "赵网格（南溪村）：孔明"]


def test_digest_to_secretaries_and_rollups(loaded_db: sqlite_utils.Database) -> None:
    _add_second_town(loaded_db)
    sink = Sink(loaded_db, at(10, 30))
    assert jobs.digest(loaded_db, Config(), sink, at(10, 30), report=1) == 5
    sent = {(person, kind) for person, kind, _, _ in sink.sent}
    assert sent == {
        ("陈志刚", "digest"),  # 河西村
        ("李书记", "digest"),  # 南溪村
        ("刘敏", "digest"),  # 城关镇 roll-up
        ("王督查", "digest"),  # 南镇 roll-up
        ("钱县督", "digest"),  # 柯城区 roll-up
    }
    village = sink.to("陈志刚")
    assert village.startswith("【河西村 汇报·第1次】3月2日 10:30")
    assert village.splitlines()[-1].startswith("查看详情：http://127.0.0.1:5000/view/")
    county = sink.to("钱县督").splitlines()
    assert county[0] == "【柯城区 汇总·第1次】3月2日 10:30"
    assert [line for line in county if line.startswith(("河西村：", "南溪村："))] == [
        line for line in county[5:7]
    ]
    keys = {key for *_, key in sink.sent}
    assert f"digest|HX/person:{ids(loaded_db, 'people')['陈志刚']}|2026-03-02|report1" in keys
    assert jobs.digest(loaded_db, Config(), sink, at(10, 30), report=1) == 0
    assert jobs.digest(loaded_db, Config(), sink, at(20, 30), report=2) == 5


def test_digest_skips_a_village_with_nothing_to_report(loaded_db: sqlite_utils.Database) -> None:
    _add_second_town(loaded_db)
    loaded_db.execute("DELETE FROM subjects WHERE name = '孔明'")
    sink = Sink(loaded_db, at(10, 30))
    jobs.digest(loaded_db, Config(), sink, at(10, 30), report=1)
    assert "李书记" not in [person for person, *_ in sink.sent]


def test_release_records_and_notifies(loaded_db: sqlite_utils.Database) -> None:
    sink = Sink(loaded_db, at(0, 5))
    assert jobs.release(loaded_db, Config(), sink, at(0, 5)) == 2
    he_ping = loaded_db["subjects"].get(ids(loaded_db, "subjects")["何平"])
    assert (he_ping["status"], he_ping["released_on"]) == ("released", "2026-03-02")
    audit = list(loaded_db.query("SELECT * FROM audit WHERE action = 'release'"))
    assert len(audit) == 1
    assert json.loads(audit[0]["after"]) == {"status": "released", "released_on": "2026-03-02"}
    assert sorted(person for person, *_ in sink.sent) == ["陈志刚", "韩冰"]
    assert sink.to("韩冰").splitlines() == [
        "【期满解除】以下 1 位监测对象监测期满，3月2日起解除居家监测，无需再每日联系：",
        "何平（河西村，2月16日—3月1日）",
    ]
    assert jobs.release(loaded_db, Config(), sink, at(0, 6)) == 0
    assert len(list(loaded_db.query("SELECT * FROM audit WHERE action = 'release'"))) == 1


def test_a_subject_added_late_is_released_and_announced_by_a_later_run(
    loaded_db: sqlite_utils.Database,
) -> None:
    """何平 is announced on 3/2; 赵敏, imported afterwards with the same last day (3/1),
    is released by the 3/3 run and 韩冰 is still told (the notice is keyed on the run)."""
    assert jobs.release(loaded_db, Config(), Sink(loaded_db, at(0, 5)), at(0, 5)) == 2
    subject = (
        loaded_db["subjects"]
        .insert(
            {
                "name": "赵敏",
                "category": "外地返回人员",
                "unit": "HX01",
                "start_date": "2026-02-16",
                "days": 14,
            }
        )
        .last_pk
    )
    loaded_db["assignments"].insert(
        {"subject_id": subject, "person_id": ids(loaded_db, "people")["韩冰"], "position": 0}
    )
    later = at(0, 5, dt.date(2026, 3, 3))
    sink = Sink(loaded_db, later)
    assert jobs.release(loaded_db, Config(), sink, later) == 2
    assert sorted(person for person, *_ in sink.sent) == ["陈志刚", "韩冰"]
    assert all("赵敏" in text for _, _, text, _ in sink.sent)


def test_release_catches_up_every_ended_period(loaded_db: sqlite_utils.Database) -> None:
    # ten days late: 何平 (last day 3/1), 杨桂芳 and 袁浩 (3/7), 高远 and 唐伟 and 彭涛 (3/8)
    when = at(0, 5, dt.date(2026, 3, 9))
    sink = Sink(loaded_db, when)
    jobs.release(loaded_db, Config(), sink, when)
    released = {
        row["name"]: row["released_on"]
        for row in loaded_db.query("SELECT * FROM subjects WHERE status = 'released'")
    }
    assert released == {
        "何平": "2026-03-02",
        "杨桂芳": "2026-03-08",
        "袁浩": "2026-03-08",
        "高远": "2026-03-09",
        "唐伟": "2026-03-09",
        "彭涛": "2026-03-09",
    }
    # one message per recipient for the whole catch-up, grouped by release date
    [secretary] = [text for person, _, text, _ in sink.sent if person == "陈志刚"]
    lines = secretary.splitlines()
    assert lines[0] == "【期满解除】以下 6 位监测对象监测期满，已解除居家监测，无需再每日联系："
    headings = [line for line in lines if line.endswith("起解除：")]
    assert headings == ["3月2日起解除：", "3月8日起解除：", "3月9日起解除："]
    assert lines.index("3月9日起解除：") < lines.index(next(x for x in lines if "彭涛" in x))
    assert len({person for person, *_ in sink.sent}) == len(sink.sent)
    assert jobs.release(loaded_db, Config(), sink, when) == 0


def test_release_leaves_subjects_whose_last_day_is_today(loaded_db: sqlite_utils.Database) -> None:
    when = at(0, 5, dt.date(2026, 3, 7))  # 杨桂芳 and 袁浩: last day 3/7
    jobs.release(loaded_db, Config(), Sink(loaded_db, when), when)
    statuses = {
        row["name"]: row["status"]
        for row in loaded_db.query("SELECT * FROM subjects WHERE name IN ('杨桂芳', '袁浩')")
    }
    assert statuses == {"杨桂芳": "active", "袁浩": "active"}


@pytest.mark.parametrize(
    ("names", "expected"),
    [(["张三"], "张三 36.5 正常"), (["张三", "李四", "王五"], "张三 36.5 正常，李四 36.8")],
)
def test_example_reply(names: list[str], expected: str) -> None:
    assert jobs.example_reply(names) == expected
