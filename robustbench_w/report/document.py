"""The content of ``wrobust report``, independent of its format: figures, the comparison of the series, and
per result file its meta and summary tables. :mod:`.html` and :mod:`.markdown` render it.

Figures: the curves, the effective-bits frontier where every series has ``eff_bits``, and the per-layer
heatmap where a file holds a per-layer sweep. Without matplotlib the report is written without figures and
says so. Tables show every metric of the summary (mean and 95% interval where it has one), the weight change,
the number of trials and the effective bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..engine.weights.coverage import coverage_text
from ..errors import InputFileError, InvalidValueError
from .columns import Metric, choose_metric, metrics_in
from .compare import Comparison, compare_series
from .figures import PLOT_EXTRA
from .plots import KINDS
from .results import LAYER, ResultFile, Series, point_key, series_of
from .text import strength_text

CAPTIONS = {
    "curves": "The {metric} against the strength of each distortion: mean over trials, 95% interval as a band.",
    "frontier": "The {metric} against effective bits per weight; the step line is the frontier, dotted the clean "
                "model.",
    "layers": "Change of {metric} over the clean model when one layer at a time is distorted.",
}
META_KEYS = ("model", "dataset", "split", "n", "seed", "device", "device_name", "package", "version", "torch",
             "python", "command", "model_sha256", "coverage", "target_weights", "targets", "elapsed_s")


@dataclass(frozen=True)
class Figure:
    kind: str
    caption: str
    figure: object  # a matplotlib Figure


@dataclass(frozen=True)
class Table:
    heading: str
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Run:
    """One result file: its meta as (key, value) pairs and its summary tables."""

    title: str
    meta: list[tuple[str, str]]
    tables: list[Table]


@dataclass(frozen=True)
class Report:
    metric: Metric
    figures: list[Figure]
    comparison: Comparison | None
    runs: list[Run]
    notes: list[str] = field(default_factory=list)


def build_report(files: list[ResultFile], metric: str | None = None) -> Report:
    series = series_of(files)
    chosen = choose_metric({str(f.path): f.summary for f in files}, metric)
    figures, notes = _figures(series, chosen)
    comparison = _comparison(series, chosen, notes) if len(series) > 1 else None
    return Report(chosen, figures, comparison, [_run(f) for f in files], notes)


def _comparison(series: list[Series], metric: Metric, notes: list[str]) -> Comparison | None:
    """All series compared with the first; failing a common point, those that share a distorted point with it."""
    try:
        return compare_series(series, metric)
    except InputFileError as exc:
        sharing = [s for s in series[1:] if _shared(series[0], s)]
        if sharing and len(sharing) < len(series) - 1:
            left_out = ", ".join(s.label for s in series[1:] if s not in sharing)
            notes.append(f"compared without {left_out}: no distorted point in common with {series[0].label}")
            return _comparison([series[0], *sharing], metric, notes)
        notes.append(f"no comparison: {exc}")
        return None


def _shared(a: Series, b: Series) -> bool:
    keys = [{point_key(r.spec, r.strength, getattr(r, LAYER, "")) for r in s.summary.itertuples() if r.spec != "none"}
            for s in (a, b)]
    return bool(keys[0] & keys[1])


def _figures(series: list[Series], metric: Metric) -> tuple[list[Figure], list[str]]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return [], [f"no figures: matplotlib is not installed ({PLOT_EXTRA})"]
    figures = []
    for kind, draw in KINDS.items():
        if _applies(kind, series):
            try:
                figures.append(Figure(kind, CAPTIONS[kind].format(metric=metric.name), draw(series, metric)))
            except InvalidValueError:  # nothing of this kind to draw (only the clean model, ...)
                continue
    return figures, []


def _applies(kind: str, series: list[Series]) -> bool:
    if kind == "frontier":
        return all("eff_bits" in s.summary and pd.to_numeric(s.summary["eff_bits"], errors="coerce").notna().any()
                   for s in series)
    if kind == "layers":
        return any(s.file.per_layer for s in series)
    return True


# ------------------------------------------------------------------ per file: meta and tables

def _run(file: ResultFile) -> Run:
    meta = [(k, _meta_text(file.meta[k])) for k in META_KEYS if file.meta.get(k) not in (None, "", [])]
    tables = []
    for model, g in file.summary.groupby("model", sort=False):
        prefix = f"{model}: " if file.summary["model"].nunique() > 1 else ""
        tables += metric_tables(g, prefix)
    return Run(str(file.path), meta, tables)


def _meta_text(value: object) -> str:
    if isinstance(value, dict) and "parameters" in value:  # the coverage block
        return coverage_text(value)
    if isinstance(value, list):
        shown = ", ".join(map(str, value[:12]))
        return f"{len(value)}: {shown}" + (" ..." if len(value) > 12 else "")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def metric_tables(summary: pd.DataFrame, prefix: str = "") -> list[Table]:
    """One table per distortion spec (and layer): strength, every metric with values, Δw, trials, bits/w."""
    metrics = [Metric(m) for m in metrics_in(summary) if pd.to_numeric(summary[f"{m}_mean"], errors="coerce").notna().any()]
    bits = "eff_bits" in summary.columns and pd.to_numeric(summary["eff_bits"], errors="coerce").notna().any()
    layers = summary[LAYER] if LAYER in summary.columns else pd.Series("", index=summary.index)
    tables = []
    for (layer, spec), g in summary.groupby([layers, summary["spec"]], sort=False):
        name = g["strength_name"].iloc[0] or "strength"
        heads = [name, *(m.label if m.fraction else m.name for m in metrics), "Δw", "trials"] + (["bits/w"] if bits else [])
        rows = [[strength_text(float(r["strength"])), *(_cell(m, r) for m in metrics), _num(r.get("weight_change_mean"), ".3f"),
                 str(int(r["trials"])) if "trials" in r else "-"] + ([_num(r.get("eff_bits"), ".3f")] if bits else [])
                for _, r in g.iterrows()]
        heading = "clean model" if spec == "none" else spec
        tables.append(Table(f"{prefix}{layer + ': ' if layer else ''}{heading}", heads, rows))
    return tables


def _cell(metric: Metric, r: pd.Series) -> str:
    mean, low, high = (r.get(c, math.nan) for c in metric.columns())
    text = metric.text(float(mean))
    if low is None or high is None or math.isnan(float(low)) or math.isnan(float(high)) or low == high:
        return text
    return f"{text} [{metric.text(float(low))}, {metric.text(float(high))}]"


def _num(x: object, fmt: str) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(value) else format(value, fmt)
