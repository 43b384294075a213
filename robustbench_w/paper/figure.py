"""Figures (matplotlib, optional: ``pip install 'robustbench_w[plot]'``).

:func:`plot_grid` draws the reproduce grid: one panel per distortion with a strength, test error against
strength, one line per training rule (mean over trials, with the 95% interval as a band), and one panel of
bars for the clean model and the distortions without a strength.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd


def plot_grid(summary: pd.DataFrame, path: Path) -> Path | None:
    """Write the figure to ``path``; ``None`` (nothing written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    curves = [spec for spec, g in summary.groupby("spec", sort=False) if g["strength"].notna().any()]
    fig, axes = plt.subplots(1, len(curves) + 1, figsize=(4 * (len(curves) + 1), 3.4), squeeze=False)
    rules = list(dict.fromkeys(summary["rule"]))
    _bars(axes[0][0], summary[summary["strength"].isna()], rules)
    for ax, spec in zip(axes[0][1:], curves):
        _curves(ax, summary[summary["spec"] == spec], rules, spec)
    axes[0][-1].legend(fontsize="small", loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _bars(ax, points: pd.DataFrame, rules: list[str]) -> None:
    specs = list(dict.fromkeys(points["spec"]))
    width = 0.8 / max(len(rules), 1)
    for i, rule in enumerate(rules):
        mine = points[points["rule"] == rule].set_index("spec")
        values = [100 * mine["error_mean"].get(s, math.nan) for s in specs]
        ax.bar([j + i * width for j in range(len(specs))], values, width, label=rule)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(specs))], [("clean" if s == "none" else s) for s in specs])
    ax.set_ylabel("test error %")
    ax.set_title("no strength")


def _curves(ax, points: pd.DataFrame, rules: list[str], spec: str) -> None:
    for rule in rules:
        g = points[points["rule"] == rule].sort_values("strength")
        line, = ax.plot(g["strength"], 100 * g["error_mean"], marker="o", markersize=3, label=rule)
        low, high = g["error_ci_low"], g["error_ci_high"]
        if low.notna().any():
            ax.fill_between(g["strength"], 100 * low.fillna(g["error_mean"]), 100 * high.fillna(g["error_mean"]),
                            color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel(points["strength_name"].iloc[0] or "strength")
    ax.set_title(spec)
