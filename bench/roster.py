"""Budget: a county roster import (DESIGN §6, §9) while WeChat callbacks keep coming.

bench/county.py's county (500 villages, 10,000 people, 50,000 subjects) is written as a
roster folder of CSVs and imported by the real command, `gridwatch roster import`, into a
database that already holds the demo village (examples/demo_roster). Meanwhile gunicorn
(`gunicorn -w 2 'bot:create_app()'`, WeCom mode) serves that village's members, who post
encrypted reports the whole time; each answer is timed. Passes when the import takes
< 30 s and every callback is answered (200) within WeChat's 5 s and stored.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.county import GIVEN, make_county
from bench.harness import (
    DAY,
    ROOT,
    TZ,
    Answer,
    encrypted_post,
    exactly_once,
    gunicorn,
    percentile,
    send,
    server_env,
    wait_until_stored,
)
from storage.db import open_db
from storage.roster import LEVEL_CN, ROLE_CN
from storage.roster_file import COLUMNS

VILLAGES = 500
SUBJECTS = 50_000
MEMBERS_PER_VILLAGE = 20  # 500 × (20 members, a secretary, a medic) + 25 town monitors
IMPORT_BUDGET = 30.0  # seconds
REPLY_LIMIT = 5.0  # seconds: WeChat's
CALLBACKS_PER_SECOND = 20
DEMO = ROOT / "examples" / "demo_roster"


def write_county_roster(
    folder: Path, *, villages: int = VILLAGES, subjects: int = SUBJECTS, seed: int = 2020
) -> dict[str, int]:
    """bench/county.py's county as a roster folder (units.csv, people.csv, subjects.csv,
    Chinese headers, members by phone); returns the row count of each sheet."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        db = open_db(Path(scratch) / "county.db")
        try:
            make_county(
                db,
                day=DAY,
                tz=TZ,
                villages=villages,
                subjects=subjects,
                contacts=0,
                members_per_village=MEMBERS_PER_VILLAGE,
                seed=seed,
            )
            units = [
                (r[0], r[1], LEVEL_CN[r[2]], r[3] or "")
                for r in db.execute("SELECT code, name, level, parent FROM units ORDER BY rowid")
            ]
            people = [
                (name, phone, wechat_id, "、".join(ROLE_CN[r] for r in roles.split(",")), unit)
                for name, phone, wechat_id, roles, unit in db.execute(
                    "SELECT name, phone, wechat_id, roles, unit FROM people ORDER BY id"
                )
            ]
            members: dict[int, list[str]] = {}
            for subject_id, phone in db.execute(
                "SELECT a.subject_id, p.phone FROM assignments a JOIN people p"
                " ON p.id = a.person_id ORDER BY a.subject_id, a.position"
            ):
                members.setdefault(subject_id, []).append(phone)
            subject_rows = [
                (*row[1:], "、".join(members[row[0]]))
                for row in db.execute(
                    "SELECT id, name, phone, category, address, unit, start_date, days"
                    " FROM subjects ORDER BY id"
                )
            ]
        finally:
            db.close()
    people = _unique_names(people, unit=4)
    subject_rows = _unique_names(subject_rows, unit=4)
    for sheet, rows in (("units", units), ("people", people), ("subjects", subject_rows)):
        header = [chinese for _, chinese in COLUMNS[sheet].values()]
        with open(folder / f"{sheet}.csv", "w", encoding="utf-8", newline="") as file:
            csv.writer(file).writerows([header, *rows])
    return {"units": len(units), "people": len(people), "subjects": len(subject_rows)}


def _unique_names(rows: list[tuple], unit: int) -> list[tuple]:
    """Namesakes within one unit need telling apart in a roster (the importer refuses them):
    the later one gets one more given-name character, as a clerk would write it."""
    seen: set[tuple[str, str]] = set()
    out = []
    for row in rows:
        name = row[0]
        for extra in itertools.chain([""], GIVEN):
            if (name + extra, row[unit]) not in seen:
                name += extra
                break
        seen.add((name, row[unit]))
        out.append((name, *row[1:]))
    return out


def _demo_members() -> list[tuple[str, list[str]]]:
    """The demo village's members (wechat_id) and their subjects' names."""
    with open(DEMO / "people.csv", encoding="utf-8-sig", newline="") as file:
        people = [row for row in csv.DictReader(file) if "网格员" in row["角色"]]
    with open(DEMO / "subjects.csv", encoding="utf-8-sig", newline="") as file:
        subjects = list(csv.DictReader(file))
    return [
        (p["微信号"], [s["姓名"] for s in subjects if p["姓名"] in s["网格员"]]) for p in people
    ]


class _Caller(threading.Thread):
    """Posts the demo members' reports at a steady pace until stopped; keeps every answer."""

    def __init__(self, url: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.pause = url, 1 / rate
        self.answers: list[Answer] = []
        self.msg_ids: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        members = _demo_members()
        created = int(dt.datetime.combine(DAY, dt.time(8, 30), tzinfo=TZ).timestamp())
        lock = threading.Lock()
        threads: list[threading.Thread] = []
        for number in itertools.count():
            if self.done.is_set():
                break
            member, names = members[number % len(members)]
            name = names[(number // len(members)) % len(names)]
            msg_id = 8_000_000_000 + number
            post = encrypted_post(member, f"{name} 36.{number % 9 + 1}", msg_id, created + number)

            def call(post=post, msg_id=msg_id) -> None:
                answer = send(self.url, post)
                with lock:
                    self.answers.append(answer)
                    self.msg_ids.add(msg_id)

            thread = threading.Thread(target=call, daemon=True)
            thread.start()
            threads.append(thread)
            time.sleep(self.pause)
        for thread in threads:
            thread.join()


def _gridwatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("gridwatch")), *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)


def timed_import(folder: Path, db_path: Path) -> float:
    """`gridwatch roster import FOLDER` on its own (no server): seconds."""
    env = server_env(db_path) | {"GRIDWATCH_CHANNEL": "console"}
    started = time.perf_counter()
    done = _gridwatch("roster", "import", str(folder), env=env)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return time.perf_counter() - started


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"… a county roster of {SUBJECTS:,} subjects as CSV", file=sys.stderr)
        counts = write_county_roster(work / "county")
        db_path = work / "roster.db"
        env = server_env(db_path)
        for args in (("init",), ("roster", "import", str(DEMO))):
            done = _gridwatch(*args, env=env | {"GRIDWATCH_CHANNEL": "console"})
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
        with gunicorn("bot:create_app()", env) as (url, _):
            caller = _Caller(url, CALLBACKS_PER_SECOND)
            caller.start()
            time.sleep(1)  # callbacks before the import, as well as during it
            print("… gridwatch roster import, callbacks meanwhile", file=sys.stderr)
            started = time.perf_counter()
            done = _gridwatch(
                "roster", "import", str(work / "county"), env=env | {"GRIDWATCH_CHANNEL": "console"}
            )
            seconds = time.perf_counter() - started
            time.sleep(1)
            caller.done.set()
            caller.join()
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            wait_until_stored(db_path, len(caller.msg_ids))
        problems = exactly_once(db_path, caller.msg_ids)
        print("… the same file again (nothing changes)", file=sys.stderr)
        again = timed_import(work / "county", db_path)
    answers = caller.answers
    slowest = max(a.seconds for a in answers)
    p50, p99 = (percentile([a.seconds * 1000 for a in answers], share) for share in (50, 99))
    bad = sum(1 for a in answers if a.status != 200)
    stored_ok = not any(problems.values())
    print(
        f"  import of {counts['units']} units, {counts['people']:,} people, "
        f"{counts['subjects']:,} subjects: {seconds:.1f} s; re-import {again:.1f} s;"
        f" {len(answers)} callbacks meanwhile: p50 {p50:.0f} ms, p99 {p99:.0f} ms, slowest"
        f" {slowest * 1000:.0f} ms, {bad} not 200;"
        f" stored: {problems}",
        file=sys.stderr,
    )
    return [
        {
            "name": f"roster import: {SUBJECTS:,} subjects, {VILLAGES} villages (gridwatch roster"
            " import of CSVs)",
            "budget": f"< {IMPORT_BUDGET:g} s",
            "measured": round(seconds, 2),
            "unit": "s",
            "pass": seconds < IMPORT_BUDGET,
        },
        {
            "name": f"callbacks during the roster import ({CALLBACKS_PER_SECOND}/s, gunicorn -w 2),"
            " slowest answer",
            "budget": f"every reply < {REPLY_LIMIT * 1000:.0f} ms, stored",
            "measured": round(slowest * 1000, 1),
            "unit": "ms max",
            "pass": slowest < REPLY_LIMIT and bad == 0 and stored_ok,
        },
    ]


if __name__ == "__main__":
    for result in run():
        print(result)
