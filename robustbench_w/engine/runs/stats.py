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

Rows of an adaptive run (``meta["trials"]["mode"] == "auto"``, :mod:`.trials`) give their summary rows one more
column, ``capped``: whether the point stopped at ``max_trials`` with the interval of a judged metric still
wider than the run's width (:func:`half_width`, unclipped, as the run judged it).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from ..passes.metrics import METRICS

GROUP = ["model", "dataset", "distortion", "spec", "strength_name", "strength"]
LAYER = "layer"  # the unit of a per-layer sweep's row (empty for the clean model)


@lru_cache(maxsize=256)
def t_quantile(df: int, level: float = 0.95) -> float:
    """Student's t quantile of a two-sided ``level`` interval with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def t_interval(values: np.ndarray | list[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, std, low, high)`` of a sample: Student-t interval for its mean."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if len(x) == 1:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = t_quantile(len(x) - 1, level) * std / math.sqrt(len(x))
    return mean, std, mean - half, mean + half


def half_width(values: np.ndarray | list[float], level: float = 0.95) -> float:
    """Half the width of the (unclipped) t interval of the mean: 0 when every value is the same (also
    infinite ones), ``nan`` with fewer than two values or with a mix of infinite and finite ones."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) >= 2 and bool((x == x[0]).all()):
        return 0.0
    with np.errstate(invalid="ignore"):  # inf - inf: no interval (nan)
        _, _, low, high = t_interval(x, level)
    return (high - low) / 2


def summarize(rows: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One summary row per (model, dataset, distortion spec, strength), in the order of first appearance; per
    layer too when the rows carry a ``layer`` column (a per-layer sweep's)."""
    metrics = metric_columns(rows)
    extra = [c for c in _extra_columns(rows) if c not in metrics]
    group = [*GROUP, LAYER] if LAYER in rows.columns else GROUP
    adaptive = adaptive_trials(rows)
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
        if adaptive is not None:
            rec["capped"] = stochastic and is_capped(g, adaptive)
        out.append(rec)
    return pd.DataFrame(out)


def adaptive_trials(rows: pd.DataFrame) -> dict | None:
    """The adaptive rule a run recorded in its meta (``trials``), or None for a fixed count."""
    spec = rows.attrs.get("meta", {}).get("trials")
    return spec if isinstance(spec, dict) and spec.get("mode") == "auto" else None


def is_capped(g: pd.DataFrame, rule: dict) -> bool:
    """Whether a point's trials ``g`` reached the cap with a judged metric's interval wider than its width."""
    if len(g) < int(rule.get("max_trials", 0)):
        return False
    return any(not half_width(g[j["column"]].to_numpy()) <= float(j["threshold"])
               for j in rule.get("judged", []) if j.get("column") in g)


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
