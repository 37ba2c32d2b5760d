"""The report as a PDF, drawn with ReportLab (the ``report`` extra): pure Python on PyPI,
it draws the charts itself, and its built-in CID font STSong-Light (Adobe's Simplified
Chinese font, which PDF readers supply) renders the Chinese text with no font file. A
TrueType font file (.ttf, or .ttc: its first face) may be given instead: it is embedded
(subset), for readers that have no Chinese font of their own."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, String
from reportlab.graphics.shapes import Line as RLLine
from reportlab.graphics.shapes import Rect as RLRect
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, TableStyle
from reportlab.platypus import Table as RLTable

from lifecert.report.charts import Chart, Line, Rect
from lifecert.report.document import Document, Figure, Heading, Para, Table

FONT = "STSong-Light"


class FontError(ValueError):
    """A font file that cannot be embedded."""


def _font(font_file: Path | None) -> str:
    if font_file is None:
        if FONT not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(UnicodeCIDFont(FONT))
        return FONT
    name = f"lifecert-{font_file.stem}"
    if name not in pdfmetrics.getRegisteredFontNames():
        try:
            pdfmetrics.registerFont(TTFont(name, str(font_file), subfontIndex=0))
        except (OSError, TTFError) as exc:
            raise FontError(f"{font_file}: cannot embed this font ({exc}); give a TrueType "
                            ".ttf or .ttc file with Chinese glyphs, e.g. Debian's "
                            "fonts-wqy-zenhei") from None
    return name


def write(doc: Document, path: Path, font_file: Path | None = None) -> None:
    font = _font(font_file)
    styles = {
        "title": ParagraphStyle("title", fontName=font, fontSize=15, leading=20, spaceAfter=4),
        "sub": ParagraphStyle("sub", fontName=font, fontSize=8.5, leading=12,
                              textColor=colors.HexColor("#555555"), spaceAfter=6),
        "h": ParagraphStyle("h", fontName=font, fontSize=12.5, leading=17, spaceBefore=8,
                            spaceAfter=4),
        "p": ParagraphStyle("p", fontName=font, fontSize=9, leading=13, wordWrap="CJK"),
        "cell": ParagraphStyle("cell", fontName=font, fontSize=8, leading=10.5,
                               wordWrap="CJK"),
    }
    story: list[Flowable] = [Paragraph(escape(doc.title), styles["title"]),
                             Paragraph(escape(doc.subtitle), styles["sub"])]
    for block in doc.blocks:
        if isinstance(block, Heading):
            story.append(Paragraph(escape(block.text), styles["h"]))
        elif isinstance(block, Para):
            story.append(Paragraph(escape(block.text), styles["p"]))
        elif isinstance(block, Table):
            story.append(_table(block, styles["cell"], font))
        elif isinstance(block, Figure):
            story += [Spacer(1, 4), _drawing(block.chart, font), Spacer(1, 4)]
    pdf = SimpleDocTemplate(str(path), pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                            topMargin=16 * mm, bottomMargin=16 * mm, title=doc.title,
                            author="lifecert", subject=doc.subtitle)
    pdf.build(story)


def _table(table: Table, style: ParagraphStyle, font: str) -> RLTable:
    right = ParagraphStyle("right", parent=style, alignment=2)
    rows = [[Paragraph(escape(h), style) for h in table.header]]
    for row in table.rows:
        rows.append([Paragraph(escape(c), right if num else style)
                     for c, num in zip(row, table.numeric, strict=True)])
    width = A4[0] - 36 * mm
    first = 0.5 if len(table.header) <= 3 else 0.3
    rest = (1 - first) / max(1, len(table.header) - 1)
    widths = [width * first] + [width * rest] * (len(table.header) - 1)
    out = RLTable(rows, colWidths=widths, repeatRows=1)
    out.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f6")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    return out


def _drawing(chart: Chart, font: str) -> Drawing:
    """The chart's shapes with the y axis flipped (PDF's origin is at the bottom left),
    scaled to the text width."""
    scale = min(1.0, (A4[0] - 36 * mm) / chart.width)
    h = chart.height
    d = Drawing(chart.width * scale, h * scale)
    for s in chart.shapes:
        if isinstance(s, Rect):
            rect = RLRect(s.x * scale, (h - s.y - s.h) * scale, s.w * scale, s.h * scale)
            rect.fillColor = colors.HexColor(s.fill)
            rect.strokeColor = None
            d.add(rect)
        elif isinstance(s, Line):
            d.add(RLLine(s.x1 * scale, (h - s.y1) * scale, s.x2 * scale, (h - s.y2) * scale,
                         strokeColor=colors.HexColor(s.stroke), strokeWidth=0.5))
        else:
            d.add(String(s.x * scale, (h - s.y) * scale, s.text, fontName=font,
                         fontSize=s.size * scale, fillColor=colors.HexColor(s.fill),
                         textAnchor=s.anchor))
    return d
