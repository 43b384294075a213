"""When a gate's random point has had enough trials: as soon as every requirement on it is decided.

With ``trials = "auto"`` (the gate's default) a random point is evaluated ``MIN_TRIALS`` (3) times. After
each trial the point's summary (:func:`..engine.runs.stats.summarize`: the mean and the 95% Student-t
interval of the mean, clipped to the metric's bounds) is judged against every limit of every requirement on
the point: a limit is **decided** when the whole interval of its measure lies on one side of it (at most the
limit: PASS whatever the rest of the draws would bring; above it: FAIL; likewise for a lower limit). The point
stops when each of its limits is decided, or at ``max_trials`` (default 30): a requirement with a limit still
undecided there is judged on the mean and marked ``undecided at cap``. With ``ci_width`` given, a point
also stops once the interval of every undecided measure is within +-``ci_width`` (percentage points for
fractions, else the metric's unit): the limit sits inside the noise, and more trials would only narrow it
slowly; the requirement is judged on the mean and marked ``undecided within ci_width``.

This is a sequential test, so it stops a little early more often than a fixed count would when the first
draws happen to agree (the reason the minimum is 3, as for ``sweep --trials auto``, :mod:`..engine.runs.trials`).
Requirements that share a distortion and strength share the point, and its trials run until all of them are
decided. A deterministic point runs once; a limit on the effective bits (``max_bits``) drives no trials.

The rule is deterministic: it reads only the rows of the point's trials so far and the clean model's row,
so a run that is resumed from its log reaches the same trial counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ..engine.defaults import AUTO, MIN_TRIALS
from ..engine.passes.metrics import get_metric
from ..engine.runs.stats import summarize
from ..engine.runs.trials import TrialRule
from .policy import LIMIT_KINDS, LimitKind, Policy, Requirement

DECIDED, AT_CAP, NARROW = "decided", "undecided at cap", "undecided within ci_width"
DETERMINISTIC, FIXED = "deterministic (one run)", "fixed trials"
UNDECIDED = (AT_CAP, NARROW)


def measures(kind: LimitKind, row: Mapping, clean: Mapping, bits: tuple | None,
             metric: str | None = None) -> tuple[float, float, float, int]:
    """``(mean, ci low, ci high, number of draws)`` of a limit's measure at a point (``row``: its summary row,
    ``clean``: the clean model's)."""
    if kind.measure == "bits":
        return bits if bits is not None else (math.nan, math.nan, math.nan, 0)
    col = get_metric(metric).column if kind.on_metric else ("error" if kind.measure == "drop" else kind.measure)
    mean, low, high = (_float(row.get(f"{col}_{s}")) for s in ("mean", "ci_low", "ci_high"))
    base = _float(clean.get(f"{col}_mean"))
    if kind.measure in ("drop", "increase"):
        mean, low, high = mean - base, low - base, high - base
    elif kind.measure == "ratio":
        mean, low, high = (x / base if base else math.nan for x in (mean, low, high))
    return mean, low, high, int(row.get("trials", 1))


def _float(x: object) -> float:
    return math.nan if x is None else float(x)


def limit_decided(r: Requirement, key: str, row: Mapping, clean: Mapping) -> bool:
    """Whether the 95% interval of the limit's measure lies wholly on one side of the limit (bits: always)."""
    kind = LIMIT_KINDS[key]
    if kind.measure == "bits":
        return True
    _, low, high, _ = measures(kind, row, clean, None, r.metric)
    if math.isnan(low) or math.isnan(high):
        return False
    limit = r.limits[key]
    return high <= limit or low > limit if kind.upper else low >= limit or high < limit


def undecided_limits(r: Requirement, row: Mapping, clean: Mapping) -> list[str]:
    return [k for k in r.limits if not limit_decided(r, k, row, clean)]


def narrow(r: Requirement, keys: Sequence[str], row: Mapping, clean: Mapping, width: float) -> bool:
    """Whether the intervals of these limits' measures are within +-``width`` (pp for fractions)."""
    for key in keys:
        kind = LIMIT_KINDS[key]
        _, low, high, _ = measures(kind, row, clean, None, r.metric)
        fraction = kind.low == 0.0 and kind.high == 1.0
        if not (high - low) / 2 <= (width / 100 if fraction else width):
            return False
    return True


@dataclass(frozen=True)
class DecisionRule(TrialRule):
    """The gate's ``trials = "auto"``: more trials while a requirement on the point is undecided."""

    requirements: tuple[Requirement, ...] = ()
    clean: Mapping = field(default_factory=dict)  # the clean model's summary row
    width: float | None = None  # ci_width, when the policy gave one

    def more(self, rows: Sequence[Mapping]) -> bool:
        n = len(rows)
        if n < self.first:
            return True
        if n >= self.cap:
            return False
        row = point_summary(rows)
        return any(state(r, row, self.clean, self.width, self.cap) is None for r in self.on_point(rows[0]))

    def on_point(self, row: Mapping) -> list[Requirement]:
        strength = _float(row.get("strength"))
        return [r for r in self.requirements if r.point[0] == row["spec"]
                and (r.point[1] == strength or (math.isnan(r.point[1]) and math.isnan(strength)))]

    def meta(self) -> dict:
        return {"mode": AUTO, "until": "every requirement on the point is decided",
                "min_trials": min(MIN_TRIALS, self.max_trials), "max_trials": self.max_trials,
                "ci_width": self.width, "judged": []}

    def describe(self) -> str:
        return f"auto (until decided, max {self.max_trials})"


def decision_rule(policy: Policy, clean_row: Mapping) -> DecisionRule:
    """The rule of an adaptive policy, given the clean model's row."""
    base = policy.trial_rule
    clean = summarize(pd.DataFrame([clean_row])).iloc[0].to_dict()
    return DecisionRule(None, base.ci_width, base.max_trials, requirements=policy.requirements, clean=clean,
                        width=policy.ci_width)


def point_summary(rows: Sequence[Mapping]) -> dict:
    return summarize(pd.DataFrame(list(rows))).iloc[0].to_dict()


def state(r: Requirement, row: Mapping, clean: Mapping, width: float | None, cap: int) -> str | None:
    """Why a random requirement with these measures may stop (:data:`DECIDED`, :data:`AT_CAP`,
    :data:`NARROW`), or None while it needs more trials."""
    open_ = undecided_limits(r, row, clean)
    if not open_:
        return DECIDED
    if int(row.get("trials", 1)) >= cap:
        return AT_CAP
    if width is not None and narrow(r, open_, row, clean, width):
        return NARROW
    return None


def stop_reason(r: Requirement, policy: Policy, row: Mapping, clean: Mapping) -> str:
    """Why the requirement's point has the trials it has: deterministic, fixed, decided or undecided."""
    if not r.distortion.is_random_at(r.strength):
        return DETERMINISTIC
    if policy.trials != AUTO:
        return FIXED
    rule = policy.trial_rule
    return state(r, row, clean, policy.ci_width, rule.max_trials) or "undecided"
