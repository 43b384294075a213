"""Confidence intervals and the aggregation of sweep rows into summary rows.

A summary row (one per distortion x strength) gives the number of trials and, for every metric column
(``error``, ``agreement``, ``accuracy``, ``loss``, and ``perplexity``, ``cosine``, ... where measured), the
mean and standard deviation (``ddof=1``) over trials and a 95% confidence interval of the mean with
Student's t (``mean +- t_{0.975, n-1} * std / sqrt(n)``, clipped to the metric's bounds: [0, 1] for
fractions such as error and agreement): ``{column}_mean``, ``_std``, ``_ci_low``, ``_ci_high``. The other
numeric columns (``weight_change``, ``nonfinite``, ``eff_bits``, ...) get their mean. A point whose outcome
does not depend on the seed (a
deterministic distortion, or a random one at its identity strength) is exact: std 0, interval of width 0.
A random point with a single trial has no interval (``nan``). The interval is over trials of the
distortion, for this evaluation set; it does not include the sampling error of the set itself.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .metrics import METRICS

GROUP = ["model", "dataset", "distortion", "spec", "strength_name", "strength"]
LAYER = "layer"  # the unit of a per-layer sweep's row (empty for the clean model)


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
    """One summary row per (model, dataset, distortion spec, strength), in the order of first appearance; per
    layer too when the rows carry a ``layer`` column (a per-layer sweep's)."""
    metrics = metric_columns(rows)
    extra = [c for c in _extra_columns(rows) if c not in metrics]
    group = [*GROUP, LAYER] if LAYER in rows.columns else GROUP
    out = []
    for key, g in rows.groupby(group, sort=False, dropna=False):
        rec = dict(zip(group, key))
        stochastic = bool(g["stochastic"].any())
        rec["trials"] = len(g)
        for col, (lo, hi) in metrics.items():
            mean, std, low, high = t_interval(g[col].to_numpy(), level) if stochastic else _exact(g[col])
            low, high = _clip(low, lo, hi), _clip(high, lo, hi)  # an interval stays within the metric's bounds
            rec.update({f"{col}_mean": mean, f"{col}_std": std, f"{col}_ci_low": low, f"{col}_ci_high": high})
        for col in ("weight_change", "nonfinite"):
            rec[f"{col}_mean"] = float(g[col].mean())
        for col in extra:  # columns added by extensions (eff_bits, ...): their mean
            rec[col] = float(g[col].mean())
        out.append(rec)
    return pd.DataFrame(out)


CORE_METRICS = ("error", "agreement", "accuracy", "loss")
CORE_COLUMNS = frozenset(GROUP + [LAYER, "trial", "seed", "n", *CORE_METRICS, "weight_change", "nonfinite", "stochastic"])


def metric_columns(rows: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """The metric columns of ``rows`` with their bounds: the core ones, every registered metric's column, and
    those the rows' ``meta`` lists (custom metrics), in that order."""
    bounds = {METRICS.get(n).column: METRICS.get(n).info.bounds for n in METRICS.names()}
    listed = {m["column"]: tuple(m.get("bounds") or (-math.inf, math.inf))
              for m in rows.attrs.get("meta", {}).get("metrics", []) if isinstance(m, dict) and "column" in m}
    found = {c: bounds[c] for c in CORE_METRICS if c in rows.columns}
    found.update({c: b for c, b in bounds.items() if c in rows.columns and c not in found})
    found.update({c: tuple(map(float, b)) for c, b in listed.items() if c in rows.columns and c not in found})
    return found


def _extra_columns(rows: pd.DataFrame) -> list[str]:
    return [c for c in rows.columns if c not in CORE_COLUMNS and pd.api.types.is_numeric_dtype(rows[c])
            and not pd.api.types.is_bool_dtype(rows[c])]


def _clip(x: float, low: float, high: float) -> float:
    return x if math.isnan(x) else min(high, max(low, x))


def _exact(col: pd.Series) -> tuple[float, float, float, float]:
    mean = float(col.mean())
    return mean, 0.0, mean, mean
