"""Claim (e)'s measure: the fewest effective bits per weight at which a rule's error stays within ``D`` points
of the clean error of ordinary training (the ``none`` rule), with its interval.

**Which points.** The ``ternarize`` and ``quantize`` points of the sweep (:data:`BITS_FAMILIES`), except a
rule's *own training projection*: a test-time point that gives the same weights as the rule's projection
(up to a positive scale, on a probe of weights filling ``[-C, C]``) is the code the network was trained
in, not a finding: ``ternarize`` t = 0 is ``sign``, ``ternarize`` t = 0.5 and ``quantize`` 2 bits are
``round``. A random projection (``stoch``, ``stochm``) equals no deterministic point.

**The interval.** The baseline is ``none``'s clean error ``b``, the mean over its seeds, a reference level
with a standard deviation ``sd_b`` (:attr:`.bands.Measure.mean_sd`: its seeds' spread and test-set terms).
A point's error ``e`` has ``sd_e`` (test set, trials), so its distance above the baseline, ``e - b``, has
``sd = sqrt(sd_e^2 + sd_b^2)``. For each seed of the rule, three fewest-bits values: *central* (the points
with ``e - b <= D``), *optimistic* (``e - b - Z sd <= D``: possibly within) and *pessimistic*
(``e - b + Z sd <= D``: within even at the far end of its band). The interval runs from the lowest
optimistic value over the seeds to the highest pessimistic one. A seed with no point within needs more
bits than any point swept: ``inf``. ``b`` is common to every rule, yet enters each rule's bands as if
independent: conservative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..distortions import get_distortion
from .bands import Z, Measure, terms
from .projection import parse_rule

BITS_FAMILIES = ("ternarize", "quantize")
PROBE = 401  # probe weights spread evenly over [-C, C]
KEYS = ["spec", "strength_name", "strength"]


@dataclass(frozen=True)
class FewestBits:
    """A rule's fewest bits per seed (central, optimistic, pessimistic), the central point of each seed
    (``spec name=strength``, ``-`` when none is within; ``at``: its spec and strength) with its error, and
    the points not counted (``excluded``: labels; ``excluded_at``: spec and strength)."""

    rule: str
    central: tuple[float, ...]
    optimistic: tuple[float, ...]
    pessimistic: tuple[float, ...]
    points: tuple[str, ...]
    errors: tuple[float, ...]
    excluded: tuple[str, ...]
    at: tuple[tuple[str, float] | None, ...] = ()
    excluded_at: tuple[tuple[str, float], ...] = ()

    @property
    def mean(self) -> float:
        return float(np.mean(self.central)) if self.central else math.nan

    @property
    def low(self) -> float:
        return _end(self.optimistic, min)

    @property
    def high(self) -> float:
        return _end(self.pessimistic, max)


def _end(values: tuple[float, ...], pick) -> float:
    return math.nan if len(values) < 2 or any(math.isnan(v) for v in values) else float(pick(values))


def point_label(spec: str, name: str, strength: float) -> str:
    return f"{spec} {name}={strength:g}"


def is_own_projection(rule: str, spec: str, strength: float, clip: float = 1.0) -> bool:
    """Whether the test-time ``spec`` at ``strength`` gives the weights of ``rule``'s training projection."""
    r = parse_rule(rule, clip)
    if r.projection is None or r.projection.info.random:
        return False
    probe = torch.linspace(-r.clip, r.clip, PROBE).reshape(1, -1)
    mine = r.project(probe)
    theirs = get_distortion(spec)(probe, None if math.isnan(strength) else float(strength))
    top_mine, top_theirs = mine.abs().max(), theirs.abs().max()
    if top_mine == 0 or top_theirs == 0:
        return bool(top_mine == top_theirs)
    return torch.equal(mine / top_mine, theirs / top_theirs)


def fewest_bits(rows: pd.DataFrame, rule: str, baseline: Measure, within: float, clip: float = 1.0) -> FewestBits:
    """``baseline``: ``none``'s clean error per seed (fractions); ``within``: ``D`` in points. Points
    strictly within count (a tolerance of 1e-12 for the float of ``D / 100``)."""
    mine = rows[(rows["rule"] == rule) & rows["distortion"].isin(BITS_FAMILIES)]
    if "eff_bits" not in rows.columns or mine.empty:
        return FewestBits(rule, (), (), (), (), (), ())
    points = terms(mine, ["train_seed", *KEYS]).join(mine.groupby(["train_seed", *KEYS], dropna=False)["eff_bits"].mean())
    points = points.reset_index().dropna(subset=["eff_bits"])  # a point without effective bits says nothing
    own = {k for k in points[KEYS].drop_duplicates().itertuples(index=False)
           if is_own_projection(rule, k.spec, k.strength, clip)}
    points = points[np.array([k not in own for k in points[KEYS].itertuples(index=False)], dtype=bool)]
    above, sd = points["e"] - baseline.mean, np.sqrt(points["var"] + baseline.mean_sd ** 2)
    limits = {"central": above, "optimistic": above - Z * sd, "pessimistic": above + Z * sd}
    undefined = math.isnan(baseline.mean_sd)
    found: dict[str, list[float]] = {k: [] for k in limits}
    labels, errors, chosen = [], [], []
    for seed in sorted(points["train_seed"].unique()):
        of_seed = points["train_seed"] == seed
        for kind, distance in limits.items():
            ok = points[of_seed & (distance <= within / 100 + 1e-12)]
            blind = undefined and kind != "central"
            found[kind].append(math.nan if blind else float(ok["eff_bits"].min()) if len(ok) else math.inf)
            if kind == "central":
                best = ok.loc[ok["eff_bits"].idxmin()] if len(ok) else None
                labels.append("-" if best is None else point_label(best["spec"], best["strength_name"], best["strength"]))
                errors.append(math.nan if best is None else float(best["e"]))
                chosen.append(None if best is None else (best["spec"], float(best["strength"])))
    own = sorted(own)
    return FewestBits(rule, *(tuple(found[k]) for k in limits), tuple(labels), tuple(errors),
                      tuple(point_label(*k) for k in own), tuple(chosen), tuple((k.spec, float(k.strength)) for k in own))
