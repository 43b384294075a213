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

from ..bits.model import bits_document
from ..bits.tensor import CHANNEL_COLUMN
from .files import atomic_write, jsonable
from .formats import BITS_SUFFIXES, check_output_path
from .text import fit_names


def _num(x: float, fmt: str) -> str:
    return "inf" if x == math.inf else "-" if x is None or math.isnan(x) else format(x, fmt)


def bits_table(frame: pd.DataFrame) -> tuple[str, list[str], list[list[str]], list[str]]:
    """``(title, headers, rows, notes)`` of a ``bits.effective_bits`` frame; the last row is the total.
    ``scales`` appears where a distortion's code carries scales, ``chan est`` for ``addnorm``."""
    meta, total = frame.attrs.get("meta", {}), frame.attrs["total"]
    scales, channel = bool(frame["scale_bits"].notna().any()), CHANNEL_COLUMN in frame
    heads = ["tensor", "shape", "weights", "distinct", "bits/w"] + (["scales"] if scales else []) + ["values"]
    rows = [[r.name, "x".join(map(str, r.shape)) or "scalar", f"{r.weights:,}", f"{r.distinct:,}",
             _num(r.bits_per_weight, ".3f")] + ([_num(r.scale_bits, ".3f")] if scales else [])
            + [_kind(r.resolution)] + ([_num(getattr(r, CHANNEL_COLUMN), ".3f")] if channel else [])
            for r in frame.itertuples()]
    rows.append(["total", "", f"{total['weights']:,}", "", _num(total["bits_per_weight"], ".3f")]
                + ([_num(total["scale_bits"], ".3f")] if scales else []) + [total.get("kind", "exact")]
                + ([_num(total[CHANNEL_COLUMN], ".3f")] if channel else []))
    heads += ["chan est"] if channel else []
    return _bits_title(meta), heads, rows, _bits_notes(frame, meta, total)


def _kind(resolution: int | None) -> str:
    return "exact" if resolution is None or resolution != resolution else "grid"


def _bits_title(meta: dict) -> str:
    title = f"{meta.get('model', 'model')}: effective bits per weight"
    if meta.get("distortion"):
        s = f" {meta['strength_name']}={meta['strength']:g}" if meta.get("strength") is not None else ""
        title += f" after {meta['distortion']}{s}" + (f" (seed {meta.get('seed', 0)})" if meta.get("random") else "")
    return title


def _bits_notes(frame: pd.DataFrame, meta: dict, total: dict) -> list[str]:
    notes = (_total_note(frame, total), _group_note(frame), _scale_note(frame), _grid_note(frame, meta),
             _mixed_note(total, len(frame)), _channel_note(frame))
    return [note for note in notes if note] + list(meta.get("notes", []))


def _total_note(frame: pd.DataFrame, total: dict) -> str:
    bits, n = total["bits_per_weight"], total["weights"]
    scales = total.get("scale_bits", math.nan)
    extra = "" if scales != scales else f" (+{scales:.3f} bits/w of scales: {scales * n / 8 / 1024:,.2f} KiB)"
    ratio = f"{32 / bits:.1f}x" if bits > 0 else "inf"
    return (f"total: {n:,} weights at {bits:.3f} bits/w{extra} = {total['kib_entropy']:,.2f} KiB entropy-coded, "
            f"vs {total['kib_float32']:,.2f} KiB as float32 ({ratio} smaller)")


def _group_note(frame: pd.DataFrame) -> str:
    if not (frame["groups"] > 1).any():
        return ""
    return ("per channel: bits/w is the entropy of the code within each scale group (output channel), "
            "count-weighted; 'distinct' is the most values in one group")


def _scale_note(frame: pd.DataFrame) -> str:
    if not frame["scale_bits"].notna().any():
        return ""
    storage = sorted(set(frame.loc[frame["scale_bits"].notna(), "storage_bits"]))
    return (f"scales: side information, one stored scale ({'/'.join(map(str, storage))} bits) per scale group, "
            f"in bits per weight; not counted in bits/w")


def _grid_note(frame: pd.DataFrame, meta: dict) -> str:
    grid = frame[frame["resolution"].notna()]
    if not len(grid):
        return ""
    b, span = int(grid["resolution"].iloc[0]), meta.get("grid_span_std", 4)
    return (f"grid: {len(grid)} of {len(frame)} tensors are continuous (their values barely repeat): entropy on "
            f"2^{b} levels spanning mean +- {span:g} std of each scale group, bias-corrected; it grows with "
            f"--resolution, and 'distinct' counts the occupied levels")


def _mixed_note(total: dict, tensors: int) -> str:
    if total.get("kind") != "mixed":
        return ""
    return (f"mixed: the total adds exact figures ({total['exact_weights']:,} weights) and grid figures "
            f"({total['weights'] - total['exact_weights']:,} weights) of the {tensors} tensors")


def _channel_note(frame: pd.DataFrame) -> str:
    if CHANNEL_COLUMN not in frame:
        return ""
    return ("chan est: Gaussian channel estimate 0.5*log2(1 + var(w)/(sigma*a)^2) of the noise's capacity per "
            "weight; an estimate, not the entropy of the weights")


def render_bits(frame: pd.DataFrame, console: Console) -> None:
    """The table at the console's width: tensor names are shortened, keeping their distinguishing end."""
    title, heads, rows, notes = bits_table(frame)
    names = fit_names([r[0] for r in rows[:-1]], console.width - _others_width(heads, rows))
    console.print(title, markup=False, highlight=False)  # a line of its own: not wrapped to the table's width
    for line in frame.attrs.get("meta", {}).get("selection", []):
        console.print(line, markup=False, highlight=False)
    table = Table(show_edge=False, pad_edge=False)
    for i, h in enumerate(heads):
        table.add_column(h, justify="left" if i < 2 else "right", no_wrap=i > 0, overflow="fold")
    for i, row in enumerate(rows):
        table.add_row(*map(escape, [names[i] if i < len(names) else row[0], *row[1:]]), end_section=i == len(rows) - 2)
    console.print(table)
    for note in notes:
        console.print(note, markup=False, highlight=False)


def _others_width(heads: list[str], rows: list[list[str]]) -> int:
    """Characters taken by every column but the first, with the separators (`` │ ``) between columns."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads) if i > 0]
    return sum(widths) + 3 * len(widths)


def bits_markdown(frame: pd.DataFrame) -> str:
    title, heads, rows, notes = bits_table(frame)
    selection = [f"{line}\n" for line in frame.attrs.get("meta", {}).get("selection", [])]
    lines = [f"# {title}\n", *selection, "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
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
