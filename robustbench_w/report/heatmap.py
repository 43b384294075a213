"""``wrobust plot --kind layers``: which layers are fragile, as a heatmap of the metric's change over the clean
model, one row per layer and one column per strength.

Input: the rows of a per-layer sweep, which carry a ``layer`` column (the distorted tensor or group; the
clean model and whole-model points have an empty ``layer``). One panel per series (a model of a result file),
its columns grouped by distortion spec; all panels share one colour scale, centred on no change, with the
worse direction in red (a diverging ColorBrewer map, readable with the common colour-vision deficiencies).
Cells show their value where the panel is small enough to read them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import InvalidValueError
from .columns import Metric
from .figures import new_figure
from .results import LAYER, Series

ANNOTATE_CELLS = 240  # write the values into panels of at most this many cells


def clean_value(s: Series, metric: Metric) -> float:
    """The series' metric on the clean model (distortion ``none``, no layer)."""
    clean = s.summary[s.summary["distortion"] == "none"]
    if LAYER in clean.columns:
        clean = clean[clean[LAYER] == ""] if (clean[LAYER] == "").any() else clean
    if clean.empty:
        raise InvalidValueError(f"{s.label}: no clean-model row to measure the change from")
    return float(clean[metric.columns()[0]].iloc[0])


def layer_changes(s: Series, metric: Metric) -> list[tuple[str, str, pd.DataFrame]]:
    """``(spec, strength name, table)`` per distortion spec: the change of the shown metric over the clean
    model, one row per layer (in sweep order) and one column per strength (in sweep order; ``-`` for a
    distortion without one)."""
    summary = s.summary
    if LAYER not in summary.columns:
        return []
    per = summary[(summary[LAYER] != "") & (summary["distortion"] != "none")]
    if per.empty:
        return []
    clean = metric.shown(clean_value(s, metric))
    out = []
    for spec, g in per.groupby("spec", sort=False):
        column = g["strength"].map(lambda x: "-" if math.isnan(x) else f"{x:g}")
        values = metric.shown(g[metric.columns()[0]].astype(float)) - clean
        table = pd.Series(values.to_numpy(), index=pd.MultiIndex.from_arrays([g[LAYER], column]))
        table = table[~table.index.duplicated()].unstack()
        table = table.reindex(index=list(dict.fromkeys(g[LAYER])), columns=list(dict.fromkeys(column)))
        out.append((spec, g["strength_name"].iloc[0], table))
    return out


def layer_table(s: Series, metric: Metric) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """All of a series' :func:`layer_changes` side by side: columns ``(spec, strength)``, and the ``(spec,
    strength name)`` of each group of columns."""
    parts = layer_changes(s, metric)
    if not parts:
        return pd.DataFrame(), []
    table = pd.concat([t for _, _, t in parts], axis=1, keys=[spec for spec, _, _ in parts])
    layers = list(dict.fromkeys(layer for _, _, t in parts for layer in t.index))
    return table.reindex(index=layers), [(spec, name) for spec, name, _ in parts]


def layers_figure(series: list[Series], metric: Metric) -> object:
    panels = [(s, *layer_table(s, metric)) for s in series]
    panels = [p for p in panels if not p[1].empty]
    if not panels:
        files = ", ".join(dict.fromkeys(str(s.file.path) for s in series))
        raise InvalidValueError(f"{files}: no per-layer results (--kind layers needs rows with a 'layer' column, "
                                "from a per-layer sweep)")
    n_layers = max(t.shape[0] for _, t, _ in panels)
    n_cols = max(t.shape[1] for _, t, _ in panels)
    per_layer = 0.3 if n_layers <= 40 else 0.18
    fig, axes = new_figure(len(panels), 1, 3.8 + 0.5 * n_cols, len(panels) * (1.4 + per_layer * n_layers) + 1.1)
    vmax = _scale([t for _, t, _ in panels])
    for ax, (s, table, groups) in zip(axes[:, 0], panels):
        image = _draw(ax, table, vmax, metric)
        _group_labels(ax, table, groups)
        ax.set_ylabel(f"{s.label}\nlayer", fontsize="small")
    axes[-1][0].set_xlabel("strength, per distortion", fontsize="small")
    # below the panels, its label horizontal: a vertical label is longer than a short figure is high (clipped)
    bar = fig.colorbar(image, ax=list(axes[:, 0]), location="bottom", shrink=0.9, aspect=30)
    bar.set_label(change_label(metric), fontsize="small")
    return fig


def _group_labels(ax, table: pd.DataFrame, groups: list[tuple[str, str]]) -> None:
    """The distortion (and its strength's name) above each group of columns, with a line between groups."""
    specs = [spec for spec, _ in table.columns]
    centres, start = [], 0
    for spec, name in groups:
        width = specs.count(spec)
        centres.append(start + (width - 1) / 2)
        if start:
            ax.axvline(start - 0.5, color="black", linewidth=1.2)
        start += width
    top = ax.secondary_xaxis("top")
    top.set_xticks(centres, [f"{spec} ({name})" if name else spec for spec, name in groups], fontsize="small")
    top.tick_params(length=0)


def change_label(metric: Metric) -> str:
    if metric.fraction:
        return f"change in {metric.name} over\nthe clean model (percentage points)"
    return f"change over the clean model:\n{metric.label}"


def _scale(tables: list[pd.DataFrame]) -> float:
    values = np.concatenate([t.to_numpy(dtype=float).ravel() for t in tables])
    values = np.abs(values[np.isfinite(values)])
    return float(values.max()) if len(values) and values.max() > 0 else 1.0


def _draw(ax, table: pd.DataFrame, vmax: float, metric: Metric):
    cmap = "RdBu" if metric.higher_is_better else "RdBu_r"  # the worse direction is red
    data = table.to_numpy(dtype=float)
    image = ax.imshow(data, aspect="auto", cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest", gid="layers")
    ax.set_xticks(range(table.shape[1]), [strength for _, strength in table.columns])
    ax.set_yticks(range(table.shape[0]), list(table.index), fontsize="small")
    if data.size <= ANNOTATE_CELLS:
        for (r, c), v in np.ndenumerate(data):
            if math.isfinite(v):
                ax.text(c, r, f"{v:+.1f}" if metric.fraction else f"{v:+.3g}", ha="center", va="center",
                        fontsize="x-small", color="white" if abs(v) > 0.6 * vmax else "black")
    return image
