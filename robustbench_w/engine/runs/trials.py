"""How many trials a random point gets: a fixed number (``--trials N``), or as many as its interval needs
(``--trials auto``, the default of ``sweep`` and ``demo``).

**The adaptive rule.** A random point (a random distortion at a strength where it changes the weights) is
evaluated :data:`MIN_TRIALS` times; then, as long as the 95% Student-t interval of the mean of a judged metric
has a half-width ``t_{0.975, n-1} * std / sqrt(n)`` above ``W`` (``--ci-width``), one more trial is added, up
to ``M`` trials (``--max-trials``, default 30). A point that reaches ``M`` with an interval still wider than
``W`` is *capped*: its summary row says so (``capped``, :func:`.stats.summarize`) and the report marks it. Deterministic points (and
random ones at their identity strength) are evaluated once, as with a fixed count.

- ``W`` is in percentage points for fractions (error, agreement, accuracy, ...: ``--ci-width 2`` = +-0.02)
  and in the metric's own unit otherwise (perplexity, dB, ...); the default is 2.
- The judged metrics are those whose interval the report shows: a classifier's error (its agreement
  without labels), a language model's perplexity, the metrics given with ``--metric``.
- :data:`MIN_TRIALS` is 3: the fewest with which a t interval means something (with 2 trials ``t`` is 12.7
  and two equal draws would stop at once). The rule judges the interval the run reports, so a stopped point's
  interval is never wider than ``W``; like every sequential rule it stops a little early more often than a
  fixed count would when the first draws happen to agree, which is why the minimum is not 2.
- The rule is deterministic: trial ``k`` of a point draws from a seed derived from the point and ``k``
  (:mod:`.seeding`), and whether trial ``k + 1`` is needed depends only on the rows of trials ``0..k``
  (:meth:`TrialRule.more`). A run that is stopped and resumed from its rows, or run again, reaches the same
  trial count at every point; a runner given the rows it already has (``known``) continues where they end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from ...errors import InvalidValueError
from ..defaults import AUTO, DEFAULT_CI_WIDTH, DEFAULT_MAX_TRIALS, MIN_TRIALS, TRIALS_CAP, too_many_trials
from .points import group_of
from .stats import half_width

FRACTION = (0.0, 1.0)

Judged = Sequence[tuple[str, tuple[float, float]]]  # (column, bounds) of each judged metric


@dataclass(frozen=True)
class TrialRule:
    """A fixed number of trials (``fixed``), or the adaptive rule (``fixed`` None) with its width and cap."""

    fixed: int | None = None
    ci_width: float = DEFAULT_CI_WIDTH
    max_trials: int = DEFAULT_MAX_TRIALS
    judged: tuple[tuple[str, tuple[float, float]], ...] = ()  # set by the runner once the task is known

    @property
    def auto(self) -> bool:
        return self.fixed is None

    @property
    def first(self) -> int:
        """Trials planned for a random point before any judging."""
        return self.fixed if self.fixed is not None else min(MIN_TRIALS, self.max_trials)

    @property
    def cap(self) -> int:
        return self.fixed if self.fixed is not None else self.max_trials

    def threshold(self, bounds: tuple[float, float]) -> float:
        """``W`` in the metric's values: percentage points of a fraction, else its own unit."""
        return self.ci_width / 100 if tuple(bounds) == FRACTION else self.ci_width

    def judging(self, judged: Judged) -> TrialRule:
        return replace(self, judged=tuple((c, tuple(b)) for c, b in judged))

    def narrow(self, rows: Sequence[Mapping]) -> bool:
        """Whether every judged metric's 95% interval over ``rows`` (a point's trials) is within ``W``."""
        return all(half_width([r[col] for r in rows]) <= self.threshold(b) for col, b in self.judged)

    def more(self, rows: Sequence[Mapping]) -> bool:
        """Whether a random point with these trials' rows needs another trial."""
        n = len(rows)
        if n < self.first:
            return True
        return self.auto and n < self.cap and not self.narrow(rows)

    def meta(self) -> dict:
        """What the run's meta records, and :func:`capped` reads back."""
        if not self.auto:
            return {"mode": "fixed", "trials": self.fixed}
        return {"mode": AUTO, "ci_width": self.ci_width, "min_trials": min(MIN_TRIALS, self.max_trials),
                "max_trials": self.max_trials,
                "judged": [{"column": c, "threshold": self.threshold(b)} for c, b in self.judged]}

    def describe(self) -> str:
        return str(self.fixed) if not self.auto else f"auto (95% CI +-{self.ci_width:g}, max {self.max_trials})"


def trial_rule(trials: int | str | TrialRule = AUTO, ci_width: float | None = None,
               max_trials: int | None = None) -> TrialRule:
    """The rule from what a user gave (``--trials N|auto``, ``--ci-width``, ``--max-trials``), checked."""
    if isinstance(trials, TrialRule):
        return trials
    text = str(trials).strip().lower()
    if text != AUTO:
        fixed = _count(trials, "--trials", "or auto")
        given = [flag for flag, v in (("--ci-width", ci_width), ("--max-trials", max_trials)) if v is not None]
        if given:
            raise InvalidValueError(f"{' and '.join(given)} apply to --trials auto, not to a fixed --trials {fixed}")
        return TrialRule(fixed=fixed)
    width = DEFAULT_CI_WIDTH if ci_width is None else float(ci_width)
    if not (width > 0 and math.isfinite(width)):
        raise InvalidValueError(f"--ci-width must be a positive number, not {ci_width!r}")
    cap = DEFAULT_MAX_TRIALS if max_trials is None else _count(max_trials, "--max-trials", "")
    if cap < 2:
        raise InvalidValueError(f"--max-trials must be at least 2 (an interval needs two trials), not {cap}")
    return TrialRule(None, width, cap)


def _count(value: object, flag: str, alternative: str) -> int:
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        n = 0
    if n < 1 or (isinstance(value, float) and value != n):
        raise InvalidValueError(f"{flag} must be a positive whole number{' ' + alternative if alternative else ''}, "
                                f"not {value!r}")
    if n > TRIALS_CAP:
        raise InvalidValueError(too_many_trials(flag, n))
    return n


def extend(points: Sequence, rule: TrialRule, rows_of: Callable[[object], Sequence[Mapping]]) -> Iterator:
    """``points`` in order, each random point's group (its distortion and strength; its trials are
    consecutive) followed by as many more trials as ``rule`` asks for. ``rows_of(point)`` gives the rows of the
    point's group so far; the caller records each point's row before asking for the next point."""
    for i, point in enumerate(points):
        yield point
        last = i + 1 == len(points) or group_of(points[i + 1]) != group_of(point)
        trial = point.trial
        while last and point.stochastic and rule.more(rows_of(point)):
            trial += 1
            yield replace(point, trial=trial)
