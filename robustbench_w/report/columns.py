"""The metric columns of a summary, read generically: which metrics a result holds, which way is better,
their units, and the axis labels of strengths.

A summary holds a metric ``m`` when it has the column ``{m}_mean``; its 95% interval, where it has one, is
``{m}_ci_low`` .. ``{m}_ci_high``. Fractions (error, accuracy, agreement, ...) are shown in percent and their
differences in percentage points. Metric names compare with ``-`` and ``_`` alike (``snr-db`` is the column
``snr_db``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from ..distortions import get_distortion
from ..errors import InvalidValueError, WrobustError

DEFAULT_METRIC = "error"
NOT_METRICS = frozenset({"weight_change", "nonfinite"})  # summary means that describe the point, not the model
FRACTIONS = frozenset({"error", "accuracy", "agreement", "top5", "top5_error", "token_agreement"})
HIGHER_IS_BETTER = frozenset({"accuracy", "agreement", "top5", "cosine", "snr_db", "token_agreement"})
UNITS = {  # axis label of a metric that is not a fraction
    "loss": "loss (nats per input)", "perplexity": "perplexity (exp of nats per token)",
    "cosine": "cosine similarity to the clean outputs", "relative_l2": "relative L2 error, ‖y′ − y‖ / ‖y‖",
    "kl": "KL divergence from the clean outputs (nats)", "snr_db": "SNR over the clean outputs (dB)",
    "mse": "mean squared error (output units²)", "mae": "mean absolute error (output units)",
}


def column_name(metric: str) -> str:
    return metric.strip().lower().replace("-", "_")


@dataclass(frozen=True)
class Metric:
    """How one metric column is read and shown."""

    name: str  # the column prefix: ``{name}_mean``

    @property
    def fraction(self) -> bool:
        return self.name in FRACTIONS

    @property
    def higher_is_better(self) -> bool:
        return self.name in HIGHER_IS_BETTER

    @property
    def label(self) -> str:
        """Axis label with unit: ``error (%)``, ``loss (nats per input)``."""
        return f"{self.name} (%)" if self.fraction else UNITS.get(self.name, self.name)

    @property
    def unit(self) -> str:
        return "%" if self.fraction else ""

    @property
    def difference_unit(self) -> str:
        return "pp" if self.fraction else ""

    def shown(self, x: float | pd.Series) -> float | pd.Series:
        """The value as displayed: fractions in percent."""
        return 100 * x if self.fraction else x

    def text(self, x: float, digits: int = 2) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "-"
        return f"{self.shown(x):.{digits}f}" if self.fraction else f"{x:.4g}"

    def columns(self) -> tuple[str, str, str]:
        return f"{self.name}_mean", f"{self.name}_ci_low", f"{self.name}_ci_high"


def metrics_in(summary: pd.DataFrame) -> list[str]:
    """Metric names of a summary, in column order; those with an interval first."""
    names = [c[:-5] for c in summary.columns if c.endswith("_mean") and c[:-5] not in NOT_METRICS]
    return sorted(names, key=lambda m: f"{m}_ci_low" not in summary.columns)


def _has_values(summary: pd.DataFrame, metric: str) -> bool:
    return bool(pd.to_numeric(summary[f"{metric}_mean"], errors="coerce").notna().any())


def choose_metric(summaries: dict[str, pd.DataFrame], requested: str | None = None) -> Metric:
    """The metric to show for these summaries (name -> summary): ``requested`` (which each must hold), else
    ``error`` where every summary has values of it, else the first metric that every summary has values of."""
    if requested is not None:
        name = column_name(requested)
        for where, summary in summaries.items():
            if f"{name}_mean" not in summary.columns:
                raise InvalidValueError(f"{where}: no metric {requested!r} (it has: {', '.join(metrics_in(summary))})")
        return Metric(name)
    common = [m for m in _candidates(summaries) if all(_has_values(s, m) for s in summaries.values())]
    if not common:
        raise InvalidValueError(f"{', '.join(summaries)}: no metric with values in every file; name one with --metric")
    return Metric(DEFAULT_METRIC if DEFAULT_METRIC in common else common[0])


def _candidates(summaries: dict[str, pd.DataFrame]) -> list[str]:
    first, *rest = summaries.values()
    return [m for m in metrics_in(first) if all(f"{m}_mean" in s.columns for s in rest)]


def strength_label(spec: str, strength_name: str) -> str:
    """Axis label of a distortion's strength, with its meaning: ``sigma: w + N(0, a*sigma), a = max|w|``."""
    name = strength_name or "strength"
    try:
        dist = get_distortion(spec)
    except WrobustError:  # a plug-in distortion that is not installed here
        return name
    formula = dist.info.formula
    scale = f", a = {dist.scale} |w| per {dist.granularity}" if re.search(r"\ba\b", formula) else ""
    return f"{name}: {formula}{scale}"
