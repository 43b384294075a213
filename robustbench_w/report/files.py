"""Writing results to files by suffix, atomically.

Writers: ``.csv`` and ``.jsonl`` (the rows), ``.parquet`` (the rows; needs pyarrow), ``.json``
(``{"meta", "rows", "summary"}``, and ``"ranking"`` for a per-layer sweep), ``.md`` (the summary tables, or a
per-layer sweep's ranking). Files are written atomically: a failed
write leaves any earlier file of that name as it was (``load.writing.atomic_write``: the temporary file is
fsynced before the rename and removed on every failure path).

One rule for numbers that are not available (an unlabelled ``error``, a one-trial interval, ``eff_bits`` of
a continuous point): they are NaN everywhere. CSV writes an empty field, Parquet a NaN, JSON and JSON lines
the token ``NaN`` (infinities ``Infinity``), as Python's ``json`` module writes and reads them, so that
``json.load`` and every pandas reader (``pd.read_json``, ``pd.DataFrame(doc["rows"])``) give float columns.
A setting that does not apply (a bits layer's ``resolution`` where it was counted exactly) is ``null``.

Partial results (an interrupted run: ``meta["partial"]``) say so in their content: ``.json`` in its meta,
``.md`` in its first line, and ``.csv`` in a first line ``# PARTIAL: ...`` before the header (the results
reader skips it; pandas reads such a file with ``skiprows=1``). The command writes them to
``NAME.partial.SUFFIX`` (:func:`.formats.partial_path`), never over an earlier complete ``NAME.SUFFIX``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import InvalidValueError
from ..load.writing import atomic_write
from .formats import OUTPUT_SUFFIXES, check_output_path, partial_path  # noqa: F401  (the writers' suffixes)
from .sweep import layer_ranking, summary_markdown


def jsonable(value: object) -> object:
    """Plain Python values for ``json.dumps``: numpy scalars become Python numbers; a number that is not
    available stays a float NaN (written ``NaN``, as ``json`` and pandas read it), ``None`` stays null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    return [jsonable(r) for r in frame.to_dict(orient="records")]


def write_results(path: Path, rows: pd.DataFrame, summary: pd.DataFrame, meta: dict, markdown: str | None = None) -> Path:
    """Write sweep results to ``path``, in the format its suffix names."""
    suffix = path.suffix.lower()
    check_output_path(path)
    if suffix == ".csv":
        return atomic_write(path, lambda p: _to_csv(rows, p, partial_marker(meta)))
    if suffix == ".jsonl":
        return atomic_write(path, lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in records(rows))))
    if suffix == ".parquet":
        return atomic_write(path, lambda p: _to_parquet(rows, p))
    if suffix == ".md":
        return atomic_write(path, lambda p: p.write_text(markdown or summary_markdown(summary)))
    doc = {"meta": jsonable(meta), "rows": records(rows), "summary": records(summary)}
    ranking = layer_ranking(summary, meta)
    if ranking is not None:  # a per-layer sweep: the layers ranked at each point (report.ranking)
        doc["ranking"] = jsonable(ranking)
    return atomic_write(path, lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))


def partial_marker(meta: dict) -> str:
    """The first line of a partial ``.csv`` (``# PARTIAL: 3 of 10 points ...``), '' for a complete result."""
    if not meta.get("partial"):
        return ""
    return (f"# PARTIAL: {meta.get('points_done', '?')} of {meta.get('points_planned', '?')} points "
            "(the run was interrupted)\n")


def _to_csv(rows: pd.DataFrame, path: Path, marker: str) -> None:
    with open(path, "w", newline="") as f:
        f.write(marker)
        rows.to_csv(f, index=False)


def _to_parquet(rows: pd.DataFrame, path: Path) -> None:
    try:
        rows.to_parquet(path, index=False)
    except ImportError:
        raise InvalidValueError("writing .parquet needs pyarrow: pip install 'robustbench_w[parquet]'") from None
