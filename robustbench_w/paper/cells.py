"""The numbers of the reproduce grid, over training seeds and trials: cells, and the per-seed quantities that
the claims compare (:mod:`.claims`).

Rows (``results.csv``) carry ``rule`` and ``train_seed``: one row per rule x training seed x distortion x
strength x trial (one trial for a point that does not depend on the draw).

**Interval.** Every interval is the central 95% of the values it is over: their 2.5th to 97.5th percentile
(linear interpolation, numpy's default). A *cell* (one rule under one column) is over its rows: one per
training seed for a deterministic point, one per seed and trial for a random one. A *per-seed quantity*
(spread, mean over noise strengths, fewest bits) is computed for each seed from that seed's errors averaged
over trials, and its interval is over the seeds. With fewer than two training seeds there is no interval
(``nan``): one model says nothing about the variance of training.

The interval describes where the outcomes lie, not where their mean lies: a Student-t interval of the mean
is either enormous for 2-3 seeds (t = 12.7 for 2) or, as seeds are added, shrinks until any difference, however
small beside the variance of training, "shows"; verdicts would follow the number of seeds, not the rules.
Two intervals that do not overlap say that every seed of one rule did better than every seed of the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .grid import CLEAN, Column

LEVEL = 0.95
BITS_FAMILIES = ("ternarize", "quantize")  # the sweeps that claim 5 reads effective bits from


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

    def below(self, other: Interval) -> int:
        """1: entirely below ``other``; -1: entirely above; 0: they overlap (or one is undefined)."""
        if not (self.defined and other.defined):
            return 0
        return 1 if self.high < other.low else -1 if self.low > other.high else 0


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


# ------------------------------------------------------------------ per-seed quantities


def spread(rows: pd.DataFrame, rule: str, columns: Sequence[Column]) -> Interval:
    """Per seed: the largest minus the smallest of its errors over ``columns`` (the clean column included)."""
    table = pd.concat({c.label: seed_means(rows, rule, c) for c in columns}, axis=1)
    values = (table.max(axis=1, skipna=False) - table.min(axis=1, skipna=False)) if len(table) else table
    return Interval.of(values, len(table))


def mean_over(rows: pd.DataFrame, rule: str, columns: Sequence[Column]) -> Interval:
    """Per seed: the mean of its errors over ``columns``."""
    table = pd.concat({c.label: seed_means(rows, rule, c) for c in columns}, axis=1)
    return Interval.of(table.mean(axis=1, skipna=False), len(table))


@dataclass(frozen=True)
class FewestBits:
    """Per seed: the fewest effective bits per weight among the bits-sweep points whose error is at most
    ``within`` points above the seed's clean error, and the point that gave them (``nan`` and ``-`` when no
    point stays within)."""

    interval: Interval
    points: tuple[str, ...]
    errors: tuple[float, ...]


def fewest_bits(rows: pd.DataFrame, rule: str, within: float, families: Sequence[str] = BITS_FAMILIES) -> FewestBits:
    mine = rows[(rows["rule"] == rule) & rows["distortion"].isin(families)]
    if "eff_bits" not in rows.columns or mine.empty:
        return FewestBits(Interval.of([], 0), (), ())
    clean = seed_means(rows, rule, CLEAN)
    per_point = mine.groupby(["train_seed", "spec", "strength_name", "strength"], dropna=False)[
        ["error", "eff_bits"]].mean().reset_index()
    bits, points, errors = [], [], []
    for seed, g in per_point.groupby("train_seed"):
        ok = g[g["error"] <= clean.get(seed, math.nan) + within / 100 + 1e-12]
        best = ok.loc[ok["eff_bits"].idxmin()] if not ok.empty else None
        bits.append(math.nan if best is None else float(best["eff_bits"]))
        points.append("-" if best is None else f"{best['spec']} {best['strength_name']}={best['strength']:g}")
        errors.append(math.nan if best is None else float(best["error"]))
    return FewestBits(Interval.of(bits, len(bits)), tuple(points), tuple(errors))
