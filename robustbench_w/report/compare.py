"""``wrobust compare``: result files side by side on their common points.

A point is a distortion spec at a strength (and a layer, for a per-layer sweep); the clean model is the point
``clean``, shown for reference: files that share no distorted point have nothing to compare. The first series (a model of the first file) is the reference: every other series gets, at each
point common to all, its difference from the reference, the margin that difference must exceed to count, and
which of the two is better there - the one with the clearly lower metric (higher, for a metric where higher is
better, such as agreement): the paper's criterion, "more robust" meaning better under the same distortion.

The margin is ``sqrt(h_A^2 + h_B^2 + Z^2 p_A(1-p_A)/n_A + Z^2 p_B(1-p_B)/n_B)`` with ``Z = 1.96``: ``h`` is the
half-width of a point's 95% interval over trials (0 for an exact point) and the binomial terms, for metrics
that are fractions of the evaluation set, its sampling error (as in the ``reproduce`` report; taken as
independent, which is conservative when both models saw the same inputs). A random point with one trial has no
interval, so its difference is not judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..distortions import get_distortion
from ..errors import InputFileError, InvalidValueError, WrobustError
from .columns import Metric, choose_metric
from .results import LAYER, ResultFile, Series, point_key, point_text, series_of

Z = 1.96
NO_CLEAR = "no clear difference"
NO_INTERVAL = "not judged (no interval)"
NO_VALUE = "not judged (no value)"
NOT_DISTORTED = "not judged (the clean model)"  # the clean row and identity points (sigma=0): no robustness shown
KEY_COLUMNS = ["point", "layer", "spec", "strength_name", "strength"]


@dataclass(frozen=True)
class Comparison:
    metric: Metric
    labels: list[str]  # the series; the first is the reference
    points: pd.DataFrame  # one row per common point: KEY_COLUMNS, then per series and per other series
    only: pd.DataFrame  # points not common to all series: point, and the series that have it
    sources: list[dict] = field(default_factory=list)  # per series: label, file, model, dataset, n
    notes: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return self.labels[0]

    def others(self) -> list[str]:
        return self.labels[1:]


def mean_col(label: str) -> str:
    return label


def low_col(label: str) -> str:
    return f"{label} ci_low"


def high_col(label: str) -> str:
    return f"{label} ci_high"


def diff_col(label: str, reference: str) -> str:
    return f"{label} - {reference}"


def margin_col(label: str, reference: str) -> str:
    return f"{label} - {reference} margin"


def verdict_col(label: str, reference: str) -> str:
    return f"better of {label} and {reference}"


def compare(files: list[ResultFile], metric: str | None = None) -> Comparison:
    """Compare the series of these result files (at least two: two files, or one file with two models)."""
    series = series_of(files)
    if len(series) < 2:
        raise InvalidValueError(f"{files[0].path if files else 'compare'}: one model only; compare needs two or "
                                "more result files (or a file with several models)")
    return compare_series(series, choose_metric({str(f.path): f.summary for f in files}, metric))


def compare_series(series: list[Series], metric: Metric) -> Comparison:
    tables = [_points(s, metric) for s in series]
    common = [k for k in tables[0].index if all(k in t.index for t in tables[1:])]
    if all(tables[0].loc[k, "spec"] == "none" for k in common):  # the clean model alone compares no robustness
        raise InputFileError(f"{', '.join(s.label for s in series)}: no point in common (the same distortion spec "
                             f"at the same strength){_what_each_has(tables, series)}")
    points = tables[0].loc[common, KEY_COLUMNS].reset_index(drop=True)
    for s, t in zip(series, tables):
        points[[mean_col(s.label), low_col(s.label), high_col(s.label)]] = t.loc[common, ["mean", "low", "high"]].to_numpy()
    for s, t in zip(series[1:], tables[1:]):
        _judge(points, series[0], tables[0].loc[common], s, t.loc[common], metric)
    return Comparison(metric, [s.label for s in series], points, _only(tables, series), _sources(series),
                      _notes(series))


def _sources(series: list[Series]) -> list[dict]:
    return [{"label": s.label, "file": str(s.file.path), "model": s.model,
             "dataset": str(s.summary["dataset"].iloc[0]) if "dataset" in s.summary else None, "n": s.n}
            for s in series]


def _points(s: Series, metric: Metric) -> pd.DataFrame:
    """The series' summary as one row per point key: the key columns, ``mean``, ``low``, ``high``, ``trials``."""
    g = s.summary
    mean, low, high = metric.columns()
    layer = g[LAYER] if LAYER in g.columns else pd.Series("", index=g.index)
    frame = pd.DataFrame({
        "layer": layer, "spec": g["spec"], "strength_name": g["strength_name"].fillna(""),
        "strength": g["strength"].astype(float), "mean": g[mean].astype(float),
        "low": g[low].astype(float) if low in g else math.nan, "high": g[high].astype(float) if high in g else math.nan,
        "trials": g["trials"] if "trials" in g else 1,
    })
    frame["point"] = [point_text(r.spec, r.strength_name, r.strength, r.layer) for r in frame.itertuples()]
    frame.index = [point_key(r.spec, r.strength, r.layer) for r in frame.itertuples()]
    return frame[~frame.index.duplicated()]


def half_width(mean: float, low: float, high: float) -> float:
    """Half-width of a point's 95% interval; NaN when it has none."""
    if math.isnan(low) or math.isnan(high):
        return math.nan
    return max(mean - low, high - mean, 0.0)


def margin(a: tuple[float, float, float], b: tuple[float, float, float], metric: Metric,
           n_a: int | None, n_b: int | None) -> float:
    """How large a difference between two points must be to count (see the module's docstring)."""
    terms = [half_width(*a) ** 2, half_width(*b) ** 2]
    if metric.fraction:
        terms += [Z ** 2 * p * (1 - p) / n for (p, _, _), n in ((a, n_a), (b, n_b)) if n and not math.isnan(p)]
    return math.sqrt(sum(terms))


def better(diff: float, limit: float, metric: Metric, label: str, reference: str) -> str:
    """Which of the two is better at a point, given ``diff = label - reference`` and its margin."""
    if math.isnan(diff):
        return NO_VALUE
    if math.isnan(limit):
        return NO_INTERVAL
    if abs(diff) <= max(limit, 1e-12):
        return NO_CLEAR
    label_lower = diff < 0
    return label if label_lower != metric.higher_is_better else reference


def _judge(points: pd.DataFrame, ref: Series, ref_t: pd.DataFrame, s: Series, t: pd.DataFrame, metric: Metric) -> None:
    diffs = t["mean"].to_numpy() - ref_t["mean"].to_numpy()
    limits = [margin((ra.mean, ra.low, ra.high), (rb.mean, rb.low, rb.high), metric, ref.n, s.n)
              for ra, rb in zip(ref_t.itertuples(), t.itertuples())]
    points[diff_col(s.label, ref.label)] = diffs
    points[margin_col(s.label, ref.label)] = limits
    verdicts = [better(d, m, metric, s.label, ref.label) for d, m in zip(diffs, limits)]
    points[verdict_col(s.label, ref.label)] = [NOT_DISTORTED if clean else v
                                                for v, clean in zip(verdicts, undistorted(points))]


def undistorted(points: pd.DataFrame) -> list[bool]:
    """Per point: whether it is the clean model (the clean row, or a distortion at its identity strength), which
    says how good a model is, not how robust: no win for either side."""
    return [spec == "none" or _identity(spec, strength) for spec, strength in zip(points["spec"], points["strength"])]


def _identity(spec: str, strength: float) -> bool:
    try:
        dist = get_distortion(spec)
    except WrobustError:  # a plug-in distortion that is not installed here
        return False
    return not math.isnan(strength) and dist.is_identity(float(strength))


def _only(tables: list[pd.DataFrame], series: list[Series]) -> pd.DataFrame:
    """The points that some series lack: the key columns and ``in``, the series that have them."""
    keys = list(dict.fromkeys(k for t in tables for k in t.index))
    rows = []
    for k in keys:
        having = [s.label for s, t in zip(series, tables) if k in t.index]
        if len(having) < len(series):
            first = next(t for t in tables if k in t.index)
            rows.append({**first.loc[k, KEY_COLUMNS].to_dict(), "in": ", ".join(having)})
    return pd.DataFrame(rows, columns=[*KEY_COLUMNS, "in"])


def only_lines(comparison: Comparison) -> list[str]:
    """``only in A: round; quantize bits=8, 6`` per set of series that have some points alone."""
    only = comparison.only
    return [f"only in {having}: {where(g)}" for having, g in only.groupby("in", sort=False)] if len(only) else []


def _what_each_has(tables: list[pd.DataFrame], series: list[Series]) -> str:
    parts = []
    for s, t in zip(series, tables):
        specs = list(dict.fromkeys(t.loc[t["spec"] != "none", "spec"]))
        parts.append(f"{s.label} has {', '.join(specs[:4]) + (' ...' if len(specs) > 4 else '') or 'the clean model only'}")
    return ": " + "; ".join(parts)


def _notes(series: list[Series]) -> list[str]:
    notes = []
    datasets = list(dict.fromkeys(str(s.summary["dataset"].iloc[0]) for s in series if "dataset" in s.summary))
    if len(datasets) > 1:
        notes.append(f"the series were evaluated on different datasets ({', '.join(datasets)}): their differences "
                     "mix model and data")
    sizes = list(dict.fromkeys(s.n for s in series if s.n))
    if len(sizes) > 1:
        notes.append(f"the series were evaluated on different numbers of inputs ({', '.join(map(str, sizes))})")
    return notes


def where_better(comparison: Comparison) -> list[str]:
    """Per other series: where it is clearly better than the reference, where worse, where no clear difference."""
    lines, ref, points = [], comparison.reference, comparison.points
    for label in comparison.others():
        verdicts = points[verdict_col(label, ref)]
        parts = [f"{who} better at {where(points[verdicts == who])}" for who in (label, ref) if (verdicts == who).any()]
        for other in (NO_CLEAR, NO_INTERVAL, NO_VALUE):  # the clean points are no comparison: not counted
            if (verdicts == other).any():
                parts.append(f"{other} at {(verdicts == other).sum()} point(s)")
        lines.append(f"{label} vs {ref} on {comparison.metric.name}: " + "; ".join(parts))
    return lines


def where(points: pd.DataFrame) -> str:
    """``3 point(s): addnorm sigma=0.3, 0.5; sign``."""
    groups = []
    for (layer, spec), g in points.groupby(["layer", "spec"], sort=False):
        name = "clean" if spec == "none" else spec
        strengths = ", ".join(f"{x:g}" for x in g["strength"] if not math.isnan(x))
        text = f"{name} {g['strength_name'].iloc[0]}={strengths}" if strengths else name
        groups.append(f"{layer}: {text}" if layer else text)
    return f"{len(points)} point(s): " + "; ".join(groups)
