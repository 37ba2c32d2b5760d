"""Charts as inline SVG, drawn on the server (no script, no library from elsewhere): the
dashboard's bars by district, channel and day. Every label is escaped; the SVG uses
presentation attributes only (no ``style`` attribute, which the Content-Security-Policy
refuses)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BAR = "#1f5f99"
DONE = "#2e7d32"
TRACK = "#dfe6ee"
TEXT = "#1b1b1b"


def _num(n: float) -> str:
    return f"{n:.1f}".rstrip("0").rstrip(".")


def progress_bars(rows: Sequence[tuple[str, int, int]], title: str, width: int = 640) -> str:
    """Horizontal bars, one per (label, done, of): the share done, with the figures."""
    row_h, label_w, pad = 26, 150, 6
    height = max(1, len(rows)) * row_h + pad * 2
    bar_w = width - label_w - 110
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}" class="chart">',
             f"<title>{escape(title)}</title>"]
    for i, (label, done, of) in enumerate(rows):
        y = pad + i * row_h
        share = done / of if of else 0.0
        parts.append(f'<text x="0" y="{y + 17}" fill="{TEXT}" font-size="13">'
                     f"{escape(label)}</text>")
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="16" '
                     f'fill="{TRACK}"/>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{_num(bar_w * share)}" '
                     f'height="16" fill="{DONE}"/>')
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 17}" fill="{TEXT}" '
                     f'font-size="13">{share:.0%} ({done:,}/{of:,})</text>')
    parts.append("</svg>")
    return "".join(parts)


def count_bars(rows: Sequence[tuple[str, int]], title: str, width: int = 640) -> str:
    """Horizontal bars of counts, one per (label, n), scaled to the largest."""
    row_h, label_w = 24, 170
    height = max(1, len(rows)) * row_h + 8
    top = max((n for _, n in rows), default=0) or 1
    bar_w = width - label_w - 80
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}" class="chart">',
             f"<title>{escape(title)}</title>"]
    for i, (label, n) in enumerate(rows):
        y = 4 + i * row_h
        parts.append(f'<text x="0" y="{y + 15}" fill="{TEXT}" font-size="13">'
                     f"{escape(label)}</text>")
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{_num(bar_w * n / top)}" '
                     f'height="15" fill="{BAR}"/>')
        parts.append(f'<text x="{_num(label_w + bar_w * n / top + 6)}" y="{y + 15}" '
                     f'fill="{TEXT}" font-size="13">{n:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def day_columns(rows: Sequence[tuple[str, int]], title: str, width: int = 640,
                height: int = 180) -> str:
    """Columns of certifications completed per day (label: the ISO date), oldest left."""
    base, left = height - 24, 40
    top = max((n for _, n in rows), default=0) or 1
    step = (width - left) / max(1, len(rows))
    col_w = max(1.0, step * 0.8)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}" class="chart">',
             f"<title>{escape(title)}</title>",
             f'<line x1="{left}" y1="{base}" x2="{width}" y2="{base}" stroke="{TEXT}"/>',
             f'<text x="0" y="14" fill="{TEXT}" font-size="12">{top:,}</text>']
    for i, (day, n) in enumerate(rows):
        h = (base - 20) * n / top
        x = left + i * step
        parts.append(f'<rect x="{_num(x)}" y="{_num(base - h)}" width="{_num(col_w)}" '
                     f'height="{_num(h)}" fill="{BAR}"><title>{escape(day)}: {n:,}'
                     "</title></rect>")
    if rows:
        parts.append(f'<text x="{left}" y="{height - 6}" fill="{TEXT}" font-size="12">'
                     f"{escape(rows[0][0])}</text>")
        parts.append(f'<text x="{width}" y="{height - 6}" fill="{TEXT}" font-size="12" '
                     f'text-anchor="end">{escape(rows[-1][0])}</text>')
    parts.append("</svg>")
    return "".join(parts)
