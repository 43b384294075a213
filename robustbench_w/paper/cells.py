"""The cells of the reproduce grid's table: a rule's error under one column, over training seeds and trials
(the claims' own quantities, with the uncertainty of the test set as well, are in :mod:`.bands`).

Rows (``results.csv``) carry ``rule`` and ``train_seed``: one row per rule x training seed x distortion x
strength x trial (one trial for a point that does not depend on the draw).

**Interval.** Every interval is the central 95% of the values it is over: their 2.5th to 97.5th percentile
(linear interpolation, numpy's default). A *cell* (one rule under one column) is over its rows: one per
training seed for a deterministic point, one per seed and trial for a random one. With fewer than two
training seeds there is no interval (``nan``): one model says nothing about the variance of training.

The interval describes where the outcomes lie, not where their mean lies: a Student-t interval of the mean
is either enormous for 2-3 seeds (t = 12.7 for 2) or, as seeds are added, shrinks until any difference, however
small beside the variance of training, "shows". The table's cells describe the models on this test set;
the claims (:mod:`.claims`) add the test set's sampling error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .grid import Column

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """The mean of ``values`` and their central ``LEVEL`` range; ``nan`` bounds with fewer than two seeds."""

    mean: float
    low: float
    high: float
    values: tuple[float, ...]
    seeds: int

    @classmethod
    def of(cls, values: Iterable[float], seeds: int) -> Interval:
        """A missing value (``nan``: a quantity a seed did not reach) leaves the interval undefined."""
        x = np.asarray(list(values), dtype=float)
        mean = float(np.nanmean(x)) if (~np.isnan(x)).any() else math.nan
        if seeds < 2 or len(x) == 0 or np.isnan(x).any():
            return cls(mean, math.nan, math.nan, tuple(map(float, x)), seeds)
        tail = 100 * (1 - LEVEL) / 2
        low, high = np.percentile(x, [tail, 100 - tail])
        return cls(mean, float(low), float(high), tuple(map(float, x)), seeds)

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


# ------------------------------------------------------------------ cells


def select(rows: pd.DataFrame, rule: str, spec: str, strength: float) -> pd.DataFrame:
    """The rows of one rule under one distortion spec at one strength (``nan``: a distortion without one)."""
    sel = (rows["rule"] == rule) & (rows["spec"] == spec)
    sel &= rows["strength"].isna() if math.isnan(strength) else np.isclose(rows["strength"], strength)
    return rows[sel]


def cell(rows: pd.DataFrame, rule: str, column: Column, value: str = "error") -> Interval:
    """A cell: the rule's ``value`` under ``column``, over its rows (seeds, and trials of a random point)."""
    found = select(rows, rule, column.spec, column.strength)
    return Interval.of(found[value], found["train_seed"].nunique())


def seed_means(rows: pd.DataFrame, rule: str, column: Column, value: str = "error") -> pd.Series:
    """``value`` per training seed, averaged over trials (index: ``train_seed``)."""
    return select(rows, rule, column.spec, column.strength).groupby("train_seed")[value].mean()


def summarize_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per rule x distortion spec x strength, in the order of first appearance: the number of seeds
    and of values, and the error's mean, standard deviation and interval (``error_low``, ``error_high``);
    the agreement's mean and interval; the mean of each other numeric column (``eff_bits``)."""
    extra = [c for c in ("eff_bits", "weight_change") if c in rows.columns]
    out = []
    keys = ["rule", "distortion", "spec", "strength_name", "strength"]
    for key, g in rows.groupby(keys, sort=False, dropna=False):
        rec = dict(zip(keys, key))
        seeds = g["train_seed"].nunique()
        rec.update({"seeds": seeds, "values": len(g)})
        for col in ("error", "agreement"):
            iv = Interval.of(g[col], seeds)
            rec.update({f"{col}_mean": iv.mean, f"{col}_low": iv.low, f"{col}_high": iv.high})
            if col == "error":
                rec["error_std"] = float(g[col].std(ddof=1)) if len(g) > 1 else math.nan
        rec.update({c: float(g[c].mean()) for c in extra})
        out.append(rec)
    return pd.DataFrame(out)
