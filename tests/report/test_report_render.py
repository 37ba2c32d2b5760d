"""The report rendered: the HTML well-formed, self-contained and carrying the figures; the
charts drawn to scale; the PDF rendered to PNG by poppler's pdftoppm and not blank, its
Chinese text drawn."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from lifecert.report.charts import Rect, Text, columns, hbars, split_bar, svg
from lifecert.report.document import Document, Figure, Heading, Table, build
from lifecert.report.html import render
from lifecert.report.pdf import write
from tests.report.campaign import figures

ROOT = Path(__file__).resolve().parents[2]
VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr", "area", "base"}
SVG_EMPTY = {"rect", "line", "path", "circle"}


class _Balance(HTMLParser):
    """Every element closed in order; collects src/href values and the elements seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.seen: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> _Balance:
    checker = _Balance()
    checker.feed(html)
    checker.close()
    return checker


def report_html(as_of: date | None = None) -> str:
    return render(build(figures(as_of), date(2017, 7, 11), "test campaign"))


def test_the_html_is_well_formed_and_fetches_nothing() -> None:
    html = report_html(date(2017, 7, 10))
    checker = parsed(html)
    assert checker.errors == [] and checker.open == []
    assert html.startswith("<!DOCTYPE html>\n<html lang=\"zh-Hans\">")
    assert {"svg", "rect", "text", "table", "title", "style"} <= checker.seen
    assert not checker.seen & {"script", "img", "link", "iframe", "object"}
    assert not [u for u in checker.links if re.match(r"\s*(https?:)?//", u, re.I)]
    assert not re.search(r"url\(|@import", html)  # nothing fetched from the CSS either
    assert html.count("<svg") == 7  # the deaths by register's bars are the 7th


def test_the_html_carries_the_figures() -> None:
    text = " ".join(parsed(report_html()).text)
    assert "认证率 83.3%（应认证 6 人，已认证 5 人）" in text
    assert "10,500.50 (3 月 months)" in text  # back-pay in yuan with two decimals
    assert "1,234.56 (1 月 months)" in text  # overpaid
    assert "禅城区 CHANCHENG" in text and "（香港） (HONG_KONG)" in text
    assert "Fraud alert: CERTIFIED_AFTER_DEATH" in text
    assert "Deaths found through the registers" in text and "民政殡葬 Civil affairs" in text
    as_of = " ".join(parsed(report_html(date(2017, 7, 10))).text)
    assert "截至 As of: 2017-07-10" in as_of and "3,500.00 (1 月 months)" in as_of


def test_text_is_escaped() -> None:
    f = figures()
    doc = build(replace(f, policy="<b>&"), date(2017, 7, 11), "a<script>")
    html = render(doc)
    assert "<script>" not in html and "a&lt;script&gt;" in html and "&lt;b&gt;&amp;" in html


def test_bars_are_drawn_to_scale() -> None:
    chart = hbars("rate", [("a", 1, 4), ("b", 4, 4), ("c", 0, 0)])
    bars = [s for s in chart.shapes if isinstance(s, Rect)]
    assert bars[0].w == pytest.approx(bars[1].w / 4)
    assert bars[2].w < 1  # no share: a hairline, not a missing bar
    labels = [s.text for s in chart.shapes if isinstance(s, Text)]
    assert "25.0% (1/4)" in labels and "100.0% (4/4)" in labels and "– (0/0)" in labels


def test_columns_and_split_bars() -> None:
    chart = columns("per week", [("04-01", 10), ("04-08", 40), ("04-15", 0)])
    bars = [s for s in chart.shapes if isinstance(s, Rect)]
    assert bars[1].h == pytest.approx(bars[0].h * 4)
    assert bars[2].h == 0
    assert "50" in [s.text for s in chart.shapes if isinstance(s, Text)]  # the scale's top
    split = split_bar("face", [("face", 3), ("other", 1)])
    widths = [s.w for s in split.shapes if isinstance(s, Rect) and s.h > 10]
    assert widths == pytest.approx([360.0, 120.0])
    assert svg(split).startswith('<svg xmlns="http://www.w3.org/2000/svg" role="img"')


# ------------------------------------------------------------------ PDF


def pdftoppm(pdf: Path, out: Path) -> list[Path]:
    tool = shutil.which("pdftoppm")
    assert tool, "pdftoppm is missing: `make setup` installs Debian's poppler-utils"
    subprocess.run([tool, "-r", "60", "-png", str(pdf), str(out / "page")], check=True,
                   timeout=60)
    return sorted(out.glob("page-*.png"))


def ink(png: Path, box: tuple[int, int, int, int] | None = None) -> float:
    """The share of pixels that are not near white (in ``box`` when given)."""
    image = Image.open(png).convert("L")
    if box is not None:
        image = image.crop(box)
    histogram = image.histogram()
    return sum(histogram[:200]) / sum(histogram)


def test_the_pdf_renders_pages_that_are_not_blank(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    write(build(figures(), date(2017, 7, 11), "test campaign"), pdf)
    assert pdf.read_bytes().startswith(b"%PDF-")
    pages = pdftoppm(pdf, tmp_path)
    assert len(pages) >= 2
    shares = [ink(p) for p in pages]
    assert all(0.005 < s < 0.6 for s in shares), shares
    assert shares[0] > 0.03  # the first page: title, findings, the district chart and table
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Deaths found through the registers" in text and "Civil affairs" in text
    # kept for a person to look at ($LIFECERT_TEST_ARTIFACTS, else test-artifacts/)
    keep = Path(os.environ.get("LIFECERT_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "report"
    keep.mkdir(parents=True, exist_ok=True)
    for p in pages:
        shutil.copy(p, keep / f"report-{p.name}")


def test_chinese_text_is_drawn_in_the_pdf(tmp_path: Path) -> None:
    chinese = tmp_path / "zh.pdf"
    write(Document("养老金领取资格认证", "", (Heading("认证情况"),)), chinese)
    empty = tmp_path / "empty.pdf"
    write(Document("", "", ()), empty)
    (zh_dir := tmp_path / "zh").mkdir()
    (empty_dir := tmp_path / "empty").mkdir()
    top = (0, 0, 490, 120)  # the title's band at 60 dpi (A4 is 496 px wide)
    assert ink(pdftoppm(chinese, zh_dir)[0], top) > 0.01
    assert ink(pdftoppm(empty, empty_dir)[0], top) == 0
    text = subprocess.run(["pdftotext", str(chinese), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "养老金领取资格认证" in text and "认证情况" in text


def test_a_font_file_is_embedded(tmp_path: Path) -> None:
    font = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
    assert font.is_file(), "`make setup` installs Debian's fonts-wqy-zenhei"
    pdf = tmp_path / "embedded.pdf"
    write(Document("养老金", "", (Table(("区",), (("禅城",),), (False,)),
                                 Figure(hbars("率", [("禅城", 1, 2)])))), pdf, font)
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True,
                           check=True).stdout
    assert re.search(r"WenQuanYiZenHei\S*\s+TrueType.*\byes\s+yes", fonts), fonts
    assert "STSong" not in fonts
