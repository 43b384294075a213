"""``wrobust plot``: figures of result files.

Kinds (:data:`KINDS`), each a function ``(series, metric) -> Figure``:

- ``curves``: the metric against strength, one panel per distortion spec and one line per series (a model of
  a result file), the mean over trials with its 95% interval as a band; distortions without a strength
  (``sign``, ``round``, ...) and the clean model share a last panel of points with interval bars.
- ``frontier``: the metric against effective bits per weight (the ``eff_bits`` column of discrete
  distortions): every point with its interval, and per series the frontier of points that no point with
  fewer bits beats, as a step line; the clean model as a dotted line.
- ``layers``: a heatmap of the change per layer and strength (:mod:`.heatmap`).

Data lines carry ``gid="curve"``, interval points ``gid="point"`` and clean references ``gid="clean"``, so
that a figure can be checked by what it draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..distortions import list_distortions
from ..errors import InvalidValueError
from .columns import Metric, choose_metric, strength_label
from .figures import DPI, grid_shape, hide_unused, legend_handles, new_figure, require_matplotlib, save_figure, style
from .heatmap import layers_figure
from .ranking import is_per_layer
from .results import LAYER, ResultFile, Series, load_all, series_of

CI_ALPHA = 0.18
MARKER_CYCLE = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")  # frontier: one marker per distortion


def whole_model(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary rows of whole-model points (not the per-layer rows of a per-layer sweep)."""
    return summary if LAYER not in summary.columns else summary[summary[LAYER] == ""]


def _values(metric: Metric, g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shown mean, low and high; a point without an interval gets a band of width 0."""
    mean_col, low_col, high_col = metric.columns()
    mean = metric.shown(g[mean_col].astype(float)).to_numpy()
    low = metric.shown(g[low_col].astype(float)).to_numpy() if low_col in g else mean
    high = metric.shown(g[high_col].astype(float)).to_numpy() if high_col in g else mean
    return mean, np.where(np.isnan(low), mean, low), np.where(np.isnan(high), mean, high)


# ------------------------------------------------------------------ curves

def curves_figure(series: list[Series], metric: Metric) -> object:
    specs, flat = _curve_specs(series)
    panels = len(specs) + (1 if flat else 0)
    if not panels:
        raise InvalidValueError("nothing to plot: the results hold only the clean model")
    rows, cols = grid_shape(panels)
    fig, axes = new_figure(rows, cols, 4.3 * cols, 3.2 * rows + 0.5)
    for ax, spec in zip(axes.flat, specs):
        _curve_panel(ax, series, metric, spec)
    if flat:
        _flat_panel(axes.flat[len(specs)], series, metric, flat)
    hide_unused(axes, panels)
    for ax in axes[:, 0]:
        ax.set_ylabel(metric.label)
    fig.suptitle(f"{metric.name} under weight distortions: mean and 95% interval over trials", fontsize="medium")
    fig.legend(handles=legend_handles([s.label for s in series]), loc="outside lower center",
               ncols=min(len(series), 3), fontsize="small", frameon=False)
    return fig


def _curve_specs(series: list[Series]) -> tuple[list[str], list[str]]:
    """Specs swept over strengths, and specs without a strength, in the order of first appearance."""
    points = pd.concat([whole_model(s.summary) for s in series])
    points = points[points["distortion"] != "none"]
    curves = points[points["strength"].notna()]
    flat = points[points["strength"].isna()]
    return list(dict.fromkeys(curves["spec"])), list(dict.fromkeys(flat["spec"]))


def _curve_panel(ax, series: list[Series], metric: Metric, spec: str) -> None:
    strength_name = ""
    for i, s in enumerate(series):
        g = whole_model(s.summary)
        g = g[(g["spec"] == spec) & g["strength"].notna()].sort_values("strength")
        if g.empty:
            continue
        strength_name = g["strength_name"].iloc[0]
        mean, low, high = _values(metric, g)
        ax.plot(g["strength"], mean, markersize=4, label=s.label, gid="curve", **style(i))
        ax.fill_between(g["strength"], low, high, color=style(i)["color"], alpha=CI_ALPHA, linewidth=0)
    _strength_axis(ax, series, spec)
    ax.set_title(spec, fontsize="medium")
    ax.set_xlabel(strength_label(spec, strength_name), fontsize="small")
    ax.grid(alpha=0.3)


def _strength_axis(ax, series: list[Series], spec: str) -> None:
    """A symmetric-log axis when the positive strengths span more than two decades (bit-flip rates)."""
    strengths = pd.concat([s.summary.loc[s.summary["spec"] == spec, "strength"] for s in series]).dropna()
    positive = strengths[strengths > 0]
    if len(positive) > 1 and positive.max() / positive.min() > 100:
        ax.set_xscale("symlog", linthresh=float(positive.min()))


def _flat_panel(ax, series: list[Series], metric: Metric, specs: list[str]) -> None:
    categories = ["none", *specs]
    width = 0.7 / max(len(series), 1)
    for i, s in enumerate(series):
        g = whole_model(s.summary).set_index("spec")
        g = g.loc[[c for c in categories if c in g.index]]
        g = g[~g.index.duplicated()]
        x = np.array([categories.index(c) for c in g.index]) + (i - (len(series) - 1) / 2) * width
        mean, low, high = _values(metric, g)
        st = style(i)
        ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt=st["marker"], color=st["color"], markersize=5,
                    capsize=3, linestyle="none", gid="point")
    ax.set_xticks(range(len(categories)), ["clean" if c == "none" else c for c in categories])
    ax.set_xlim(-0.6, len(categories) - 0.4)
    ax.set_title("without a strength", fontsize="medium")
    ax.set_xlabel("distortion", fontsize="small")
    ax.grid(alpha=0.3, axis="y")


# ------------------------------------------------------------------ frontier

def frontier_figure(series: list[Series], metric: Metric) -> object:
    points = [_bits_points(s) for s in series]
    _check_bits(series, points)
    fig, axes = new_figure(1, 1, 6.6, 4.6)
    ax = axes[0][0]
    markers = {spec: k for k, spec in enumerate(dict.fromkeys(pd.concat(points)["spec"]))}
    for i, (s, pts) in enumerate(zip(series, points)):
        _frontier_series(ax, i, s, pts, metric, markers)
    ax.set_xlabel("effective bits per weight (bits/w, entropy of the weight values)")
    ax.set_ylabel(metric.label)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title(f"{metric.name} against effective bits: points, frontier (steps) and clean model (dotted)",
                 fontsize="medium")
    _marker_legend(ax, markers)
    fig.legend(handles=legend_handles([s.label for s in series], markers=False), loc="outside lower center",
               ncols=min(len(series), 3), fontsize="small", frameon=False)
    return fig


def _bits_points(s: Series) -> pd.DataFrame:
    g = whole_model(s.summary)
    if "eff_bits" not in g.columns:
        return g.iloc[0:0]
    g = g[(g["distortion"] != "none") & pd.to_numeric(g["eff_bits"], errors="coerce").notna()]
    return g.astype({"eff_bits": float}).sort_values("eff_bits")


def _check_bits(series: list[Series], points: list[pd.DataFrame]) -> None:
    lacking = [s.label for s, p in zip(series, points) if p.empty]
    if lacking:
        discrete = ", ".join(i.name for i in list_distortions() if i.discrete)
        raise InvalidValueError(f"no effective bits for {', '.join(lacking)}: a frontier needs a sweep of a discrete "
                                f"distortion ({discrete})")


def _frontier_series(ax, i: int, s: Series, pts: pd.DataFrame, metric: Metric, markers: dict[str, int]) -> None:
    st = style(i)
    for spec, g in pts.groupby("spec", sort=False):
        mean, low, high = _values(metric, g)
        marker = MARKER_CYCLE[markers[spec] % len(MARKER_CYCLE)]
        ax.errorbar(g["eff_bits"], mean, yerr=[mean - low, high - mean], fmt=marker, color=st["color"],
                    markersize=5, capsize=2, linestyle="none", alpha=0.8, gid="point")
    front = pareto_front(pts, metric)
    if len(front):
        bits = [*front["eff_bits"], float(pts["eff_bits"].max())]  # the last step holds to the most bits swept
        values = metric.shown(front[metric.columns()[0]].astype(float)).tolist()
        ax.plot(bits, [*values, values[-1]], color=st["color"], linestyle=st["linestyle"], drawstyle="steps-post",
                label=s.label, gid="curve")
    clean = whole_model(s.summary)
    clean = clean.loc[clean["distortion"] == "none", metric.columns()[0]]
    if len(clean) and not math.isnan(clean.iloc[0]):
        ax.axhline(metric.shown(float(clean.iloc[0])), color=st["color"], linestyle=":", linewidth=1, gid="clean")


def pareto_front(points: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """The points that no point with at most as many effective bits beats on the metric, by bits."""
    mean = metric.columns()[0]
    sign = -1.0 if metric.higher_is_better else 1.0
    keep, best = [], math.inf
    for idx, r in points.sort_values(["eff_bits", mean], ascending=[True, not metric.higher_is_better]).iterrows():
        value = sign * float(r[mean])
        if value < best:
            keep.append(idx)
            best = value
    return points.loc[keep]


def _marker_legend(ax, markers: dict[str, int]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker=MARKER_CYCLE[k % len(MARKER_CYCLE)], color="0.35", linestyle="none", label=spec)
               for spec, k in markers.items()]
    ax.legend(handles=handles, title="distortion", fontsize="small", title_fontsize="small", loc="best")


# ------------------------------------------------------------------ entry point

KINDS: dict[str, Callable[[list[Series], Metric], object]] = {
    "curves": curves_figure, "frontier": frontier_figure, "layers": layers_figure,
}


def figure(files: list[ResultFile], kind: str = "curves", metric: str | None = None) -> object:
    """The figure of ``kind`` for these result files (one series per file and model)."""
    if kind not in KINDS:
        raise InvalidValueError(f"unknown plot kind {kind!r} (use {', '.join(KINDS)})")
    require_matplotlib()
    if kind != "layers":
        only_layers(files, kind)
    series = series_of(files)
    chosen = choose_metric({str(f.path): f.summary for f in files}, metric)
    return KINDS[kind](series, chosen)


def only_layers(files: list[ResultFile], kind: str) -> None:
    """A per-layer result file has no whole-model points to draw as ``kind``: say which kind draws it."""
    for f in files:
        if is_per_layer(f.summary) and (whole_model(f.summary)["spec"] == "none").all():
            raise InvalidValueError(f"{f.path}: a per-layer sweep (one layer distorted at a time) has no whole-model "
                                    f"{kind}: plot it with --kind layers")


def plot_results(paths: list[Path], output: Path, kind: str = "curves", metric: str | None = None,
                 dpi: int = DPI) -> Path:
    """Read the result files, draw ``kind``, write ``output`` (.png, .svg or .pdf) atomically."""
    require_matplotlib("wrobust plot")
    return save_figure(figure(load_all(paths), kind, metric), output, dpi)
