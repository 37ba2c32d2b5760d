"""The report as one self-contained HTML page: inline CSS, charts as inline SVG, no script
and nothing fetched (it opens offline and under any Content-Security-Policy)."""

from __future__ import annotations

from html import escape

from lifecert.report.charts import svg
from lifecert.report.document import Document, Figure, Heading, Para, Table

_CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",
sans-serif;max-width:56rem;margin:1.5rem auto;padding:0 1rem;color:#222;line-height:1.5}
h1{font-size:1.4rem}h2{font-size:1.15rem;border-bottom:1px solid #ccc;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.8rem 0;width:100%}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eef2f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0}svg{max-width:100%;height:auto}
.sub{color:#555;font-size:.9rem}
"""


def render(doc: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-Hans">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(doc.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(doc.title)}</h1>",
        f'<p class="sub">{escape(doc.subtitle)}</p>',
    ]
    for block in doc.blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            parts.append(f"<p>{escape(block.text)}</p>")
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Figure):
            parts.append(f"<figure>{svg(block.chart)}</figure>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _table(table: Table) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in table.header)
    rows = []
    for row in table.rows:
        cells = "".join(
            f'<td class="n">{escape(c)}</td>' if num else f"<td>{escape(c)}</td>"
            for c, num in zip(row, table.numeric, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
