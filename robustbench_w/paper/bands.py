"""Per-seed quantities of the reproduce grid with the uncertainty of their data: the spread over training
seeds, over the trials of a random distortion and over the test set (:mod:`.claims` reads them).

**The band of one seed.** A seed's error in one column is its mean over trials, ``e``; its variance has two
terms: the **test set**, the binomial variance of an error rate measured on ``n`` test inputs, in Agresti and
Coull's form ``p (1 - p) / (n + 4)`` with ``p = (n e + 2) / (n + 4)`` (which, unlike ``e (1 - e) / n``, does
not vanish at an error of 0: a clean error of 1% on 355 images is 3 or 4 mistakes), and the **trials**, the sample variance of the trials' errors over their number
(``s^2 / T``; none with one trial). ``results.csv`` holds one error per row, not which inputs were wrong, so
a bootstrap over test inputs cannot be done from it; the binomial term stands in for it. A per-seed quantity
that is a sum ``sum c_j e_j`` of errors (a loss: the error under a distortion minus the clean error; a mean
over columns) has the variance ``sum c_j^2 var_j``, the columns taken as independent. The columns of one
seed are measured on the same test inputs, and a network wrong on an input clean is mostly wrong on it
distorted too, so the difference of two of them varies less than that: the term is conservative. A spread
(largest minus smallest error over columns) takes the variance of the two columns that give it. The seed's
band is ``value +- Z sd``, ``Z`` the two-sided 95% normal quantile.

**The interval over seeds.** The interval of a quantity runs from the lowest lower end of its seeds'
bands to the highest upper end: it holds every seed's outcome and the test-set uncertainty of each, so
two rules' intervals that do not overlap say that every model of one did better than every model of the
other, by more than a test set of this size could change. Nothing is drawn at random (no resampling), so
the intervals are the same on every run. With fewer than two seeds there is no interval: one model says
nothing about the variance of training.

The binomial term: A. Agresti and B. A. Coull, "Approximate is better than 'exact' for interval estimation of
binomial proportions", The American Statistician 52 (1998) 119-126.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .cells import select
from .grid import Column

Z = 1.959963984540054  # two-sided 95% quantile of the normal distribution
LEVEL = 0.95


@dataclass(frozen=True)
class Measure:
    """A quantity per training seed (``values``) with the standard deviation of each (``sds``: test set
    and trials); ``low`` and ``high`` are its interval over seeds (``nan`` with fewer than two)."""

    values: tuple[float, ...]
    sds: tuple[float, ...]

    @property
    def seeds(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values and not any(map(math.isnan, self.values)) else math.nan

    @property
    def low(self) -> float:
        return self._end(-1)

    @property
    def high(self) -> float:
        return self._end(1)

    def _end(self, side: int) -> float:
        ends = [v + side * Z * s for v, s in zip(self.values, self.sds)]
        if self.seeds < 2 or any(math.isnan(e) for e in ends):
            return math.nan
        return max(ends) if side > 0 else min(ends)

    @property
    def mean_sd(self) -> float:
        """The standard deviation of :attr:`mean` as an estimate of the mean over all seeds: the seeds'
        variance over their number plus the seeds' own (test-set, trial) variances; ``nan`` below 2 seeds."""
        k = self.seeds
        if k < 2 or math.isnan(self.mean):
            return math.nan
        return math.sqrt(float(np.var(self.values, ddof=1)) / k + sum(s * s for s in self.sds) / k ** 2)

    def scaled(self, k: float) -> Measure:
        return Measure(tuple(k * v for v in self.values), tuple(abs(k) * s for s in self.sds))


def terms(found: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: ``e`` (the error, mean over trials) and ``var`` (test-set plus trial variance)."""
    g = found.groupby(keys, dropna=False)
    e, n, trials = g["error"].mean(), g["n"].mean(), g["error"].count()
    p = (n * e + 2) / (n + 4)
    return pd.DataFrame({"e": e, "var": p * (1 - p) / (n + 4) + g["error"].var(ddof=1).fillna(0.0) / trials})


def seed_terms(rows: pd.DataFrame, rule: str, column: Column) -> pd.DataFrame:
    """:func:`terms` per training seed of one rule in one column."""
    return terms(select(rows, rule, column.spec, column.strength), ["train_seed"])


def linear(rows: pd.DataFrame, rule: str, terms: Sequence[tuple[Column, float]], seeds: Sequence[int]) -> Measure:
    """Per seed ``sum c e(column)`` and its standard deviation; a seed lacking a column gives ``nan``."""
    values, sds = [], []
    parts = [(seed_terms(rows, rule, col), c) for col, c in terms]
    for seed in seeds:
        got = [(t.loc[seed], c) for t, c in parts if seed in t.index]
        ok = len(got) == len(parts)
        values.append(sum(c * t["e"] for t, c in got) if ok else math.nan)
        sds.append(math.sqrt(sum(c * c * t["var"] for t, c in got)) if ok else math.nan)
    return Measure(tuple(map(float, values)), tuple(map(float, sds)))


def spread(rows: pd.DataFrame, rule: str, columns: Sequence[Column], seeds: Sequence[int]) -> Measure:
    """Per seed the largest minus the smallest error over ``columns``; the variance of those two columns."""
    table = [seed_terms(rows, rule, c).reindex(seeds) for c in columns]
    e = pd.concat([t["e"] for t in table], axis=1).to_numpy()
    var = pd.concat([t["var"] for t in table], axis=1).to_numpy()
    values, sds = [], []
    for i in range(len(seeds)):
        if np.isnan(e[i]).any():
            values.append(math.nan)
            sds.append(math.nan)
            continue
        hi, lo = int(np.argmax(e[i])), int(np.argmin(e[i]))
        values.append(float(e[i, hi] - e[i, lo]))
        sds.append(math.sqrt(var[i, hi] + var[i, lo]))
    return Measure(tuple(values), tuple(sds))
