"""Confidence intervals and the aggregation of sweep rows into summary rows.

A summary row (one per distortion x strength) gives the number of trials, the mean and standard deviation
(``ddof=1``) of the error over trials, and a 95% confidence interval of the mean with Student's t
(``mean +- t_{0.975, n-1} * std / sqrt(n)``, clipped to [0, 1] since error and agreement are
fractions). A point whose outcome does not depend on the seed (a
deterministic distortion, or a random one at its identity strength) is exact: std 0, interval of width 0.
A random point with a single trial has no interval (``nan``). The interval is over trials of the
distortion, for this evaluation set; it does not include the sampling error of the set itself.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

GROUP = ["model", "dataset", "distortion", "spec", "strength_name", "strength"]


def t_interval(values: np.ndarray | list[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, std, low, high)`` of a sample: Student-t interval for its mean."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if len(x) == 1:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2, len(x) - 1)) * std / math.sqrt(len(x))
    return mean, std, mean - half, mean + half


def summarize(rows: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One summary row per (model, dataset, distortion spec, strength), in the order of first appearance."""
    out = []
    for key, g in rows.groupby(GROUP, sort=False, dropna=False):
        rec = dict(zip(GROUP, key))
        stochastic = bool(g["stochastic"].any())
        rec["trials"] = len(g)
        for col in ("error", "agreement"):
            mean, std, low, high = t_interval(g[col].to_numpy(), level) if stochastic else _exact(g[col])
            low, high = _clip01(low), _clip01(high)  # a fraction's interval stays within [0, 1]
            rec.update({f"{col}_mean": mean, f"{col}_std": std, f"{col}_ci_low": low, f"{col}_ci_high": high})
        for col in ("accuracy", "loss", "weight_change", "nonfinite"):
            rec[f"{col}_mean"] = float(g[col].mean())
        for col in _extra_columns(rows):  # columns added by extensions (eff_bits, ...): their mean
            rec[col] = float(g[col].mean())
        out.append(rec)
    return pd.DataFrame(out)


CORE_COLUMNS = frozenset(GROUP + ["trial", "seed", "n", "accuracy", "error", "loss", "agreement",
                                  "weight_change", "nonfinite", "stochastic"])


def _extra_columns(rows: pd.DataFrame) -> list[str]:
    return [c for c in rows.columns if c not in CORE_COLUMNS and pd.api.types.is_numeric_dtype(rows[c])
            and not pd.api.types.is_bool_dtype(rows[c])]


def _clip01(x: float) -> float:
    return x if math.isnan(x) else min(1.0, max(0.0, x))


def _exact(col: pd.Series) -> tuple[float, float, float, float]:
    mean = float(col.mean())
    return mean, 0.0, mean, mean
