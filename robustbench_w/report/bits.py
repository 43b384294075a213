"""The ``wrobust bits`` report: the per-tensor table on the terminal, Markdown, and the ``.json``/``.csv``/``.md``
files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..bits import CHANNEL_COLUMN, bits_document
from .files import atomic_write, check_output_path, jsonable

BITS_SUFFIXES = (".json", ".csv", ".md")


def _num(x: float, fmt: str) -> str:
    return "inf" if x == math.inf else "-" if x is None or math.isnan(x) else format(x, fmt)


def bits_table(frame: pd.DataFrame) -> tuple[str, list[str], list[list[str]], list[str]]:
    """``(title, headers, rows, notes)`` of a ``bits.effective_bits`` frame; the last row is the total."""
    meta, total = frame.attrs.get("meta", {}), frame.attrs["total"]
    channel = CHANNEL_COLUMN in frame
    heads = ["tensor", "shape", "weights", "distinct", "bits/w", "values", "storage bits", "ratio"]
    rows = [[r.name, "x".join(map(str, r.shape)) or "scalar", f"{r.weights:,}", f"{r.distinct:,}",
             _num(r.bits_per_weight, ".3f"), _grid(r.resolution), str(r.storage_bits), _num(r.compression, ".1f") + "x"]
            + ([_num(getattr(r, CHANNEL_COLUMN), ".3f")] if channel else []) for r in frame.itertuples()]
    ratio = 32 / total["bits_per_weight"] if total["bits_per_weight"] > 0 else math.inf
    rows.append(["total", "", f"{total['weights']:,}", "", _num(total["bits_per_weight"], ".3f"),
                 _grid(total["resolution"]), "32 (float32)", _num(ratio, ".1f") + "x"]
                + ([_num(total[CHANNEL_COLUMN], ".3f")] if channel else []))
    return _bits_title(meta), heads + (["channel est."] if channel else []), rows, _bits_notes(frame, meta, total)


def _grid(resolution: int | None) -> str:
    return "exact" if resolution is None or resolution != resolution else f"{int(resolution)}-bit grid"


def _bits_title(meta: dict) -> str:
    title = f"{meta.get('model', 'model')}: effective bits per weight"
    if meta.get("distortion"):
        s = f" {meta['strength_name']}={meta['strength']:g}" if meta.get("strength") is not None else ""
        title += f" after {meta['distortion']}{s}" + (f" (seed {meta.get('seed', 0)})" if meta.get("random") else "")
    return title


def _bits_notes(frame: pd.DataFrame, meta: dict, total: dict) -> list[str]:
    notes = [f"total: {total['weights']:,} weights at {total['bits_per_weight']:.3f} bits/w = "
             f"{total['kib_entropy']:,.2f} KiB entropy-coded, vs {total['kib_float32']:,.2f} KiB as float32"]
    grid = frame[frame["resolution"].notna()]
    if len(grid):
        b, limit = int(grid["resolution"].iloc[0]), meta.get("max_distinct")
        notes.append(f"{b}-bit grid: {len(grid)} of {len(frame)} tensors have more than {limit or 0:,} distinct values "
                     f"(continuous); their entropy is that of the weights quantised to 2^{b} uniform levels over [-a, a], "
                     f"a = max|w| of the tensor: it grows with --resolution; 'distinct' counts the occupied levels")
    dense = frame[frame["resolution"].isna() & (frame["distinct"] > frame["weights"] / 2)
                  & (frame["distinct"] > 2 ** meta.get("resolution", 8))]
    if len(dense):
        notes.append(f"{len(dense)} tensor(s) have nearly all values distinct: their exact entropy is about log2(weights) "
                     f"and measures their size, not their precision; a lower --max-distinct puts them on the grid")
    if CHANNEL_COLUMN in frame:
        notes.append("channel est.: Gaussian channel estimate 0.5*log2(1 + var(w)/(sigma*a)^2) of the noise's "
                     "capacity per weight; an estimate, not the entropy of the weights")
    return notes + list(meta.get("notes", []))


def render_bits(frame: pd.DataFrame, console: Console) -> None:
    title, heads, rows, notes = bits_table(frame)
    table = Table(title=escape(title), title_justify="left", show_edge=False, pad_edge=False)
    for i, h in enumerate(heads):
        table.add_column(h, justify="left" if i < 2 else "right")
    for i, row in enumerate(rows):
        table.add_row(*map(escape, row), end_section=i == len(rows) - 2)
    console.print(table)
    for note in notes:
        console.print(note, markup=False, highlight=False)


def bits_markdown(frame: pd.DataFrame) -> str:
    title, heads, rows, notes = bits_table(frame)
    lines = [f"# {title}\n", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def write_bits(path: Path, frame: pd.DataFrame) -> Path:
    """``.json``: ``{"meta", "layers", "total"}``; ``.csv``: one row per tensor; ``.md``: the table."""
    check_output_path(path, BITS_SUFFIXES)
    suffix = path.suffix.lower()
    if suffix == ".md":
        return atomic_write(path, lambda p: p.write_text(bits_markdown(frame)))
    if suffix == ".csv":
        flat = frame.assign(shape=["x".join(map(str, s)) for s in frame["shape"]])
        return atomic_write(path, lambda p: flat.to_csv(p, index=False))
    doc = jsonable(bits_document(frame))
    return atomic_write(path, lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))
