"""End to end in headless Chromium: a member reports in /sim, the clock runs to the digest,
the secretary opens the digest's link, sees the abnormal row in red and downloads the Excel.

Needs Debian's chromium at /usr/bin/chromium (`make browser` installs it); Playwright only
drives it, it never downloads a browser. With GRIDWATCH_SCREENSHOTS=docs the screenshots of
the README are written to docs/ (phone 390×844 for /sim, desktop 1280×900 for the view).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
RED_CELL = "rgb(253, 212, 212)"  # --abnormal in gridwatch.css
# read at import: the autouse isolated_env fixture clears GRIDWATCH_* before each test
SCREENSHOTS = os.environ.get("GRIDWATCH_SCREENSHOTS", "")

if not CHROMIUM.exists():
    _reason = (
        "BROWSER TESTS SKIPPED: no Chromium at /usr/bin/chromium. Install it with `make browser`"
        " (as root: apt-get install -y chromium chromium-driver fonts-wqy-microhei)"
    )
    if os.environ.get("CI") == "true":  # under CI a missing tool is a failure, not a skip
        raise RuntimeError(_reason.replace("SKIPPED", "FAILED (CI=true)"))
    pytest.skip(_reason, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gridwatch_command() -> list[str]:
    script = Path(sys.executable).with_name("gridwatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from bot.cli.main import cli; cli()"]


def shots_dir() -> Path | None:
    if not SCREENSHOTS:
        return None
    path = Path(SCREENSHOTS) if Path(SCREENSHOTS).is_absolute() else ROOT / SCREENSHOTS
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`gridwatch demo` on a free port, its clock at 09:05 today, the live scheduler off."""
    port = free_port()
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    log = open(tmp_path / "server.log", "w", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(
        [
            *gridwatch_command(),
            "demo",
            "--db",
            str(tmp_path / "demo.db"),
            "--port",
            str(port),
            "--at",
            f"{today.isoformat()}T09:05",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        else:  # pragma: no cover
            pytest.fail("the demo server did not start")
        if process.poll() is not None:
            log.close()
            pytest.fail("the demo server exited:\n" + (tmp_path / "server.log").read_text())
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
        log.close()


@pytest.fixture
def browser() -> Iterator[object]:
    """A persistent Chromium context in a fresh profile: no network chatter, no downloads."""
    with sync_api.sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=PHONE,
            accept_downloads=True,
            locale="zh-CN",
        )
        try:
            yield context
        finally:
            context.close()


def advance(page: object) -> dict:
    """Click "next event" and return the clock's answer."""
    with page.expect_response(  # type: ignore[attr-defined]
        lambda r: r.url.endswith("/sim/api/clock") and r.request.method == "POST"
    ) as answer:
        page.click("#next-event")  # type: ignore[attr-defined]
    return answer.value.json()


def test_report_digest_view_and_excel(server: str, browser: object, tmp_path: Path) -> None:
    shots = shots_dir()
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_viewport_size(PHONE)

    # a member reports through the chat simulator, at phone width
    page.goto(f"{server}/sim")
    page.click('.person:has-text("梁红")')
    page.wait_for_selector(".msg.kind-prompt")
    assert "网格员" in page.inner_text("#chat-sub")
    assert "****" in page.inner_text("#chat-sub")  # the phone number is masked
    page.fill("#text", "张三 38.6 咳嗽\n李四 36.5\n王五 36.8 正常")
    page.click("#send")
    reply = page.wait_for_selector('.msg.bot.kind-reply:has-text("38.6℃")')
    assert "张三" in reply.inner_text()
    assert "已通知" in reply.inner_text()

    # the clock runs forward: reminder, deadline, then the 10:30 digest (the fever alert,
    # unacknowledged, escalates on the way: not one of the day's jobs)
    ran: list[str] = []
    for _ in range(4):
        ran += [
            run["job"]
            for run in advance(page)["ran"]
            if run["outcome"] == "ran" and run["job"] != "escalate"
        ]
        if "digest:1" in ran:
            break
    assert ran[:3] == ["reminder:morning", "deadline:morning", "digest:1"]
    page.wait_for_selector('.msg.kind-reminder:has-text("罗娟")')
    if shots:
        page.screenshot(path=str(shots / "sim.png"))

    # the secretary's chat has the alert and the digest with its link
    page.click("#back")
    page.click('.person:has-text("陈志刚")')
    page.wait_for_selector('.msg.kind-abnormal_alert:has-text("张三")')
    digest = page.locator(".msg.kind-digest").last
    assert "第1次" in digest.inner_text()
    link = digest.locator(".msg-link").get_attribute("href")
    assert link and link.startswith(f"{server}/view/")
    if shots:
        page.screenshot(path=str(shots / "sim-secretary.png"))

    # the secretary view, at desktop width: the abnormal row is red
    desk = browser.new_page()  # type: ignore[attr-defined]
    desk.set_viewport_size(DESKTOP)
    desk.goto(link)
    assert "河西村" in desk.inner_text("h1")
    row = desk.locator('#day-table tr:has(td.name a:text-is("张三"))')
    assert "row-abnormal" in (row.get_attribute("class") or "")
    cell = row.locator('td[data-slot="morning"]')
    assert cell.get_attribute("data-status") == "abnormal"
    assert "38.6" in cell.inner_text()
    assert cell.evaluate("el => getComputedStyle(el).backgroundColor") == RED_CELL
    body = desk.inner_text("body")
    assert "13900000101" not in body and "139****0101" in body
    if shots:
        desk.screenshot(path=str(shots / "view.png"))

    # the Excel ledger of the day
    with desk.expect_download() as download:
        desk.click("#download")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(".xlsx") and "河西村" in saved.name
    sheet = openpyxl.load_workbook(saved).active
    headers = [c.value for c in sheet[1]]
    assert headers[:4] == ["日期", "时段", "单位", "监测对象"]
    assert sheet.freeze_panes == "A2"
    records = [dict(zip(headers, (c.value for c in r), strict=True)) for r in sheet.iter_rows(2)]
    zhang = [r for r in records if r["监测对象"] == "张三" and r["时段"] == "早"]
    assert len(zhang) == 1
    assert zhang[0]["状态"] == "异常" and zhang[0]["体温"] == 38.6
    assert "咳嗽" in zhang[0]["症状"]
    assert sheet.column_dimensions["D"].width >= 6

    # one person's file with the temperature chart and its fever line
    desk.click('#day-table td.name a:text-is("张三")')
    desk.wait_for_selector("svg.chart .fever-line", state="attached")
    assert "38.6℃" in desk.inner_text("#history")
    if shots:
        desk.screenshot(path=str(shots / "subject.png"), full_page=True)

    # a tampered link gets a clear page, not a trace
    response = desk.goto(link[:-3] + "abc")
    assert response is not None and response.status == 403
    assert "链接" in desk.inner_text("body")
    assert "Traceback" not in desk.content()


# the rendered size of each of the chart's labels (CSS px): font size times the SVG's scale
LABEL_SIZES = """svg => {
  const scale = svg.getScreenCTM().a;
  return [...svg.querySelectorAll('text')].map(t => ({
    text: t.textContent,
    px: parseFloat(getComputedStyle(t).fontSize) * scale,
    height: t.getBoundingClientRect().height,
  }));
}"""


@pytest.mark.parametrize(
    ("viewport", "shown", "least"),
    [(PHONE, "phone", 11), (DESKTOP, "wide", 10)],
    ids=["phone", "desktop"],
)
def test_chart_labels_are_readable(
    server: str, browser: object, tmp_path: Path, viewport: dict, shown: str, least: float
) -> None:
    """A person's temperature chart at phone width: every label renders at ≥ 11 CSS px."""
    view = next(
        line.split(": ", 1)[1]
        for line in (tmp_path / "server.log").read_text(encoding="utf-8").splitlines()
        if line.startswith("secretary view: ")
    )
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_viewport_size(viewport)
    page.goto(view)
    page.click('#day-table td.name a:text-is("张三")')
    chart = page.locator(f"svg.chart-{shown}")
    chart.wait_for(state="visible")
    hidden = "wide" if shown == "phone" else "phone"
    assert not page.locator(f"svg.chart-{hidden}").is_visible()
    labels = chart.evaluate(LABEL_SIZES)
    texts = [label["text"] for label in labels]
    assert "37.5" in texts and any("/" in t for t in texts) and "正常" in texts
    small = [label for label in labels if label["px"] < least or label["height"] < least]
    assert small == [], small
    box = chart.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]


# a tap per subject, in turn: (button, temperature, symptoms, the cell's status after)
TAPS = [
    ("normal", "36.6", [], "normal"),
    ("symptoms", "37.8", ["咳嗽"], "abnormal"),
    ("unreachable", "", [], "unreachable"),
    ("absent", "", [], "absent"),
]


def test_member_reports_every_subject_from_the_page(
    server: str, browser: object, tmp_path: Path
) -> None:
    """The link in 梁红's morning prompt opens her page at phone width; she reports each of
    her subjects by tapping, and each tap is a chat report: inbox, contacts, reply."""
    import re
    import sqlite3

    demo = sqlite3.connect(tmp_path / "demo.db")
    prompt = demo.execute(
        "SELECT text FROM outbox WHERE kind = 'prompt' AND recipient = 'lianghong'"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()[0]
    link = re.search(r"逐人填报：(\S+)", prompt)[1]  # type: ignore[index]
    assert link.startswith(f"{server}/me/")
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_viewport_size(PHONE)
    page.goto(link)
    assert "消息全文" in page.inner_text("body")
    assert prompt.splitlines()[0] in page.inner_text("#message")
    names = page.locator("section.subject").evaluate_all("els => els.map(e => e.dataset.subject)")
    assert len(names) >= 3
    before = demo.execute("SELECT max(id) FROM inbox").fetchone()[0] or 0
    shots = shots_dir()
    for n, name in enumerate(names):
        choice, temperature, symptoms, status = TAPS[n % len(TAPS)]
        section = page.locator(f'section.subject[data-subject="{name}"]')
        if temperature:
            section.locator('input[name="temperature"]').fill(temperature)
        if symptoms:
            section.locator(".symptoms summary").click()
            for symptom in symptoms:
                section.locator(f'input[value="{symptom}"]').check()
        with page.expect_navigation():
            section.locator(f"button.choice-{choice}").click()
        assert name in page.inner_text("#reply")
        cell = page.locator(f'section.subject[data-subject="{name}"] .slot[data-slot="morning"]')
        assert cell.get_attribute("data-status") == status
        if n == 1 and shots:
            page.screenshot(path=str(shots / "member.png"), full_page=True)
    # phone-sized: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    rows = demo.execute(
        "SELECT channel, sender, text, reply, outcome FROM inbox WHERE id > ? ORDER BY id",
        [before],
    ).fetchall()
    assert [r[:2] for r in rows] == [("web", "lianghong")] * len(names)
    assert [r[2].split()[0] for r in rows] == names
    assert all(r[3].startswith("已记录") and r[4] == "ok" for r in rows), rows
    for n, name in enumerate(names):
        recorded = demo.execute(
            "SELECT c.status FROM contacts c JOIN subjects s ON s.id = c.subject_id"
            " WHERE s.name = ? AND c.slot = 'morning' AND c.current = 1"
            " ORDER BY c.id DESC LIMIT 1",
            [name],
        ).fetchone()[0]
        assert recorded == TAPS[n % len(TAPS)][3]
    replies = demo.execute(
        "SELECT status FROM outbox WHERE kind = 'reply' AND inbox_id > ?", [before]
    ).fetchall()
    assert replies == [("sent",)] * len(names)
    demo.close()


def test_weekly_pack_page_on_a_phone(browser: object, tmp_path: Path) -> None:
    """The Monday pack's link on a phone: members, flags and one readable chart per member,
    nothing wider than the screen."""
    import sqlite_utils

    from bot.config import Config
    from bot.web.sim import set_sim_now
    from storage.db import open_db
    from storage.roster import import_roster
    from tests.conftest import DEMO_ROSTER, NOW
    from tests.test_review import NEXT_MONDAY, at, play_week

    path = tmp_path / "week.db"
    db = open_db(path)
    import_roster(db, DEMO_ROSTER, now=NOW, categories=Config().categories, period=14)
    play_week(db)
    set_sim_now(db, Config(), at(NEXT_MONDAY, "10:00"))
    db.close()
    port = free_port()
    log = open(tmp_path / "serve.log", "w", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(
        [*gridwatch_command(), "serve", "--db", str(path), "--port", str(port), "--no-scheduler"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "GRIDWATCH_PUBLIC_URL": f"http://127.0.0.1:{port}"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        reader = sqlite_utils.Database(path)
        text = reader.execute(
            "SELECT text FROM outbox WHERE kind = 'review' AND person = '陈志刚'"
            " AND send_key LIKE '%|2026-03-02|week'"
        ).fetchone()[0]
        reader.close()
        link = base + text.rsplit("查看详情：", 1)[1].strip().split("127.0.0.1:5000", 1)[1]
        page = browser.new_page()  # type: ignore[attr-defined]
        page.set_viewport_size(PHONE)
        page.goto(link)
        assert "每周会商" in page.inner_text("h1")
        assert "梁红" in page.inner_text("#members") and "韩冰" in page.inner_text("#flags")
        charts = page.locator("#charts svg.chart-phone")
        assert charts.count() == 6
        charts.first.wait_for(state="visible")
        assert not page.locator("#charts svg.chart-wide").first.is_visible()
        labels = charts.first.evaluate(LABEL_SIZES)
        assert "100%" in [label["text"] for label in labels]
        small = [label for label in labels if label["px"] < 11]
        assert small == [], small
        for index in range(charts.count()):
            box = charts.nth(index).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        if shots := shots_dir():
            page.screenshot(path=str(shots / "review.png"), full_page=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
        log.close()
