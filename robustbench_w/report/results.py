"""Reading result files back: rows, summary and meta from any file that ``wrobust sweep -o`` wrote (and the
``.json`` of ``gate``, the ``results.csv`` of ``reproduce``).

``.json`` holds ``{"meta", "rows", "summary"}``; ``.csv``, ``.jsonl`` and ``.parquet`` hold the rows, which are
summarised here with :func:`..engine.runs.stats.summarize` (per layer when the rows carry a ``layer`` column), or
a summary itself (a ``trials`` column and no ``trial``: the ``summary.csv`` of ``reproduce``). Every
failure - a missing, unreadable, corrupt or foreign file - is one :class:`InputFileError` that names the file.
A file may hold several models (``reproduce``): each (file, model) is one :class:`Series`, a line in a figure
and a column in a comparison.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..engine.runs.runlog import is_header
from ..engine.runs.stats import summarize
from ..errors import InputFileError, first_line

RESULT_SUFFIXES = (".json", ".csv", ".jsonl", ".parquet")
REQUIRED = ("model", "distortion", "spec", "strength")
TEXT_COLUMNS = ("strength_name", "layer")  # empty text, never NaN
LAYER = "layer"  # rows of a per-layer sweep name the distorted tensor (or group) here

Parsed = tuple[pd.DataFrame | None, pd.DataFrame | None, dict]  # rows, summary, meta


@dataclass(frozen=True)
class ResultFile:
    """One result file: its rows (possibly empty for a summary-only file), summary and meta."""

    path: Path
    rows: pd.DataFrame
    summary: pd.DataFrame
    meta: dict

    @property
    def per_layer(self) -> bool:
        return LAYER in self.summary.columns and bool((self.summary[LAYER] != "").any())


@dataclass(frozen=True)
class Series:
    """One model's results from one file."""

    label: str  # unique among the series shown together
    file: ResultFile
    model: str
    summary: pd.DataFrame
    n: int | None  # evaluated inputs per point, where known


def load_results(path: Path | str) -> ResultFile:
    """Read one result file; :class:`InputFileError` (one line naming the file) for anything wrong with it."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise InputFileError(f"{path}: cannot read {path.suffix or 'a file without suffix'!r} results "
                             f"(use {', '.join(RESULT_SUFFIXES)}; .md files are for people)")
    _check_readable(path)
    rows, summary, meta = reader(path)
    if summary is None and _is_summary(rows):  # a summary written as a table (reproduce's summary.csv)
        rows, summary = None, rows
    rows, summary = _clean(rows), _clean(summary)
    _check_columns(path, summary if rows is None else rows)
    for frame in (rows, summary):
        _check_numbers(path, frame)
    summary = _summary(path, rows, summary)
    rows = rows if rows is not None else pd.DataFrame(columns=list(REQUIRED))
    return ResultFile(path, rows, summary, {**_derived_meta(rows, summary), **meta})


def load_all(paths: Iterable[Path | str]) -> list[ResultFile]:
    return [load_results(p) for p in paths]


def summarize_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`..engine.runs.stats.summarize`, per layer when the rows carry a ``layer`` column it does not group by."""
    summary = summarize(rows)
    if LAYER not in rows.columns or LAYER in summary.columns:
        return summary
    parts = [summarize(g).assign(layer=layer) for layer, g in rows.groupby(LAYER, sort=False)]
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------ readers, one per suffix

def _read_json(path: Path) -> Parsed:
    doc = _json(path, _text(path))
    if not isinstance(doc, dict) or not ({"rows", "summary"} & doc.keys()):
        raise InputFileError(f"{path}: {_foreign(doc)}")
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    return _frame(path, doc.get("rows"), "rows"), _frame(path, doc.get("summary"), "summary"), meta


def _read_jsonl(path: Path) -> Parsed:
    records = []
    for i, line in enumerate(_text(path).splitlines(), 1):
        if line.strip():
            record = _json(path, line, i)
            if not isinstance(record, dict):
                raise InputFileError(f"{path}: line {i} is not a JSON object (a row of results)")
            if is_header(record):
                raise InputFileError(f"{path}: is a run log (--log), not a results file: make it one with "
                                     f"'wrobust merge {path} -o results.json', then use that")
            records.append(record)
    return _frame(path, records, "rows"), None, {}


def _read_csv(path: Path) -> Parsed:
    try:
        partial = _first_line(path).startswith("# PARTIAL")  # an interrupted run's rows (report.files)
        return pd.read_csv(path, skiprows=1 if partial else 0), None, {"partial": True} if partial else {}
    except pd.errors.EmptyDataError:
        raise InputFileError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: not a readable CSV file ({first_line(exc)})") from None


def _first_line(path: Path) -> str:
    with open(path, "rb") as f:
        return f.readline(200).decode("utf-8", "replace")


def _read_parquet(path: Path) -> Parsed:
    try:
        return pd.read_parquet(path), None, {}
    except ImportError:
        raise InputFileError(f"{path}: reading .parquet needs pyarrow: pip install 'robustbench_w[parquet]'") from None
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputFileError(f"{path}: not a readable parquet file ({first_line(exc)})") from None


READERS: dict[str, Callable[[Path], Parsed]] = {
    ".json": _read_json, ".jsonl": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet,
}


# ------------------------------------------------------------------ checks and clean-up

def _check_readable(path: Path) -> None:
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, not a result file")
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not a text file (a {path.suffix} result file is text)") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _json(path: Path, text: str, line: int | None = None) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {line}" if line is not None else f"line {exc.lineno}, column {exc.colno}"
        raise InputFileError(f"{path}: not valid JSON ({exc.msg} at {where})") from None


def _foreign(doc: object) -> str:
    if isinstance(doc, dict) and {"layers", "total"} <= doc.keys():
        return "is a 'wrobust bits' file (effective bits per tensor), not sweep results"
    return 'not a wrobust result file (expected a JSON object with "meta", "rows" and "summary")'


def _frame(path: Path, records: object, what: str) -> pd.DataFrame | None:
    if records is None:
        return None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InputFileError(f"{path}: not a wrobust result file ({what!r} is not a list of objects)")
    return pd.DataFrame(records)


def _clean(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """Numbers as floats (JSON's null is NaN), text columns without NaN."""
    if frame is None:
        return None
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object and frame[col].map(_is_number_or_null).all():
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    for col in TEXT_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return frame


def _is_summary(frame: pd.DataFrame | None) -> bool:
    return frame is not None and "trials" in frame.columns and "trial" not in frame.columns


def _is_number_or_null(v: object) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _check_columns(path: Path, frame: pd.DataFrame | None) -> None:
    if frame is None or frame.empty:
        raise InputFileError(f"{path}: holds no results")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputFileError(f"{path}: not a wrobust result file (no column {', '.join(missing)})")


NUMERIC = ("strength", "trial", "seed", "n", "trials", "accuracy", "error", "loss", "agreement", "weight_change",
           "eff_bits")
STATS = ("_mean", "_std", "_ci_low", "_ci_high")


def _check_numbers(path: Path, frame: pd.DataFrame | None) -> None:
    """A column of numbers (``error``, ``strength``, ``error_mean``, ...) that holds text is a damaged file: one
    line naming the file, the column and the first such value (not a TypeError in a figure)."""
    if frame is None:
        return
    for col in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col])
        if (col in NUMERIC or str(col).endswith(STATS)) and not numeric:
            numbers = pd.to_numeric(frame[col], errors="coerce")
            bad = frame[col][numbers.isna() & frame[col].notna() & (frame[col].astype(str).str.strip() != "")]
            if len(bad):
                i = int(bad.index[0])
                raise InputFileError(f"{path}: column {col!r} holds text where numbers belong ({bad.iloc[0]!r} in "
                                     f"row {i + 1}): the file is damaged")
            frame[col] = numbers.astype(float)


def _summary(path: Path, rows: pd.DataFrame | None, summary: pd.DataFrame | None) -> pd.DataFrame:
    stale = summary is not None and rows is not None and LAYER in rows.columns and LAYER not in summary.columns
    if summary is not None and not stale:
        return summary
    try:
        return summarize_rows(rows)
    except KeyError as exc:
        raise InputFileError(f"{path}: not a wrobust result file (no column {exc})") from None


def _derived_meta(rows: pd.DataFrame, summary: pd.DataFrame) -> dict:
    models = list(dict.fromkeys(summary["model"].astype(str)))
    meta: dict = {"model": ", ".join(models)}
    if "dataset" in summary.columns:
        meta["dataset"] = ", ".join(dict.fromkeys(summary["dataset"].astype(str)))
    if "n" in rows.columns and rows["n"].notna().any():
        meta["n"] = int(rows["n"].max())
    return meta



# ------------------------------------------------------------------ series: one model of one file

def series_of(files: list[ResultFile]) -> list[Series]:
    """One series per (file, model), in order; labels are the model names, with the file where two series
    would share one."""
    found = [(f, str(m), g) for f in files for m, g in f.summary.groupby("model", sort=False)]
    labels = _labels([(f.path, m) for f, m, _ in found])
    return [Series(label, f, m, g.reset_index(drop=True), _n(f, m)) for label, (f, m, g) in zip(labels, found)]


def _labels(keys: list[tuple[Path, str]]) -> list[str]:
    """The model name; where models repeat, with the file's stem; where stems repeat too, with the path (and,
    for the same file given twice, a number)."""
    forms = (lambda i, p, m: f"{m} ({p.stem})", lambda i, p, m: f"{m} ({p})", lambda i, p, m: f"{m} ({p}) #{i + 1}")
    labels = [m for _, m in keys]
    for form in forms:
        clash = {x for x in labels if labels.count(x) > 1}
        labels = [form(i, p, m) if x in clash else x for i, (x, (p, m)) in enumerate(zip(labels, keys))]
    return labels


def _n(file: ResultFile, model: str) -> int | None:
    rows = file.rows
    if "n" in rows.columns and "model" in rows.columns:
        n = rows.loc[rows["model"].astype(str) == model, "n"]
        if n.notna().any():
            return int(n.max())
    n = file.meta.get("n")
    return int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) and n == n else None


def point_key(spec: str, strength: float, layer: str = "") -> str:
    """What identifies a point across files: layer, spec and strength (to 12 significant digits)."""
    return "\t".join([layer, spec, "" if strength is None or math.isnan(strength) else f"{float(strength):.12g}"])


def point_text(spec: str, strength_name: str, strength: float, layer: str = "") -> str:
    """``addnorm sigma=0.1``, ``sign``, ``clean``; prefixed by the layer of a per-layer sweep."""
    text = "clean" if spec == "none" else spec
    if strength is not None and not math.isnan(strength):
        text += f" {strength_name or 'strength'}={strength:g}"
    return f"{layer}: {text}" if layer else text
