"""The temperature chart: well-formed SVG, the fever line, one mark per contact."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from bot.web.svg_chart import PHONE, WIDE, Point, Size, points_from_contacts, temperature_chart

SVG = "{http://www.w3.org/2000/svg}"
START, END = dt.date(2026, 3, 1), dt.date(2026, 3, 14)


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def test_fever_line_sits_at_the_threshold() -> None:
    low = parse(temperature_chart([Point(START, "morning", 35.6, "normal")], START, END))
    high = parse(
        temperature_chart([Point(START, "morning", 35.6, "normal")], START, END, threshold=38.0)
    )

    def line_y(root: ET.Element) -> float:
        line = root.find(f".//{SVG}line[@class='fever-line']")
        assert line is not None
        return float(line.get("y1"))

    assert line_y(high) < line_y(low)  # a higher threshold is drawn higher up
    assert "发热线 37.3℃" in ET.tostring(low, encoding="unicode")


def test_one_mark_per_contact_with_a_readable_title() -> None:
    points = [
        Point(START, "morning", 36.5, "normal"),
        Point(START, "noon", 38.2, "abnormal", "发热、咳嗽"),
        Point(START, "evening", None, "unreachable"),
        Point(START + dt.timedelta(days=1), "morning", None, "absent"),
    ]
    root = parse(temperature_chart(points, START, END))
    groups = root.findall(f".//{SVG}g")
    assert [g.get("class") for g in groups] == [
        "pt pt-normal",
        "pt pt-abnormal",
        "pt pt-unreachable",
        "pt pt-absent",
    ]
    titles = [g.find(f"{SVG}title").text for g in groups]
    assert titles[1] == "3月1日中 38.2℃ 异常（发热、咳嗽）"
    assert titles[2] == "3月1日晚 联系不上"
    assert root.find(f".//{SVG}polyline") is not None
    assert len(root.findall(f".//{SVG}circle[@fill='#d32f2f']")) == 2  # the point + legend


def test_days_are_labelled_and_today_stands_out() -> None:
    root = parse(temperature_chart([], START, END, today=dt.date(2026, 3, 5)))
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "3/1" in labels and "3/14" in labels and "暂无体温记录" in labels
    bold = [t.text for t in root.iter(f"{SVG}text") if t.get("font-weight") == "700"]
    assert bold == ["3/5"]


def test_long_periods_label_fewer_days_and_extremes_stay_inside() -> None:
    end = START + dt.timedelta(days=27)
    points = [Point(START, "morning", 42.5, "abnormal"), Point(end, "evening", 34.0, "normal")]
    root = parse(temperature_chart(points, START, end))
    days = [t.text for t in root.iter(f"{SVG}text") if t.text and "/" in t.text]
    assert len(days) == 14
    for circle in root.findall(f".//{SVG}g/{SVG}circle"):
        assert 0 < float(circle.get("cy")) < 260


def test_points_outside_the_period_are_left_out() -> None:
    root = parse(
        temperature_chart([Point(END + dt.timedelta(days=1), "noon", 36.5, "normal")], START, END)
    )
    assert root.findall(f".//{SVG}g") == []


def test_points_from_contacts() -> None:
    rows = [
        {
            "date": "2026-03-02",
            "slot": "noon",
            "temperature": 36.7,
            "status": "normal",
            "symptoms": "",
        }
    ]
    assert points_from_contacts(rows) == [Point(dt.date(2026, 3, 2), "noon", 36.7, "normal", "")]


@pytest.mark.parametrize("size", [WIDE, PHONE], ids=["wide", "phone"])
@pytest.mark.parametrize("days", [1, 14, 28, 60])
def test_every_label_fits_and_day_labels_do_not_touch(size: Size, days: int) -> None:
    end = START + dt.timedelta(days=days - 1)
    root = parse(temperature_chart([Point(START, "noon", 36.6, "normal")], START, end, size=size))
    assert root.get("class") == f"chart chart-{size.name}"
    width, height = (float(v) for v in root.get("viewBox").split()[2:])
    assert width == size.width
    texts = list(root.iter(f"{SVG}text"))
    for text in texts:
        assert float(text.get("font-size")) >= size.font
        assert 0 <= float(text.get("x")) <= width and 0 < float(text.get("y")) <= height
    days_x = [float(t.get("x")) for t in texts if "/" in (t.text or "")]
    gaps = [b - a for a, b in zip(days_x, days_x[1:], strict=False)]
    assert all(gap >= 3 * size.font for gap in gaps), gaps
    legend = [t for t in texts if t.text in ("正常", "异常", "联系不上", "外出", "▲ 无体温的记录")]
    assert len(legend) == 5
