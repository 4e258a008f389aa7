"""Tiny inline-SVG charts for the HTML report: line charts (with an optional right-hand axis), scatter
charts and bar charts, no script and no external asset.

Each drawn series carries its values in a `data-ys` attribute (and `data-xs`), so a test reads what a
chart shows without parsing coordinates back. A NaN in a line's values is a gap in the line, never a
straight segment across it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
LEGEND_ROW = 15


@dataclass(frozen=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str | None = None
    dashed: bool = False


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while True:
        ticks.append(round(v, 10))
        if v >= hi - step * 1e-9:
            break
        v += step
    return ticks


def _fmt(v: float) -> str:
    if abs(v) >= 10_000:
        return f"{v / 1000:.0f}k"
    if abs(v) >= 100 or v == int(v):
        return f"{v:.0f}"
    return f"{v:.2g}" if abs(v) < 1 else f"{v:.1f}"


def _grid(left: float, right: float, y: float, tick: float) -> str:
    """A horizontal grid line at `y` and its tick label on the left axis."""
    return (
        f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>'
        f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_fmt(tick)}</text>'
    )


def _data(values: Sequence[float]) -> str:
    return " ".join("nan" if not math.isfinite(v) else f"{v:.6g}" for v in values)


def _legend(items: Sequence[tuple[str, str, bool]], width: int, top: float) -> tuple[str, int]:
    """Legend entries (label, colour, dashed) flowing left to right, wrapped; returns (svg, rows)."""
    parts, x, row = [], 60.0, 0
    for label, color, dashed in items:
        text = label[:48]
        span = 22 + len(text) * 6.2 + 18
        if x + span > width - 10 and x > 60:
            x, row = 60.0, row + 1
        y = top + row * LEGEND_ROW
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        parts.append(
            f'<line x1="{x:.0f}" x2="{x + 16:.0f}" y1="{y - 4:.0f}" y2="{y - 4:.0f}" stroke="{color}" '
            f'stroke-width="3"{dash}/>'
            f'<text x="{x + 21:.0f}" y="{y:.0f}" font-size="11">{escape(text)}</text>'
        )
        x += span
    return "".join(parts), (row + 1 if items else 0)


def legend_rows(labels: Sequence[str], width: int) -> int:
    return _legend([(label, "#000", False) for label in labels], width, 0)[1]


def _frame(title: str, width: int, height: int, body: str, css_class: str = "chart") -> str:
    return (
        f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text x="{width / 2}" y="17" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>"
        f"{body}</svg>"
    )


def _y_title(text: str, x: float, top: float, bottom: float) -> str:
    mid = (top + bottom) / 2
    return (
        f'<text x="{x}" y="{mid}" font-size="10" transform="rotate(-90 {x} {mid})" '
        f'text-anchor="middle">{escape(text)}</text>'
    )


def _segments(points: Sequence[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Runs of finite points: a NaN breaks the line."""
    out: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if math.isfinite(x) and math.isfinite(y):
            out[-1].append((x, y))
        elif out[-1]:
            out.append([])
    return [s for s in out if s]


def line_chart(
    title: str,
    series: Sequence[Series],
    y_label: str = "",
    width: int = 640,
    height: int = 240,
    x_label: str = "seconds since the run's start",
    right: Sequence[Series] = (),
    right_label: str = "",
    css_class: str = "chart",
    x_range: tuple[float, float] | None = None,
) -> str:
    """Lines over a shared x axis; `right` series get an axis of their own on the right. `x_range`
    fixes the axis (the run's whole span, even where a series has no value)."""
    finite = [
        (x, y)
        for s in (*series, *right)
        for x, y in zip(s.xs, s.ys, strict=False)
        if math.isfinite(x) and math.isfinite(y)
    ]
    if not finite:
        return empty_chart(title, width, min(height, 120))
    all_series = [*series, *right]
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(all_series)]
    legend_items = [(s.label, c, s.dashed) for s, c in zip(all_series, colors, strict=True)]
    rows = legend_rows([s.label for s in all_series], width)
    left, right_edge, top = 58, width - (52 if right else 15), 26
    bottom = height - 36 - rows * LEGEND_ROW
    xs = [p[0] for p in finite]
    # The axis ends where the data ends (a 20.4 s run ends at 20.4 s, not at a rounder 25).
    xlo, xhi = x_range if x_range is not None else (min(0.0, min(xs)), max(xs))
    x_ticks = [t for t in _nice_ticks(xlo, xhi) if xlo <= t <= xhi + 1e-9]

    def axis(ss: Sequence[Series]) -> list[float]:
        ys = [y for s in ss for y in s.ys if math.isfinite(y)]
        return _nice_ticks(min([0.0, *ys]), max(ys)) if ys else [0.0, 1.0]

    y_ticks = axis(series) if series else axis(right)
    r_ticks = axis(right) if right else []

    def sx(x: float) -> float:
        return left + (x - xlo) / ((xhi - xlo) or 1) * (right_edge - left)

    def sy(y: float, ticks: Sequence[float]) -> float:
        lo, hi = ticks[0], ticks[-1]
        return bottom - (y - lo) / ((hi - lo) or 1) * (bottom - top)

    parts = [
        f'<rect x="{left}" y="{top}" width="{right_edge - left}" height="{bottom - top}" '
        'fill="#f8fafc" stroke="#cbd5e1"/>'
    ]
    for t in y_ticks:
        y = sy(t, y_ticks)
        parts.append(f'<line x1="{left}" x2="{right_edge}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(
            f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_fmt(t)}</text>'
        )
    for t in r_ticks:
        y = sy(t, r_ticks)
        parts.append(f'<text x="{right_edge + 5}" y="{y + 4:.1f}" font-size="10">{_fmt(t)}</text>')
    for t in x_ticks:
        parts.append(
            f'<text x="{sx(t):.1f}" y="{bottom + 13}" text-anchor="middle" font-size="10">{_fmt(t)}</text>'
        )
    parts.append(
        f'<text x="{(left + right_edge) / 2}" y="{bottom + 25}" text-anchor="middle" font-size="10">'
        f"{escape(x_label)}</text>"
    )
    parts.append(_y_title(y_label, 12, top, bottom))
    if right:
        parts.append(_y_title(right_label, width - 8, top, bottom))
    for s, color in zip(all_series, colors, strict=True):
        ticks = r_ticks if any(s is r for r in right) else y_ticks
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        attrs = f'data-series="{escape(s.label)}" data-xs="{_data(s.xs)}" data-ys="{_data(s.ys)}"'
        segs = _segments(list(zip(s.xs, s.ys, strict=False)))
        body = []
        for seg in segs:
            if len(seg) == 1:
                ((x, y),) = seg
                body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y, ticks):.1f}" r="2.5" fill="{color}"/>')
            else:
                pts = " ".join(f"{sx(x):.1f},{sy(y, ticks):.1f}" for x, y in seg)
                body.append(
                    f'<polyline fill="none" stroke="{color}" stroke-width="1.8"{dash} points="{pts}"/>'
                )
        parts.append(f'<g class="series" {attrs}>{"".join(body)}</g>')
    legend, _ = _legend(legend_items, width, bottom + 40)
    parts.append(legend)
    return _frame(title, width, height, "".join(parts), css_class)


def scatter_chart(
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    width: int = 420,
    height: int = 240,
) -> str:
    """Points (x, y), one colour per series: response time against load."""
    finite = [
        (x, y)
        for s in series
        for x, y in zip(s.xs, s.ys, strict=False)
        if math.isfinite(x) and math.isfinite(y)
    ]
    if not finite:
        return empty_chart(title, width, 120)
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    rows = legend_rows([s.label for s in series], width)
    left, right_edge, top = 58, width - 15, 26
    bottom = height - 36 - rows * LEGEND_ROW
    x_ticks = _nice_ticks(0.0, max(p[0] for p in finite))
    y_ticks = _nice_ticks(0.0, max(p[1] for p in finite))

    def sx(x: float) -> float:
        return left + (x - x_ticks[0]) / ((x_ticks[-1] - x_ticks[0]) or 1) * (right_edge - left)

    def sy(y: float) -> float:
        return bottom - (y - y_ticks[0]) / ((y_ticks[-1] - y_ticks[0]) or 1) * (bottom - top)

    parts = [
        f'<rect x="{left}" y="{top}" width="{right_edge - left}" height="{bottom - top}" '
        'fill="#f8fafc" stroke="#cbd5e1"/>'
    ]
    for t in y_ticks:
        parts.append(
            f'<line x1="{left}" x2="{right_edge}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#e2e8f0"/>'
        )
        parts.append(
            f'<text x="{left - 5}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="10">{_fmt(t)}</text>'
        )
    for t in x_ticks:
        parts.append(
            f'<text x="{sx(t):.1f}" y="{bottom + 13}" text-anchor="middle" font-size="10">{_fmt(t)}</text>'
        )
    parts.append(
        f'<text x="{(left + right_edge) / 2}" y="{bottom + 25}" text-anchor="middle" font-size="10">'
        f"{escape(x_label)}</text>"
    )
    parts.append(_y_title(y_label, 12, top, bottom))
    for s, color in zip(series, colors, strict=True):
        dots = "".join(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}" fill-opacity="0.7"/>'
            for x, y in zip(s.xs, s.ys, strict=False)
            if math.isfinite(x) and math.isfinite(y)
        )
        parts.append(
            f'<g class="series" data-series="{escape(s.label)}" data-xs="{_data(s.xs)}" '
            f'data-ys="{_data(s.ys)}">{dots}</g>'
        )
    legend, _ = _legend(
        [(s.label, c, False) for s, c in zip(series, colors, strict=True)], width, bottom + 40
    )
    parts.append(legend)
    return _frame(title, width, height, "".join(parts))


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    y_label: str = "",
    width: int = 640,
    height: int = 240,
    color: str = PALETTE[0],
    x_label: str = "",
) -> str:
    """Vertical bars, one per label (a histogram when labels are bin edges)."""
    vals = [v if math.isfinite(v) else 0.0 for v in values]
    if not vals or max(vals) <= 0:
        return empty_chart(title, width, 120)
    y_ticks = _nice_ticks(0.0, max(vals))
    left, right, top, bottom = 58, width - 15, 26, height - (40 if x_label else 28)
    yhi = y_ticks[-1] or 1.0
    n = len(vals)
    slot = (right - left) / n
    parts = [
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        'fill="#f8fafc" stroke="#cbd5e1"/>'
    ]
    for t in y_ticks:
        y = bottom - t / yhi * (bottom - top)
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(
            f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_fmt(t)}</text>'
        )
    every = max(1, math.ceil(n / 10))
    for i, (label, v) in enumerate(zip(labels, vals, strict=True)):
        h = v / yhi * (bottom - top)
        x = left + i * slot
        parts.append(
            f'<rect x="{x + slot * 0.1:.1f}" y="{bottom - h:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}" '
            f'fill="{color}"><title>{escape(label)}: {_fmt(v)}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{bottom + 13}" text-anchor="middle" font-size="10">'
                f"{escape(label[:14])}</text>"
            )
    if x_label:
        parts.append(
            f'<text x="{(left + right) / 2}" y="{bottom + 26}" text-anchor="middle" font-size="10">'
            f"{escape(x_label)}</text>"
        )
    parts.append(_y_title(y_label, 12, top, bottom))
    return _frame(title, width, height, "".join(parts))


def empty_chart(title: str, width: int = 640, height: int = 120) -> str:
    body = (
        f'<text x="{width / 2}" y="{height / 2 + 8}" text-anchor="middle" font-size="12" fill="#64748b">'
        "no data in this run</text>"
    )
    return _frame(title, width, height, body)
