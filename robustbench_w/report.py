"""Rendering and writing results: rich tables on the terminal, tidy files by suffix.

Writers: ``.csv`` and ``.jsonl`` (the rows), ``.parquet`` (the rows; needs pyarrow), ``.json``
(``{"meta", "rows", "summary"}``), ``.md`` (the summary tables). Files are written atomically: a failed
write leaves any earlier file of that name as it was.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import InputFileError, InvalidValueError

OUTPUT_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet", ".md")


def check_output_path(path: Path, suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> Path:
    """Validate an output path before any work is done: known suffix, existing writable folder."""
    if path.suffix.lower() not in suffixes:
        raise InvalidValueError(f"{path}: unknown output format {path.suffix or '(no suffix)'!r} (use {', '.join(suffixes)})")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputFileError(f"{path}: folder {folder} does not exist")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory")
    if not os.access(folder, os.W_OK):
        raise InputFileError(f"{path}: folder {folder} is not writable")
    if path.suffix.lower() == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise InvalidValueError(f"{path}: writing .parquet needs pyarrow: pip install 'robustbench_w[parquet]'")
    return path


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` then move ``tmp`` over ``path``; on failure ``path`` is untouched."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def jsonable(value: object) -> object:
    """NaN and infinities become null; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    return [jsonable(r) for r in frame.to_dict(orient="records")]


def write_results(path: Path, rows: pd.DataFrame, summary: pd.DataFrame, meta: dict, markdown: str | None = None) -> Path:
    """Write sweep results to ``path``, in the format its suffix names."""
    suffix = path.suffix.lower()
    check_output_path(path)
    if suffix == ".csv":
        return atomic_write(path, lambda p: rows.to_csv(p, index=False))
    if suffix == ".jsonl":
        return atomic_write(path, lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in records(rows))))
    if suffix == ".parquet":
        return atomic_write(path, lambda p: _to_parquet(rows, p))
    if suffix == ".md":
        return atomic_write(path, lambda p: p.write_text(markdown or summary_markdown(summary)))
    doc = {"meta": jsonable(meta), "rows": records(rows), "summary": records(summary)}
    return atomic_write(path, lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))


def _to_parquet(rows: pd.DataFrame, path: Path) -> None:
    try:
        rows.to_parquet(path, index=False)
    except ImportError:
        raise InvalidValueError("writing .parquet needs pyarrow: pip install 'robustbench_w[parquet]'") from None


# ------------------------------------------------------------------ formatting

def pct(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def ci_text(low: float, high: float) -> str:
    if any(v is None or math.isnan(v) for v in (low, high)):
        return "-"
    return f"[{pct(low)}, {pct(high)}]"


def strength_text(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:g}"


def summary_tables(summary: pd.DataFrame) -> Iterator[tuple[str, str, list[list[str]]]]:
    """``(spec, strength name, table rows)`` per distortion spec, clean model excluded."""
    for spec, g in summary[summary["distortion"] != "none"].groupby("spec", sort=False):
        body = [[strength_text(r.strength), pct(r.error_mean), ci_text(r.error_ci_low, r.error_ci_high),
                 pct(r.agreement_mean), f"{r.weight_change_mean:.3f}", str(r.trials)]
                + ([_bits(r)] if "eff_bits" in summary.columns else []) for r in g.itertuples()]
        yield spec, g["strength_name"].iloc[0] or "strength", body


def _bits(r) -> str:
    v = getattr(r, "eff_bits", math.nan)
    return "-" if v is None or math.isnan(v) else f"{v:.3f}"


def headers(strength_name: str, with_bits: bool) -> list[str]:
    return [strength_name, "error %", "95% CI", "agree %", "Δw", "trials"] + (["bits/w"] if with_bits else [])


def clean_line(summary: pd.DataFrame, meta: dict) -> str:
    clean = summary[summary["distortion"] == "none"].iloc[0]
    err = "n/a (no labels)" if math.isnan(clean.error_mean) else f"{pct(clean.error_mean)}%"
    return (f"{meta.get('model')} on {meta.get('dataset')} ({meta.get('split', 'test')}, n={meta.get('n')}): "
            f"clean error {err}; {len(meta.get('targets', []))} tensors, {meta.get('target_weights', 0):,} weights "
            f"distorted; seed {meta.get('seed')}; {meta.get('device')}")


def render_sweep(summary: pd.DataFrame, meta: dict, console: Console) -> None:
    console.print(clean_line(summary, meta), markup=False, highlight=False)
    with_bits = "eff_bits" in summary.columns
    for spec, strength_name, body in summary_tables(summary):
        table = Table(title=escape(spec), title_justify="left", show_edge=False, pad_edge=False)
        for i, h in enumerate(headers(strength_name, with_bits)):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in body:
            table.add_row(*map(escape, row))
        console.print(table)


def summary_markdown(summary: pd.DataFrame, meta: dict | None = None) -> str:
    lines = [f"# wrobust sweep\n\n{clean_line(summary, meta)}\n"] if meta else ["# wrobust sweep\n"]
    with_bits = "eff_bits" in summary.columns
    for spec, strength_name, body in summary_tables(summary):
        head = headers(strength_name, with_bits)
        lines += [f"## {spec}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------ effective bits (wrobust bits, --target-error)

BITS_SUFFIXES = (".json", ".csv", ".md")


def _num(x: float, fmt: str) -> str:
    return "inf" if x == math.inf else "-" if x is None or math.isnan(x) else format(x, fmt)


def bits_table(frame: pd.DataFrame) -> tuple[str, list[str], list[list[str]], list[str]]:
    """``(title, headers, rows, notes)`` of a ``bits.effective_bits`` frame; the last row is the total."""
    from .bits import CHANNEL_COLUMN

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
    from .bits import CHANNEL_COLUMN

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
    return notes


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
    from .bits import bits_document

    check_output_path(path, BITS_SUFFIXES)
    suffix = path.suffix.lower()
    if suffix == ".md":
        return atomic_write(path, lambda p: p.write_text(bits_markdown(frame)))
    if suffix == ".csv":
        flat = frame.assign(shape=["x".join(map(str, s)) for s in frame["shape"]])
        return atomic_write(path, lambda p: flat.to_csv(p, index=False))
    doc = jsonable(bits_document(frame))
    return atomic_write(path, lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))


def lowest_bits_lines(table: pd.DataFrame, max_error: float) -> list[str]:
    """The ``--target-error`` report: per discrete distortion, the lowest-bits point meeting the error."""
    head = f"lowest bits meeting error <= {pct(max_error)}%:"
    if table.empty:
        from .distortions import list_distortions

        discrete = ", ".join(i.name for i in list_distortions() if i.discrete)
        return [f"{head} no discrete distortion was swept (effective bits are defined for {discrete})"]
    lines = [head]
    for r in table.itertuples():
        point = "" if math.isnan(r.strength) else f" at {r.strength_name}={r.strength:g}"
        if r.met:
            lines.append(f"  {r.spec}{point}: {r.eff_bits:.3f} bits/w, error {pct(r.error_mean)}%")
        else:
            best = "no labels" if math.isnan(r.error_mean) else f"lowest error {pct(r.error_mean)}%{point}, {r.eff_bits:.3f} bits/w"
            lines.append(f"  {r.spec}: no point meets it ({best})")
    return lines


def lowest_bits_markdown(table: pd.DataFrame, max_error: float) -> str:
    head, *points = lowest_bits_lines(table, max_error)
    return f"\n## {head.rstrip(':')}\n\n" + "".join(f"- {p.strip()}\n" for p in points) if points else f"\n{head}\n"


# ------------------------------------------------------------------ consoles and progress

PIPE_WIDTH = 160  # output to a file or pipe is not wrapped at 80 columns


def stdout_console() -> Console:
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPE_WIDTH if wide else None)


def stderr_console() -> Console:
    return Console(stderr=True)


@contextmanager
def progress_bar(quiet: bool, description: str = "sweep") -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich progress bar on a terminal's stderr; ``None`` (no output at all) when quiet or piped."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr_console(), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{description}: {label}")

        yield update
