"""A subject's temperature over the monitoring period as inline SVG (no JavaScript needed).

An SVG scales its text with its width: the desktop chart (760 units wide) on a 390 px phone
would write 5 px labels. So the page carries two drawings of the same chart, `WIDE` and
`PHONE` (340 units, larger type), and gridwatch.css shows the one that fits: on a phone,
labels render at ≥ 11 CSS px."""

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


@dataclass(frozen=True)
class Size:
    """A drawing's size in SVG units: the plot, its margins and the type."""

    name: str
    width: int
    plot_height: int
    left: int
    right: int
    top: int
    font: int  # axis labels and legend; the fever line's label one unit larger


WIDE = Size("wide", width=760, plot_height=194, left=46, right=14, top=14, font=11)
# ~343 px wide on a 390 px phone (gridwatch.css): 13 units render at ~13 px
PHONE = Size("phone", width=340, plot_height=170, left=36, right=8, top=12, font=13)


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


def _text_width(text: str, font: float) -> float:
    """Roughly: CJK characters a full em, digits 0.55, a slash 0.3, others 0.6."""
    return font * sum(
        1.0 if ord(ch) > 0x2E7F else 0.55 if ch.isdigit() else 0.3 if ch in "/." else 0.6
        for ch in text
    )


def temperature_chart(
    points: Sequence[Point],
    start: dt.date,
    end: dt.date,
    *,
    threshold: float = 37.3,
    today: dt.date | None = None,
    size: Size = WIDE,
) -> Markup:
    """An SVG line chart: three slots a day from `start` to `end`, the fever line dashed red."""
    font = size.font
    svg_w, pad_l, pad_r, pad_t = size.width, size.left, size.right, size.top
    days = max((end - start).days + 1, 1)
    temps = [p.temperature for p in points if p.temperature is not None]
    low = min([35.5, *(t - 0.3 for t in temps)])
    high = max([38.5, threshold + 0.7, *(t + 0.3 for t in temps)])
    low, high = max(low, 33.5), min(high, 43.0)
    plot_w, plot_h = svg_w - pad_l - pad_r, size.plot_height
    step = plot_w / (days * 3)
    # the legend under the day labels, wrapped into as many rows as it needs
    legend = [(status, STATUS_CN[status]) for status in COLOURS] + [("", "▲ 无体温的记录")]
    rows: list[list[tuple[float, str, str]]] = [[]]
    x_at = float(pad_l)
    for status, text in legend:
        width = (14 if status else 0) + _text_width(text, font)
        if rows[-1] and x_at + width > svg_w - pad_r:
            rows.append([])
            x_at = pad_l
        rows[-1].append((x_at, status, text))
        x_at += width + font
    days_y = pad_t + plot_h + font + 5
    svg_h = round(days_y + (font + 8) * len(rows) + 4)

    def x(day: dt.date, slot: str) -> float:
        return pad_l + ((day - start).days * 3 + SLOTS.index(slot) + 0.5) * step

    def y(value: float) -> float:
        return pad_t + (high - min(max(value, low), high)) / (high - low) * plot_h

    parts = [
        f'<svg class="chart chart-{size.name}" viewBox="0 0 {svg_w} {svg_h}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="体温曲线 {start} 至 {end}">',
        f"<title>体温曲线（{day_label(start)}—{day_label(end)}）</title>",
        f'<rect x="{pad_l}" y="{pad_t}" width="{plot_w}" height="{y(threshold) - pad_t:.1f}" '
        'fill="#fdecec"/>',
    ]
    # day bands and labels; label every day while they fit, else every 2nd, 7th or 14th
    label_w = _text_width("12/30", font) + 4
    every = next((n for n in (1, 2, 7, 14) if n * 3 * step >= label_w), 30)
    for index in range(days):
        day = start + dt.timedelta(days=index)
        left = pad_l + index * 3 * step
        if index % 2:
            parts.append(
                f'<rect x="{left:.1f}" y="{pad_t}" width="{3 * step:.1f}" height="{plot_h}" '
                'fill="#000" fill-opacity="0.025"/>'
            )
        if day == today:
            parts.append(
                f'<rect x="{left:.1f}" y="{pad_t}" width="{3 * step:.1f}" height="{plot_h}" '
                'fill="#1e88e5" fill-opacity="0.07"/>'
            )
        if index % every == 0:
            weight = ' font-weight="700"' if day == today else ""
            parts.append(
                f'<text x="{left + 1.5 * step:.1f}" y="{days_y}" '
                f'text-anchor="middle" font-size="{font}" fill="#555"{weight}>'
                f"{day.month}/{day.day}</text>"
            )
    # horizontal grid every half degree
    value = round(low * 2) / 2
    while value <= high:
        if value >= low:
            parts.append(
                f'<line x1="{pad_l}" x2="{svg_w - pad_r}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                'stroke="#e3e6e8" stroke-width="1"/>'
                f'<text x="{pad_l - 5}" y="{y(value) + font * 0.35:.1f}" text-anchor="end" '
                f'font-size="{font}" fill="#666">{_fmt(value)}</text>'
            )
        value += 0.5
    parts.append(
        f'<line class="fever-line" x1="{pad_l}" x2="{svg_w - pad_r}" y1="{y(threshold):.1f}" '
        f'y2="{y(threshold):.1f}" stroke="#d32f2f" stroke-width="1.5" stroke-dasharray="6 4"/>'
        f'<text x="{svg_w - pad_r - 4}" y="{y(threshold) - 5:.1f}" text-anchor="end" '
        f'font-size="{font + 1}" fill="#d32f2f">发热线 {_fmt(threshold)}℃</text>'
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
            base = pad_t + plot_h - 6
            shape = (
                f'<path d="M{cx - 5:.1f},{base + 4:.1f} L{cx:.1f},{base - 5:.1f} '
                f'L{cx + 5:.1f},{base + 4:.1f} Z" fill="{colour}"/>'
            )
        parts.append(f'<g class="pt pt-{escape(point.status)}"><title>{escape(label)}</title>')
        parts.append(shape + "</g>")
    if not measured:
        parts.append(
            f'<text x="{pad_l + plot_w / 2:.1f}" y="{pad_t + plot_h / 2:.1f}" text-anchor="middle" '
            f'font-size="{font + 3}" fill="#888">暂无体温记录</text>'
        )
    for row_index, row in enumerate(rows):
        base = days_y + (font + 8) * (row_index + 1)
        for left, status, text in row:
            if status:
                parts.append(
                    f'<circle cx="{left + 5}" cy="{base - font * 0.35:.1f}" r="4.5" '
                    f'fill="{COLOURS[status]}"/>'
                    f'<text x="{left + 14}" y="{base}" font-size="{font}" fill="#555">'
                    f"{text}</text>"
                )
            else:
                parts.append(
                    f'<text x="{left}" y="{base}" font-size="{font}" fill="#888">{text}</text>'
                )
    parts.append("</svg>")
    return Markup("".join(parts))


# a small drawing per member: the weeks across, 0–100 % up (the weekly pack, DESIGN §11)
SHARE_WIDE = Size("wide", width=360, plot_height=90, left=40, right=10, top=10, font=11)
SHARE_PHONE = Size("phone", width=300, plot_height=90, left=40, right=8, top=10, font=13)


def share_chart(
    weeks: Sequence[str], shares: Sequence[float | None], *, label: str, size: Size = SHARE_WIDE
) -> Markup:
    """An SVG line of one member's on-time share per week (None: nothing was due that week)."""
    font = size.font
    svg_w, pad_l, pad_r, pad_t = size.width, size.left, size.right, size.top
    plot_w, plot_h = svg_w - pad_l - pad_r, size.plot_height
    count = max(len(weeks), 1)
    step = plot_w / count
    weeks_y = pad_t + plot_h + font + 5
    svg_h = weeks_y + 6

    def x(index: int) -> float:
        return pad_l + (index + 0.5) * step

    def y(share: float) -> float:
        return pad_t + (1 - min(max(share, 0.0), 1.0)) * plot_h

    parts = [
        f'<svg class="chart share chart-{size.name}" viewBox="0 0 {svg_w} {svg_h}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(label)} 按时上报率">',
        f"<title>{escape(label)} 每周按时上报率</title>",
    ]
    for value in (0, 0.5, 1):
        parts.append(
            f'<line x1="{pad_l}" x2="{svg_w - pad_r}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#e3e6e8" stroke-width="1"/>'
            f'<text x="{pad_l - 5}" y="{y(value) + font * 0.35:.1f}" text-anchor="end" '
            f'font-size="{font}" fill="#666">{round(value * 100)}%</text>'
        )
    label_w = _text_width("W10", font) + 4
    every = next((n for n in (1, 2, 4) if n * step >= label_w), 8)
    for index, week in enumerate(weeks):
        if index % every == 0 or index == len(weeks) - 1:
            parts.append(
                f'<text x="{x(index):.1f}" y="{weeks_y}" text-anchor="middle" '
                f'font-size="{font}" fill="#555">{escape(week[-3:])}</text>'
            )
    known = [(i, s) for i, s in enumerate(shares) if s is not None]
    if len(known) > 1:
        path = " ".join(f"{x(i):.1f},{y(s):.1f}" for i, s in known)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="#607d8b" stroke-width="1.6" '
            'stroke-linejoin="round"/>'
        )
    for index, share in known:
        colour = COLOURS["normal"] if share >= 0.9 else "#ef6c00" if share >= 0.6 else "#d32f2f"
        parts.append(
            f'<g class="pt"><title>{escape(weeks[index])} 按时 {share:.0%}</title>'
            f'<circle cx="{x(index):.1f}" cy="{y(share):.1f}" r="3.8" fill="{colour}" '
            'stroke="#fff" stroke-width="1.2"/></g>'
        )
    if not known:
        parts.append(
            f'<text x="{pad_l + plot_w / 2:.1f}" y="{pad_t + plot_h / 2:.1f}" '
            f'text-anchor="middle" font-size="{font + 1}" fill="#888">暂无应报记录</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
