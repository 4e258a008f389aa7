"""Tiny inline-SVG charts for the HTML report: line charts and bar charts, no external assets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")


@dataclass(frozen=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]


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


def _frame(title: str, width: int, height: int, body: str, legend: Sequence[str] = ()) -> str:
    items = "".join(
        f'<rect x="{70 + i * 150}" y="{height - 16}" width="10" height="10" '
        f'fill="{PALETTE[i % len(PALETTE)]}"/>'
        f'<text x="{84 + i * 150}" y="{height - 7}" font-size="11">{escape(label[:22])}</text>'
        for i, label in enumerate(legend)
    )
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>"
        f"{body}{items}</svg>"
    )


def _y_title(text: str, top: float, bottom: float) -> str:
    mid = (top + bottom) / 2
    return (
        f'<text x="12" y="{mid}" font-size="10" transform="rotate(-90 12 {mid})" '
        f'text-anchor="middle">{escape(text)}</text>'
    )


def line_chart(
    title: str,
    series: Sequence[Series],
    y_label: str = "",
    width: int = 640,
    height: int = 260,
    x_is_time: bool = True,
) -> str:
    """Lines over a shared x axis (seconds since the first point when `x_is_time`)."""
    pts = [
        (x, y)
        for s in series
        for x, y in zip(s.xs, s.ys, strict=False)
        if math.isfinite(x) and math.isfinite(y)
    ]
    if not pts:
        return empty_chart(title, width, height)
    x0 = min(p[0] for p in pts) if x_is_time else 0.0
    xs = [p[0] - x0 for p in pts]
    ys = [p[1] for p in pts]
    x_ticks = _nice_ticks(min(xs), max(xs))
    y_ticks = _nice_ticks(min(0.0, min(ys)), max(ys))
    left, right, top, bottom = 60, width - 15, 28, height - 48
    xlo, xhi, ylo, yhi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - xlo) / ((xhi - xlo) or 1) * (right - left)

    def sy(y: float) -> float:
        return bottom - (y - ylo) / ((yhi - ylo) or 1) * (bottom - top)

    parts = [
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        'fill="#f8fafc" stroke="#cbd5e1"/>'
    ]
    for t in y_ticks:
        parts.append(f'<line x1="{left}" x2="{right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#e2e8f0"/>')
        parts.append(
            f'<text x="{left - 5}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="10">{_fmt(t)}</text>'
        )
    for t in x_ticks:
        parts.append(
            f'<text x="{sx(t):.1f}" y="{bottom + 14}" text-anchor="middle" font-size="10">{_fmt(t)}</text>'
        )
    x_title = "seconds since start" if x_is_time else ""
    parts.append(
        f'<text x="{(left + right) / 2}" y="{bottom + 28}" text-anchor="middle" font-size="10">'
        f"{x_title}</text>"
    )
    parts.append(_y_title(y_label, top, bottom))
    for i, s in enumerate(series):
        coords = [
            f"{sx(x - x0):.1f},{sy(y):.1f}"
            for x, y in zip(s.xs, s.ys, strict=False)
            if math.isfinite(x) and math.isfinite(y)
        ]
        if len(coords) == 1:
            cx, cy = coords[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{PALETTE[i % len(PALETTE)]}"/>')
        elif coords:
            parts.append(
                f'<polyline fill="none" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="1.8" '
                f'points="{" ".join(coords)}"/>'
            )
    return _frame(title, width, height, "".join(parts), [s.label for s in series])


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    y_label: str = "",
    width: int = 640,
    height: int = 240,
    color: str = PALETTE[0],
) -> str:
    """Vertical bars, one per label (a histogram when labels are bin edges)."""
    vals = [v if math.isfinite(v) else 0.0 for v in values]
    if not vals or max(vals) <= 0:
        return empty_chart(title, width, height)
    y_ticks = _nice_ticks(0.0, max(vals))
    left, right, top, bottom = 60, width - 15, 28, height - 44
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
                f'<text x="{x + slot / 2:.1f}" y="{bottom + 14}" text-anchor="middle" font-size="10">'
                f"{escape(label[:14])}</text>"
            )
    parts.append(_y_title(y_label, top, bottom))
    return _frame(title, width, height, "".join(parts))


def empty_chart(title: str, width: int = 640, height: int = 120) -> str:
    body = (
        f'<text x="{width / 2}" y="{height / 2 + 8}" text-anchor="middle" font-size="12" fill="#64748b">'
        "no data in this run</text>"
    )
    return _frame(title, width, height, body)
