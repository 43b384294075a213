"""The ``wrobust targets`` report: every parameter with its role and selection, the coverage line, the files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..engine.weights.coverage import coverage_text
from .files import atomic_write, jsonable, records
from .formats import TARGETS_SUFFIXES, check_output_path


def target_rows(frame: pd.DataFrame, chosen: bool) -> tuple[list[str], list[list[str]]]:
    """``(headers, rows)``: name, shape, role, weights, default (and selected, where ``chosen``)."""
    heads = ["parameter", "shape", "role", "weights", "default"] + (["selected"] if chosen else [])
    rows = [[r.name, "x".join(map(str, r.shape)) or "scalar", r.role, f"{r.weights:,}", "yes" if r.default else "-"]
            + (["yes" if r.selected else "-"] if chosen else []) for r in frame.itertuples()]
    return heads, rows


def render_targets(frame: pd.DataFrame, console: Console, chosen: bool = False) -> None:
    """The table, then the coverage line (what a sweep would distort), the notes of a selection by shape and any
    low-coverage warning."""
    heads, rows = target_rows(frame, chosen)
    table = Table(title=escape(f"{frame.attrs['meta'].get('model')}: parameters and targets"), show_edge=False)
    for h in heads:
        table.add_column(h, justify="right" if h == "weights" else "left")
    for row in rows:
        table.add_row(*map(escape, row))
    console.print(table)
    cov = frame.attrs["coverage"]
    for line in [coverage_text(cov, "selected"), *frame.attrs.get("notes", [])]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if cov.get("warning"):
        console.print(f"warning: {cov['warning']}", markup=False, highlight=False, soft_wrap=True)


def write_targets(path: Path, frame: pd.DataFrame) -> Path:
    """``.csv``: one row per parameter; ``.json``: ``{"meta", "coverage", "parameters": [...]}``."""
    check_output_path(path, TARGETS_SUFFIXES)
    table = frame.assign(shape=["x".join(map(str, s)) for s in frame["shape"]])
    if path.suffix.lower() == ".csv":
        return atomic_write(path, lambda p: table.to_csv(p, index=False))
    doc = {"meta": frame.attrs["meta"], "coverage": frame.attrs["coverage"],
           "parameters": records(frame.assign(shape=[list(s) for s in frame["shape"]]))}
    text = json.dumps(jsonable(doc), indent=1) + "\n"
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
