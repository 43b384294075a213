"""Rendering and writing results: rich tables on the terminal, tidy files by suffix.

Writers: ``.csv`` and ``.jsonl`` (the rows), ``.parquet`` (the rows; needs pyarrow), ``.json``
(``{"meta", "rows", "summary"}``), ``.md`` (the summary tables). Files are written atomically: a failed
write leaves any earlier file of that name as it was.
"""

from __future__ import annotations

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


# ------------------------------------------------------------------ consoles and progress

def stdout_console() -> Console:
    return Console(soft_wrap=False)


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
