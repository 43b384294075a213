"""Error (or any metric) versus bits: the cheapest point of a sweep that is good enough, and the Pareto frontier."""

from __future__ import annotations

import math

import pandas as pd

LOWEST_COLUMNS = ["spec", "distortion", "strength_name", "strength", "eff_bits", "error_mean", "met"]


def lowest_bits(summary: pd.DataFrame, limit: float, column: str = "error", higher_is_better: bool = False) -> pd.DataFrame:
    """Per distortion spec with effective bits (the discrete ones), the summary point with the fewest
    ``eff_bits`` whose mean ``column`` meets ``limit`` (``{column}_mean <= limit``, or ``>=`` for a metric where
    higher is better; ties: the better value), with ``met=True``. Where no point meets it, the point of best
    value instead, with ``met=False``. The default is the error: ``lowest_bits(summary, 0.11)``."""
    mean = f"{column}_mean"
    columns = [*LOWEST_COLUMNS[:5], mean, "met"]
    if "eff_bits" not in summary or mean not in summary:
        return pd.DataFrame(columns=columns)
    out = []
    for _, g in summary[summary["eff_bits"].notna()].groupby("spec", sort=False):
        ok = g[g[mean] >= limit] if higher_is_better else g[g[mean] <= limit]
        met = len(ok) > 0
        by, ascending = (["eff_bits", mean], [True, not higher_is_better]) if met else \
            ([mean, "eff_bits"], [not higher_is_better, True])
        pick = (ok if met else g).sort_values(by, ascending=ascending, kind="stable").iloc[0]
        out.append({**{c: pick[c] for c in columns[:-1]}, "met": met})
    return pd.DataFrame(out, columns=columns)


def frontier(summary: pd.DataFrame) -> pd.DataFrame:
    """The error-vs-bits Pareto frontier over every summary point with effective bits: the points that no
    other point beats on both (fewer or equal bits and lower error), by increasing bits."""
    if "eff_bits" not in summary:
        return summary.iloc[0:0]
    points = summary[summary["eff_bits"].notna() & summary["error_mean"].notna()]
    points = points.sort_values(["eff_bits", "error_mean"], kind="stable")
    best = points["error_mean"].cummin().shift(fill_value=math.inf)
    return points[points["error_mean"] < best]
