"""``wrobust report -o report.html``: one self-contained HTML page.

Figures are embedded as ``data:image/png;base64`` images and the style sheet is inline; the page loads
nothing (no scripts, fonts or images from elsewhere), so it can be attached to a pull request or a paper's
supplement and opened offline. The same results give the same bytes (no time stamp).
"""

from __future__ import annotations

import base64
from html import escape

from .. import __version__
from .compare import only_lines, where_better
from .comparison import comparison_table, key_lines
from .document import Report, Table
from .figures import png_bytes

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.1rem; margin-top: 1.6rem; } h4 { font-size: 1rem; margin: 1.2rem 0 0.3rem; }
table { border-collapse: collapse; margin: 0.4rem 0 1rem; font-size: 0.9rem; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #e2e2e2; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
table.meta th, table.meta td { text-align: left; }
table.meta td { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
                word-break: break-all; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; height: auto; border: 1px solid #e2e2e2; }
figcaption { font-size: 0.9rem; color: #444; }
p.note { color: #7a4b00; }
"""


def report_html(report: Report, title: str = "wrobust report") -> str:
    parts = [f"<h1>{escape(title)}</h1>",
             f"<p>{escape(report.metric.name)} of {len(report.runs)} result file(s); made by wrobust {__version__}.</p>"]
    parts += [f'<p class="note">{escape(n)}</p>' for n in report.notes]
    if report.figures:
        parts.append("<h2>Figures</h2>")
        parts += [_figure(f.kind, f.caption, f.figure) for f in report.figures]
    if report.comparison is not None:
        parts += _comparison(report)
    parts.append("<h2>Runs</h2>")
    for run in report.runs:
        parts.append(f"<h3>{escape(run.title)}</h3>")
        parts.append(_table(Table("", ["meta", "value"], [list(kv) for kv in run.meta]), css="meta"))
        parts += [f"<h4>{escape(t.heading)}</h4>" + _table(t) for t in run.tables]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _figure(kind: str, caption: str, fig: object) -> str:
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    return (f'<figure id="figure-{kind}"><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _comparison(report: Report) -> list[str]:
    c = report.comparison
    title, heads, rows = comparison_table(c)
    items = "".join(f"<li>{escape(line)}</li>" for line in key_lines(c))
    lines = "".join(f"<li>{escape(line)}</li>" for line in [*where_better(c), *only_lines(c), *c.notes])
    return ["<h2>Comparison</h2>", f"<ul>{items}</ul>", f"<p>{escape(title)}.</p>",
            _table(Table("", heads, rows), css="comparison"), f"<ul>{lines}</ul>"]


def _table(table: Table, css: str = "summary") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
