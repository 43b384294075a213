"""Error versus bits: the cheapest point of a sweep that is good enough, and the Pareto frontier."""

from __future__ import annotations

import math

import pandas as pd

LOWEST_COLUMNS = ["spec", "distortion", "strength_name", "strength", "eff_bits", "error_mean", "met"]


def lowest_bits(summary: pd.DataFrame, max_error: float) -> pd.DataFrame:
    """Per distortion spec with effective bits (the discrete ones), the summary point with the fewest
    ``eff_bits`` whose ``error_mean <= max_error`` (ties: the lower error), with ``met=True``. Where no point
    meets it, the point of lowest error instead, with ``met=False``."""
    if "eff_bits" not in summary:
        return pd.DataFrame(columns=LOWEST_COLUMNS)
    out = []
    for _, g in summary[summary["eff_bits"].notna()].groupby("spec", sort=False):
        ok = g[g["error_mean"] <= max_error]
        met = len(ok) > 0
        order = ["eff_bits", "error_mean"] if met else ["error_mean", "eff_bits"]
        pick = (ok if met else g).sort_values(order, kind="stable").iloc[0]
        out.append({**{c: pick[c] for c in LOWEST_COLUMNS[:-1]}, "met": met})
    return pd.DataFrame(out, columns=LOWEST_COLUMNS)


def frontier(summary: pd.DataFrame) -> pd.DataFrame:
    """The error-vs-bits Pareto frontier over every summary point with effective bits: the points that no
    other point beats on both (fewer or equal bits and lower error), by increasing bits."""
    if "eff_bits" not in summary:
        return summary.iloc[0:0]
    points = summary[summary["eff_bits"].notna() & summary["error_mean"].notna()]
    points = points.sort_values(["eff_bits", "error_mean"], kind="stable")
    best = points["error_mean"].cummin().shift(fill_value=math.inf)
    return points[points["error_mean"] < best]
