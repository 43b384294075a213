"""Effects and thresholds: what a claim of the reproduce grid rests on, and how a verdict follows from it.

An **effect** is a number with an interval, computed from per-seed quantities that carry the uncertainty of
their data (:mod:`.bands`): a *difference* (a loss in points, bits saved), or a *share* (the part of
``none``'s loss that clipping removes, one rule's spread as a part of ``none``'s). Across two rules the
interval is the interval arithmetic of theirs: ``a - b`` runs from ``a.low - b.high`` to ``a.high - b.low``,
``a / b`` over the four corners (defined when ``b``'s interval excludes 0). Two rules' seeds are distinct
models, so nothing is paired across rules; within one rule a quantity is computed per seed (a loss is the
same model's error under a distortion minus its clean error) before its interval is taken.

A **threshold** states how large the effect must be to mean what the claim says (``more than 10 points``).
The verdict of one effect: ``shown`` when the whole interval is beyond the threshold, ``not shown`` when
the whole interval is at or on the wrong side of it (an interval on the wrong side of zero is one of
those), ``inconclusive`` otherwise and when there is no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

SHOWN, NOT_SHOWN, INCONCLUSIVE = "shown", "not shown", "inconclusive"
VERDICT = {1: SHOWN, -1: NOT_SHOWN, 0: INCONCLUSIVE}
MORE, LESS = "more than", "less than"


class Ranged(Protocol):
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Span:
    """A value and its interval."""

    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Threshold:
    relation: str  # MORE or LESS
    value: float
    unit: str  # "points", "share" (a fraction, shown in %) or "bits"
    why: str

    @property
    def text(self) -> str:
        value = f"{100 * self.value:g}%" if self.unit == "share" else f"{self.value:g} {self.unit}"
        return f"{self.relation} {value}"


@dataclass(frozen=True)
class Effect:
    """One effect: its name (the part of the claim), what it is, its value and interval and its inputs
    (name -> per-seed quantity, :class:`.bands.Measure`, or a rule's fewest bits)."""

    name: str
    text: str
    span: Span
    unit: str
    inputs: dict = field(default_factory=dict)
    undefined: str = ""  # why there is no interval, when there is none
    caveat: str = ""  # what the reason should add (an interval unbounded, and why)

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.span.low) or math.isnan(self.span.high))

    @property
    def interval_text(self) -> str:
        s = self.span
        if math.isnan(s.mean):
            return "-"
        if not self.defined:
            return amount(s.mean, self.unit)
        return f"{amount(s.mean, self.unit)} [{number(s.low, self.unit)}, {number(s.high, self.unit)}]"


def number(x: float, unit: str) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{100 * x:.0f}%" if unit == "share" else f"{x:.2f}" if unit == "bits" else f"{x:.1f}"


def amount(x: float, unit: str) -> str:
    return number(x, unit) if unit == "share" else f"{number(x, unit)} {unit}"


def difference(a: Ranged, b: Ranged) -> Span:
    """``a - b`` with its interval."""
    return Span(a.mean - b.mean, a.low - b.high, a.high - b.low)


def ratio(a: Ranged, b: Ranged) -> Span:
    """``a / b``; the interval over the four corners, ``nan`` unless ``b``'s interval lies above 0."""
    mean = a.mean / b.mean if b.mean > 0 else math.nan
    if not b.low > 0 or math.isnan(a.low) or math.isnan(a.high):
        return Span(mean, math.nan, math.nan)
    corners = [x / y for x in (a.low, a.high) for y in (b.low, b.high)]
    return Span(mean, min(corners), max(corners))


def share_removed(a: Ranged, b: Ranged) -> Span:
    """``1 - a / b``: the share of ``b`` that ``a`` does not keep."""
    r = ratio(a, b)
    return Span(1 - r.mean, 1 - r.high, 1 - r.low)


def judge(effect: Effect, threshold: Threshold) -> tuple[int, str]:
    """The effect's outcome (1 shown, -1 not shown, 0 inconclusive) and its one-line reason."""
    head = f"{effect.name}: {effect.interval_text}" + (f" ({effect.caveat})" if effect.caveat else "")
    if not effect.defined:
        return 0, f"{head}, no interval ({effect.undefined or 'fewer than two seeds'})"
    s, t, more = effect.span, threshold.value, threshold.relation == MORE
    if (s.low > t) if more else (s.high < t):
        return 1, f"{head}, all of it {threshold.text}"
    if (s.high <= t) if more else (s.low >= t):
        return -1, f"{head}, none of it {threshold.text}"
    return 0, f"{head}, across the threshold ({threshold.text})"
