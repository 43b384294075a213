"""Merging the results of shards (``--shard I/N``), of torchrun processes and of resumed runs into one.

Sources: run logs (``--log``; a ``.jsonl`` file whose first line is a wrobust-log header) and result files
(``-o``: ``.json``, ``.csv``, ``.jsonl``, ``.parquet``). They must come from one run: the same model (by its
file's hash where both sides record one, else by name), dataset, split, size, seed and targets, as far as
each file records them (a CSV records model, dataset, size and seed in its rows; a log or a JSON file all of
them), and the coverage of the targets (``meta.coverage``: what they distort and leave clean), which the merged
meta keeps; anything else is refused. Points are identified by :func:`..engine.runs.points.row_key`. A point found in
two files is a duplicate: kept once (the first), and reported; duplicates whose numbers differ are
reported as conflicts. Every file repeats the clean model's row; it is kept once and not reported. Where a
source records the whole grid (a log, a JSON file of a shard or of a partial run), points of the grid that no
file holds are reported as missing, and the merged rows follow the grid's order (the order of one
uninterrupted run); otherwise rows keep the order in which the files give them.

Result files are read with :func:`.results.load_results` (the reader ``plot``, ``compare`` and ``report`` use);
logs with :func:`..engine.runs.runlog.read_log`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..engine.runs.points import CLEAN_KEY, row_key
from ..engine.runs.runlog import IDENTITY, differences, derived_identity, is_header, read_log
from ..engine.runs.sweep import ROW_COLUMNS
from ..errors import InputFileError
from .results import load_results

MEASURES = ("n", "accuracy", "error", "loss", "agreement", "weight_change")  # compared between duplicates


@dataclass
class Source:
    """One file's rows, what it says about its run, and the grid it belongs to (None when it does not say)."""

    path: Path
    rows: list[dict]
    identity: dict
    grid: list[str] | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class Merged:
    rows: pd.DataFrame
    meta: dict
    missing: list[str]
    duplicates: list[str]
    conflicts: list[str]


# ------------------------------------------------------------------ reading

def read_source(path: Path) -> Source:
    """A run log (a ``.jsonl`` file that starts with a log header) or a result file (:func:`.results.load_results`)."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl" and path.is_file() and _starts_with_header(path):
        contents = read_log(path)
        head = contents.header or {}
        return Source(path, contents.rows, _identity(head), head.get("points"), head)
    result = load_results(path)
    if result.rows.empty or "trial" not in result.rows.columns:
        raise InputFileError(f"{path}: holds a summary, not result rows (merge the shards' logs or their "
                             "-o .json/.csv/.jsonl/.parquet files)")
    rows = result.rows.to_dict(orient="records")
    identity = {**_rows_identity(path, rows), **_identity(result.meta)}
    return Source(path, rows, identity, result.meta.get("grid"), result.meta)


def _starts_with_header(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return is_header(json.loads(f.readline()))
    except (OSError, ValueError):
        return False


def _identity(meta: dict) -> dict:
    return {**{k: meta[k] for k in (*IDENTITY, "model_sha256") if meta.get(k) is not None}, **derived_identity(meta)}


def _rows_identity(path: Path, rows: Sequence[dict]) -> dict:
    """What the rows themselves say about their run (model, dataset, seed, n), checked to be one run."""
    out = {}
    for col in ("model", "dataset", "seed", "n"):
        values = {_plain(r[col]) for r in rows if col in r}
        if len(values) > 1:
            raise InputFileError(f"{path}: rows of more than one run ({col}: {', '.join(sorted(map(str, values)))})")
        if values:
            out[col] = values.pop()
    return out


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------ merging

def merge_files(paths: Iterable[Path | str]) -> Merged:
    """Merge the rows of ``paths`` (see the module docstring); raises :class:`InputFileError` for files of
    different runs."""
    sources = [read_source(Path(p)) for p in paths]
    if not sources:
        raise InputFileError("nothing to merge: give the shard logs or result files")
    first = sources[0]
    for s in sources[1:]:
        found = differences(first.identity, s.identity)
        if found:
            raise InputFileError(f"{s.path} does not belong with {first.path}: {'; '.join(found)}")
    coverage = _coverage(sources)
    rows, duplicates, conflicts = _combine(sources)
    grid = _grid(sources)
    missing = [k for k in grid if k not in rows] if grid else []
    ordered = _ordered(rows, grid)
    frame = pd.DataFrame(ordered)
    frame = frame[[c for c in ROW_COLUMNS if c in frame.columns] + [c for c in frame.columns if c not in ROW_COLUMNS]]
    meta = _merged_meta(sources, grid, missing, duplicates, len(ordered))
    if coverage is not None:
        meta["coverage"] = coverage
    return Merged(frame, meta, missing, duplicates, conflicts)


def _coverage(sources: Sequence[Source]) -> dict | None:
    """The coverage block (``meta.coverage``) the sources record, which all of them must agree on (a file that
    records none, such as a CSV, is not compared); None when none records it."""
    recorded = [s for s in sources if isinstance(s.meta.get("coverage"), dict)]
    for s in recorded[1:]:
        if s.meta["coverage"] != recorded[0].meta["coverage"]:
            raise InputFileError(f"{s.path} does not belong with {recorded[0].path}: their coverage differs "
                                 "(what the targets distort and leave clean)")
    return recorded[0].meta["coverage"] if recorded else None


def _combine(sources: Sequence[Source]) -> tuple[dict[str, dict], list[str], list[str]]:
    rows: dict[str, dict] = {}
    duplicates, conflicts = [], []
    for s in sources:
        for row in s.rows:
            key = row_key(row)
            if key not in rows:
                rows[key] = row
            elif key != CLEAN_KEY or not _same(rows[key], row):
                (duplicates if _same(rows[key], row) else conflicts).append(key)
    return rows, duplicates, conflicts


def _same(a: dict, b: dict) -> bool:
    for col in MEASURES:
        x, y = a.get(col), b.get(col)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            if not (math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0) or (math.isnan(x) and math.isnan(y))):
                return False
        elif x != y:
            return False
    return True


def _grid(sources: Sequence[Source]) -> list[str]:
    """The union of the grids the sources record, in the order of their first appearance."""
    seen: dict[str, None] = {}
    for s in sources:
        for key in s.grid or ():
            seen.setdefault(key)
    return list(seen)


def _ordered(rows: dict[str, dict], grid: list[str]) -> list[dict]:
    order = [CLEAN_KEY] + [k for k in grid if k != CLEAN_KEY]
    keys = [k for k in order if k in rows] + [k for k in rows if k not in set(order)]
    return [rows[k] for k in keys]


def _merged_meta(sources: Sequence[Source], grid: list[str], missing: list[str], duplicates: list[str],
                 count: int) -> dict:
    meta = {k: v for k, v in sources[0].meta.items() if k not in ("points", "grid", "format", "kind", "created")}
    meta.update(sources[0].identity)
    meta.update({"merged_from": [str(s.path) for s in sources], "points_done": count - 1,
                 "points_planned": len(grid) or None, "points_missing": len(missing), "duplicates": len(duplicates),
                 "partial": bool(missing), "shard": None})
    if missing:
        meta["grid"] = grid
    return meta
