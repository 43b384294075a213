"""Figures (matplotlib, optional: ``pip install 'robustbench_w[plot]'``).

:func:`plot_grid` draws the reproduce grid from its summary (:func:`.cells.summarize_cells`): one panel of
bars for the clean model and the distortions without a strength (the interval as an error bar), and one
panel per distortion with a strength, test error against strength over the whole curve, one line per
training rule (mean over seeds and trials, the interval as a band). Three panels per row; the legend of the
training rules below them all, where it covers no bar. With :class:`Marks`, the panels of claim (e)'s bits
sweeps mark the points that decide it: a star where a seed's fewest bits came from, a grey cross on a rule's own
training projection (not counted), and a dashed line at ``none``'s clean error plus ``D``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

PER_ROW = 3


@dataclass(frozen=True)
class Marks:
    """Claim (e) on the figure: ``decide`` and ``own`` hold ``(rule, spec, strength)``; ``level`` the error
    (a fraction) within which a point counts."""

    decide: tuple[tuple[str, str, float], ...]
    own: tuple[tuple[str, str, float], ...]
    level: float


def plot_grid(summary: pd.DataFrame, path: Path, marks: Marks | None = None) -> Path | None:
    """Write the figure to ``path``; ``None`` (nothing written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig = grid_figure(summary, plt, marks)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def grid_figure(summary: pd.DataFrame, plt, marks: Marks | None = None) -> object:
    """The figure of :func:`plot_grid`, drawn with ``plt`` (matplotlib.pyplot)."""
    curves = [spec for spec, g in summary.groupby("spec", sort=False) if g["strength"].notna().any()]
    panels = len(curves) + 1
    rows, cols = math.ceil(panels / PER_ROW), min(panels, PER_ROW)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows + 0.4), squeeze=False, layout="constrained")
    flat = [ax for row in axes for ax in row]
    rules = list(dict.fromkeys(summary["rule"]))
    _bars(flat[0], summary[summary["strength"].isna()], rules)
    for ax, spec in zip(flat[1:], curves):
        colors = _curves(ax, summary[summary["spec"] == spec], rules, spec)
        if marks is not None:
            _mark(ax, summary[summary["spec"] == spec], marks, spec, colors)
    for ax in flat[panels:]:
        ax.axis("off")
    # one legend for every panel, below them: inside a panel it covers bars (and the curves' ends)
    handles, labels = flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize="small",
               title="training rule", title_fontsize="small")
    return fig


def _bars(ax, points: pd.DataFrame, rules: list[str]) -> None:
    specs = list(dict.fromkeys(points["spec"]))
    width = 0.8 / max(len(rules), 1)
    for i, rule in enumerate(rules):
        mine = points[points["rule"] == rule].set_index("spec").reindex(specs)
        mean = 100 * mine["error_mean"]
        err = [(mean - 100 * mine["error_low"]).fillna(0).clip(lower=0),
               (100 * mine["error_high"] - mean).fillna(0).clip(lower=0)]
        ax.bar([j + i * width for j in range(len(specs))], mean, width, yerr=err, capsize=2, label=rule)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(specs))], [("clean" if s == "none" else s) for s in specs])
    ax.set_ylabel("test error %")
    ax.set_title("no strength")


def _curves(ax, points: pd.DataFrame, rules: list[str], spec: str) -> dict[str, str]:
    colors = {}
    for rule in rules:
        g = points[points["rule"] == rule].sort_values("strength")
        line, = ax.plot(g["strength"], 100 * g["error_mean"], marker="o", markersize=3, label=rule)
        colors[rule] = line.get_color()
        low, high = g["error_low"], g["error_high"]
        if low.notna().any():
            ax.fill_between(g["strength"], 100 * low.fillna(g["error_mean"]), 100 * high.fillna(g["error_mean"]),
                            color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel(points["strength_name"].iloc[0] or "strength")
    ax.set_ylabel("test error %")
    ax.set_title(spec)
    return colors


def _mark(ax, points: pd.DataFrame, marks: Marks, spec: str, colors: dict[str, str]) -> None:
    decide = [m for m in marks.decide if m[1] == spec]
    own = [m for m in marks.own if m[1] == spec]
    if not (decide or own):
        return
    for group, style in ((decide, dict(marker="*", s=110, edgecolors="black", linewidths=0.6, zorder=5)),
                         (own, dict(marker="x", s=50, color="grey", zorder=4))):
        for rule, _, strength in group:
            at = points[(points["rule"] == rule) & ((points["strength"] - strength).abs() < 1e-9)]
            if len(at):
                color = {"color": colors.get(rule)} if "color" not in style else {}
                ax.scatter([strength], [100 * at["error_mean"].iloc[0]], **style, **color)
    ax.axhline(100 * marks.level, color="black", linestyle="--", linewidth=0.8)
    ax.set_title(f"{spec} (claim e: * decides, x own projection)", fontsize="small")
