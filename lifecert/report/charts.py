"""Charts as lists of drawing primitives (pure layout), drawn as SVG here and as PDF
graphics by ``lifecert.report.pdf``: one layout, so the HTML and the PDF show the same
chart. Coordinates in points, origin at the top left (as SVG)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Literal

WIDTH = 480.0
INK = "#222222"
GRID = "#cccccc"
COLOURS = ("#2f6f9f", "#d9822b", "#4c9a55", "#9b59b6", "#c0392b", "#7f8c8d")


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float  # baseline
    text: str
    size: float = 9.0
    anchor: Literal["start", "middle", "end"] = "start"
    fill: str = INK


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str = GRID


Shape = Rect | Text | Line


@dataclass(frozen=True)
class Chart:
    title: str
    width: float
    height: float
    shapes: tuple[Shape, ...]


def text_width(text: str, size: float) -> float:
    """A width estimate: CJK characters one em, others about half."""
    return sum(size if ord(c) > 0x2E80 else size * 0.55 for c in text)


def hbars(title: str, rows: list[tuple[str, int, int]], unit: str = "%") -> Chart:
    """Horizontal bars of ``part / whole`` per label, the bar's length the share (0 to
    100 %), labelled with the share and the ``part`` of ``whole``."""
    size, bar, gap = 9.0, 14.0, 6.0
    label_w = max((text_width(label, size) for label, _, _ in rows), default=40.0) + 8
    left, right = label_w, WIDTH - 110
    shapes: list[Shape] = [Text(0, 14, title, 11)]
    y = 26.0
    for tick in (0, 50, 100):
        x = left + (right - left) * tick / 100
        shapes.append(Line(x, y, x, y + len(rows) * (bar + gap)))
        shapes.append(Text(x, y + len(rows) * (bar + gap) + 10, f"{tick}{unit}", 7, "middle"))
    for i, (label, part, whole) in enumerate(rows):
        top = y + i * (bar + gap)
        share = part / whole if whole else 0.0
        shapes.append(Text(label_w - 6, top + bar - 3, label, size, "end"))
        shapes.append(Rect(left, top, max((right - left) * share, 0.5), bar, COLOURS[0]))
        shapes.append(Text(right + 6, top + bar - 3, f"{_pct(part, whole)} ({part:,}/{whole:,})",
                           8))
    return Chart(title, WIDTH, y + len(rows) * (bar + gap) + 16, tuple(shapes))


def columns(title: str, points: list[tuple[str, int]], every: int = 1) -> Chart:
    """Vertical columns of counts (e.g. certifications per day), every ``every``-th label
    written under its column."""
    height, top, bottom, left = 150.0, 24.0, 24.0, 44.0
    shapes: list[Shape] = [Text(0, 14, title, 11)]
    peak = max((v for _, v in points), default=0)
    scale = _nice(peak)
    plot_h = height - top - bottom
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        shapes.append(Line(left, y, WIDTH, y))
        shapes.append(Text(left - 4, y + 3, f"{int(scale * frac):,}", 7, "end"))
    if points:
        step = (WIDTH - left) / len(points)
        for i, (label, value) in enumerate(points):
            h = plot_h * value / scale if scale else 0.0
            x = left + i * step
            shapes.append(Rect(x + step * 0.1, top + plot_h - h, step * 0.8, h, COLOURS[0]))
            if i % every == 0:
                shapes.append(Text(x + step / 2, height - bottom + 11, label, 7, "middle"))
    return Chart(title, WIDTH, height, tuple(shapes))


def split_bar(title: str, parts: list[tuple[str, int]]) -> Chart:
    """One bar split into shares (e.g. face versus manual), with a legend."""
    total = sum(v for _, v in parts)
    shapes: list[Shape] = [Text(0, 14, title, 11)]
    x, y, h = 0.0, 24.0, 22.0
    for i, (label, value) in enumerate(parts):
        w = WIDTH * value / total if total else 0.0
        colour = COLOURS[i % len(COLOURS)]
        if w > 0:
            shapes.append(Rect(x, y, w, h, colour))
        x += w
        ly = y + h + 16 + i * 14
        shapes.append(Rect(0, ly - 9, 10, 10, colour))
        shapes.append(Text(16, ly, f"{label}: {_pct(value, total)} ({value:,})", 9))
    return Chart(title, WIDTH, y + h + 16 + len(parts) * 14, tuple(shapes))


def _nice(peak: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``peak``."""
    if peak <= 0:
        return 0
    power = 1
    while True:
        for m in (1, 2, 5):
            if m * power >= peak:
                return m * power
        power *= 10


def _pct(part: int, whole: int) -> str:
    if whole == 0:
        return "–"
    tenths = (part * 2000 + whole) // (2 * whole)
    return f"{tenths // 10}.{tenths % 10}%"


def svg(chart: Chart) -> str:
    """The chart as an inline SVG element (no external reference)."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{chart.width:g}" '
           f'height="{chart.height:g}" viewBox="0 0 {chart.width:g} {chart.height:g}" '
           f'aria-label="{escape(chart.title)}">']
    for s in chart.shapes:
        if isinstance(s, Rect):
            out.append(f'<rect x="{s.x:.1f}" y="{s.y:.1f}" width="{s.w:.1f}" '
                       f'height="{s.h:.1f}" fill="{s.fill}"/>')
        elif isinstance(s, Line):
            out.append(f'<line x1="{s.x1:.1f}" y1="{s.y1:.1f}" x2="{s.x2:.1f}" '
                       f'y2="{s.y2:.1f}" stroke="{s.stroke}" stroke-width="0.5"/>')
        else:
            out.append(f'<text x="{s.x:.1f}" y="{s.y:.1f}" font-size="{s.size:g}" '
                       f'text-anchor="{s.anchor}" fill="{s.fill}">{escape(s.text)}</text>')
    out.append("</svg>")
    return "".join(out)
