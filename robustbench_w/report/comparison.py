"""The ``wrobust compare`` report: the table of common points on the terminal and in Markdown, the points
that only some files have, where each model is better, and the ``-o`` files (``.csv``, ``.json``, ``.md``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .compare import (
    NO_CLEAR,
    NO_INTERVAL,
    NO_VALUE,
    NOT_DISTORTED,
    Comparison,
    diff_col,
    high_col,
    low_col,
    margin_col,
    mean_col,
    only_lines,
    verdict_col,
    where_better,
)
from .files import atomic_write, jsonable, records
from .formats import COMPARE_SUFFIXES, check_output_path

SHORT_VERDICTS = {NO_CLEAR: "neither", NO_INTERVAL: "not judged", NO_VALUE: "not judged", NOT_DISTORTED: "clean"}


def _value(c: Comparison, r: pd.Series, label: str) -> str:
    m = c.metric
    mean, low, high = r[mean_col(label)], r[low_col(label)], r[high_col(label)]
    if low != low or high != high or low == high:
        return m.text(mean)
    return f"{m.text(mean)} [{m.text(low)}, {m.text(high)}]"


def _difference(c: Comparison, r: pd.Series, label: str) -> str:
    m, ref = c.metric, c.reference
    diff, limit = r[diff_col(label, ref)], r[margin_col(label, ref)]
    if diff != diff:
        return "-"
    shown = m.shown(diff)
    text = f"{shown:+.2f}" if m.fraction else f"{shown:+.4g}"
    return text if limit != limit else f"{text} ± {m.text(limit)}"


def letters(c: Comparison) -> dict[str, str]:
    """Short names of the series in tables: A (the reference), B, C, ..."""
    return {label: _letter(i) for i, label in enumerate(c.labels)}


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"S{i + 1}"


def key_lines(c: Comparison) -> list[str]:
    names = letters(c)
    return [f"{names[s['label']]} = {s['label']} ({s['file']}){', the reference' if i == 0 else ''}"
            for i, s in enumerate(c.sources)]


def comparison_table(c: Comparison) -> tuple[str, list[str], list[list[str]]]:
    """``(title, headers, rows)`` of the common points, in the metric's shown units; series by letter."""
    names, ref = letters(c), c.reference
    unit = f" ({c.metric.unit})" if c.metric.unit else ""
    diff_unit = f" ({c.metric.difference_unit})" if c.metric.difference_unit else ""
    heads = ["point", *(f"{names[label]}{unit}" for label in c.labels)]
    for label in c.others():
        heads += [f"{names[label]} − {names[ref]}{diff_unit}", "better" if len(c.labels) == 2 else f"better ({names[label]})"]
    body = []
    for _, r in c.points.iterrows():
        row = [r["point"], *(_value(c, r, label) for label in c.labels)]
        for label in c.others():
            verdict = r[verdict_col(label, ref)]
            row += [_difference(c, r, label), names.get(verdict, SHORT_VERDICTS.get(verdict, verdict))]
        body.append(row)
    better = "higher" if c.metric.higher_is_better else "lower"
    title = (f"{c.metric.name}{unit} at {len(c.points)} common point(s): mean [95% interval over trials]; "
             f"difference ± margin; better: clearly {better} {c.metric.name}")
    return title, heads, body


def _lines(c: Comparison) -> list[str]:
    return [*where_better(c), *only_lines(c), *(f"note: {n}" for n in c.notes)]


def render_comparison(c: Comparison, console: Console) -> None:
    title, heads, body = comparison_table(c)
    for line in key_lines(c):
        console.print(line, markup=False, highlight=False)
    table = Table(title=escape(title), title_justify="left", show_edge=False, pad_edge=False)
    for i, h in enumerate(heads):
        table.add_column(escape(h), justify="left" if i == 0 or h.startswith("better") else "right")
    for row in body:
        table.add_row(*map(escape, row))
    console.print(table)
    for line in _lines(c):
        console.print(line, markup=False, highlight=False)


def comparison_markdown(c: Comparison, heading: str = "# wrobust compare") -> str:
    title, heads, body = comparison_table(c)
    lines = [f"{heading}\n", *(f"- {k}" for k in key_lines(c)), "", f"{title}.\n",
             "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join([*lines, "", *(f"- {line}" for line in _lines(c))]) + "\n"


def comparison_document(c: Comparison) -> dict:
    return {"metric": c.metric.name, "higher_is_better": c.metric.higher_is_better, "reference": c.reference,
            "series": c.sources, "points": records(c.points), "only": records(c.only), "where": where_better(c),
            "notes": c.notes}


def write_comparison(path: Path, c: Comparison) -> Path:
    """``.csv``: the common points (values in the metric's own units) then the others (column ``in``);
    ``.json``: the whole comparison; ``.md``: the table and the lines."""
    check_output_path(path, COMPARE_SUFFIXES)
    suffix = path.suffix.lower()
    if suffix == ".md":
        return atomic_write(path, lambda p: p.write_text(comparison_markdown(c)))
    if suffix == ".csv":
        table = pd.concat([c.points.assign(**{"in": "all"}), c.only], ignore_index=True)
        return atomic_write(path, lambda p: table.to_csv(p, index=False))
    doc = jsonable(comparison_document(c))
    return atomic_write(path, lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))
