"""A subject's temperature over the monitoring period as inline SVG (no JavaScript needed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from handlers.dates import day_label

SLOTS = ("morning", "noon", "evening")
SLOT_CN = {"morning": "早", "noon": "中", "evening": "晚"}
STATUS_CN = {"normal": "正常", "abnormal": "异常", "unreachable": "联系不上", "absent": "外出"}
COLOURS = {
    "normal": "#2e7d32",
    "abnormal": "#d32f2f",
    "unreachable": "#ef6c00",
    "absent": "#7b1fa2",
}
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 46, 14, 14, 52


@dataclass(frozen=True)
class Point:
    day: dt.date
    slot: str
    temperature: float | None
    status: str
    symptoms: str = ""


def points_from_contacts(contacts: Sequence[dict]) -> list[Point]:
    """Rows of `subject_history` (date, slot, temperature, status, symptoms) as points."""
    return [
        Point(
            dt.date.fromisoformat(row["date"]),
            row["slot"],
            row["temperature"],
            row["status"],
            row.get("symptoms") or "",
        )
        for row in contacts
    ]


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def temperature_chart(
    points: Sequence[Point],
    start: dt.date,
    end: dt.date,
    *,
    threshold: float = 37.3,
    today: dt.date | None = None,
) -> Markup:
    """An SVG line chart: three slots a day from `start` to `end`, the fever line dashed red."""
    days = max((end - start).days + 1, 1)
    temps = [p.temperature for p in points if p.temperature is not None]
    low = min([35.5, *(t - 0.3 for t in temps)])
    high = max([38.5, threshold + 0.7, *(t + 0.3 for t in temps)])
    low, high = max(low, 33.5), min(high, 43.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / (days * 3)

    def x(day: dt.date, slot: str) -> float:
        return LEFT + ((day - start).days * 3 + SLOTS.index(slot) + 0.5) * step

    def y(value: float) -> float:
        return TOP + (high - min(max(value, low), high)) / (high - low) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="体温曲线 {start} 至 {end}">',
        f"<title>体温曲线（{day_label(start)}—{day_label(end)}）</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{y(threshold) - TOP:.1f}" '
        'fill="#fdecec"/>',
    ]
    # day bands and labels; label every day while they fit, else every other one
    every = 1 if days <= 16 else 2 if days <= 32 else 7
    for index in range(days):
        day = start + dt.timedelta(days=index)
        left = LEFT + index * 3 * step
        if index % 2:
            parts.append(
                f'<rect x="{left:.1f}" y="{TOP}" width="{3 * step:.1f}" height="{plot_h}" '
                'fill="#000" fill-opacity="0.025"/>'
            )
        if day == today:
            parts.append(
                f'<rect x="{left:.1f}" y="{TOP}" width="{3 * step:.1f}" height="{plot_h}" '
                'fill="#1e88e5" fill-opacity="0.07"/>'
            )
        if index % every == 0:
            weight = ' font-weight="700"' if day == today else ""
            parts.append(
                f'<text x="{left + 1.5 * step:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle" font-size="11" fill="#555"{weight}>'
                f"{day.month}/{day.day}</text>"
            )
    # horizontal grid every half degree
    value = round(low * 2) / 2
    while value <= high:
        if value >= low:
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                'stroke="#e3e6e8" stroke-width="1"/>'
                f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11" '
                f'fill="#666">{_fmt(value)}</text>'
            )
        value += 0.5
    parts.append(
        f'<line class="fever-line" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(threshold):.1f}" '
        f'y2="{y(threshold):.1f}" stroke="#d32f2f" stroke-width="1.5" stroke-dasharray="6 4"/>'
        f'<text x="{WIDTH - RIGHT - 4}" y="{y(threshold) - 5:.1f}" text-anchor="end" '
        f'font-size="12" fill="#d32f2f">发热线 {_fmt(threshold)}℃</text>'
    )
    measured = sorted(
        (p.day, SLOTS.index(p.slot), p.slot, p.temperature)
        for p in points
        if p.temperature is not None and start <= p.day <= end
    )
    if len(measured) > 1:
        path = " ".join(f"{x(day, slot):.1f},{y(t):.1f}" for day, _, slot, t in measured)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="#607d8b" stroke-width="1.6" '
            'stroke-linejoin="round"/>'
        )
    for point in sorted(points, key=lambda p: (p.day, SLOTS.index(p.slot))):
        if not start <= point.day <= end:
            continue
        colour = COLOURS.get(point.status, "#555")
        label = f"{day_label(point.day)}{SLOT_CN[point.slot]} "
        if point.temperature is not None:
            label += f"{point.temperature:.1f}℃ "
        label += STATUS_CN.get(point.status, point.status)
        if point.symptoms:
            label += f"（{point.symptoms}）"
        cx = x(point.day, point.slot)
        if point.temperature is not None:
            radius = 5 if point.temperature >= threshold or point.status == "abnormal" else 3.6
            shape = (
                f'<circle cx="{cx:.1f}" cy="{y(point.temperature):.1f}" r="{radius}" '
                f'fill="{colour}" stroke="#fff" stroke-width="1.2"/>'
            )
        else:  # no temperature: a mark on the baseline (unreachable, absent, plain 正常)
            base = TOP + plot_h - 6
            shape = (
                f'<path d="M{cx - 5:.1f},{base + 4:.1f} L{cx:.1f},{base - 5:.1f} '
                f'L{cx + 5:.1f},{base + 4:.1f} Z" fill="{colour}"/>'
            )
        parts.append(f'<g class="pt pt-{escape(point.status)}"><title>{escape(label)}</title>')
        parts.append(shape + "</g>")
    if not measured:
        parts.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
            'font-size="14" fill="#888">暂无体温记录</text>'
        )
    # legend under the day labels
    legend_y = HEIGHT - 12
    legend_x = LEFT
    for status in ("normal", "abnormal", "unreachable", "absent"):
        parts.append(
            f'<circle cx="{legend_x + 5}" cy="{legend_y - 4}" r="4.5" fill="{COLOURS[status]}"/>'
            f'<text x="{legend_x + 14}" y="{legend_y}" font-size="11" fill="#555">'
            f"{STATUS_CN[status]}</text>"
        )
        legend_x += 78
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{legend_y}" text-anchor="end" font-size="11" fill="#888">'
        "▲ 无体温的记录</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))
