"""The metric contract: frozen metadata, per-input statistics, one reduction; the registry and plug-ins.

A metric measures one batch at a time. Its ``stats`` function sees the batch's :class:`~..outputs.View` (the
model's outputs reduced to one tensor, the inputs, the labels; derived tensors such as the argmax computed
once and shared) and the clean model's reference for the same batch (the same interface, holding only what
the metrics need), and returns per-input statistics: a tensor ``(batch,)`` or ``(batch, k)``. The engine sums
them over the whole set on the device (no per-row Python loop) and ``finish`` turns the ``k`` totals into the
reported value. An input whose outputs (or whose clean outputs) are not all finite takes the values ``bad``
instead, one per statistic (``None``: the statistic is kept, as token counts are): that is how such an input
counts as an error and never as an agreement.

Metrics register where they are defined (``@register_metric("cosine", ...)``); third-party packages add
metrics through the entry-point group ``robustbench_w.metrics`` (an entry point names a module that
registers on import, or a :class:`Metric`). A callable ``(outputs, clean_outputs, batch) -> per-input
scores`` is a metric too (:func:`custom_metric`): the mean of its scores over the inputs with finite outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ....errors import InvalidValueError
from ....registry import Registry

ENTRY_POINT_GROUP = "robustbench_w.metrics"
CLEAN_KINDS = ("pred", "vectors", "log_probs", "outputs")  # what of the clean outputs a metric may compare with
OUTPUT_KINDS = ("any", "classes", "tokens")
LABEL_KINDS = (None, "classes", "targets")
KINDS = ("classification", "fidelity", "regression", "language", "custom")

Stats = Callable[[object, object], torch.Tensor]  # (view, clean reference or None) -> (batch,) or (batch, k)
Finish = Callable[[list[float], int, int], float]  # (totals, inputs, inputs with non-finite outputs) -> value


def mean_over_inputs(totals: list[float], n: int, nonfinite: int) -> float:
    """The first total divided by the number of inputs."""
    return totals[0] / n if n else math.nan


@dataclass(frozen=True)
class MetricInfo:
    """Frozen metadata of one metric."""

    name: str
    formula: str
    kind: str  # classification, fidelity, regression, language, custom
    higher_is_better: bool
    labels: str | None = None  # None: needs no labels; "classes": integer class labels; "targets": numbers
    identity: float | None = None  # its value on the clean model, where that is fixed (agreement: 1)
    bounds: tuple[float, float] = (-math.inf, math.inf)  # where its values lie (intervals are clipped to it)
    clean: tuple[str, ...] = ()  # what of the clean outputs it compares with (CLEAN_KINDS)
    outputs: str = "any"  # any; classes: (batch, classes); tokens: next-token logits (batch, tokens, vocab)
    bad: tuple[float | None, ...] = (math.nan,)  # per statistic, the value of an input with non-finite outputs
    aliases: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        checks = [(self.kind in KINDS, "kind"), (self.labels in LABEL_KINDS, "labels"),
                  (self.outputs in OUTPUT_KINDS, "outputs"), (set(self.clean) <= set(CLEAN_KINDS), "clean"),
                  (self.bounds[0] <= self.bounds[1], "bounds"), (len(self.bad) >= 1, "bad")]
        wrong = [name for ok, name in checks if not ok]
        if wrong:
            raise ValueError(f"metric {self.name}: invalid metadata {', '.join(wrong)}")

    @property
    def needs_labels(self) -> bool:
        return self.labels is not None

    @property
    def column(self) -> str:
        """Its column in result rows (``relative-l2`` -> ``relative_l2``)."""
        return self.name.replace("-", "_")

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class Metric:
    """A metric: its metadata, its per-input statistics and their reduction."""

    info: MetricInfo
    stats: Stats
    finish: Finish = field(default=mean_over_inputs)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def column(self) -> str:
        return self.info.column


METRICS: Registry[Metric] = Registry("metric", Metric)


def register_metric(name: str, finish: Finish = mean_over_inputs, **info) -> Callable[[Stats], Stats]:
    """Decorator: register ``stats`` as metric ``name`` with the metadata in ``info`` (see :class:`MetricInfo`)."""

    def decorate(stats: Stats) -> Stats:
        aliases = tuple(a.lower() for a in info.pop("aliases", ()))
        meta = MetricInfo(name=name.lower(), aliases=aliases, description=(stats.__doc__ or "").strip(), **info)
        METRICS.register(meta.name, Metric(meta, stats, finish), aliases=aliases)
        return stats

    return decorate


def get_metric(metric: str | Metric | Callable) -> Metric:
    """A registered metric by name (or alias), a :class:`Metric` as it is, or a callable as a custom metric."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        return METRICS.get(metric)
    if callable(metric):
        return custom_metric(metric)
    raise InvalidValueError(f"a metric is a name or a callable (outputs, clean_outputs, batch), not {type(metric).__name__}")


def list_metrics(include: str | None = None, exclude: str | None = None) -> list[MetricInfo]:
    """Metadata of every registered metric, sorted by name, filtered by wildcards."""
    return [METRICS.get(n).info for n in METRICS.names(include, exclude)]


def custom_metric(fn: Callable, name: str | None = None) -> Metric:
    """``fn(outputs, clean_outputs, batch) -> per-input scores`` as a metric: the mean of the scores over the
    inputs whose outputs are finite. ``outputs`` and ``clean_outputs`` are the reduced outputs (``--output-key``,
    ``--pool``) of the distorted and the clean model; ``batch`` is the batch's named inputs with its ``labels``
    (a dict), or ``(inputs, labels)`` for one input tensor."""
    label = name or getattr(fn, "__name__", "") or "custom"
    label = "custom" if label == "<lambda>" else label
    if label.lower() in METRICS or any(label == m.column for m in map(METRICS.get, METRICS.names())):
        raise InvalidValueError(f"custom metric {label!r}: the name of a registered metric; give the function "
                                f"another name")

    def stats(view, clean) -> torch.Tensor:
        scores = fn(view.out, view.out if clean is None else clean.outputs, view.batch)
        return _scores(scores, len(view.out), label)

    info = MetricInfo(name=label, formula=f"mean of {label}(outputs, clean_outputs, batch)", kind="custom",
                      higher_is_better=True, clean=("outputs",), bad=(0.0,), description=(fn.__doc__ or "").strip())
    return Metric(info, stats, mean_over_finite)


def _scores(scores: object, n: int, label: str) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        scores = torch.as_tensor(scores)
    if scores.shape not in ((n,), (n, 1)):
        raise InvalidValueError(f"custom metric {label!r} must return one score per input, shape ({n},), "
                                f"not {tuple(scores.shape)}")
    return scores.reshape(n).double()


def mean_over_finite(totals: list[float], n: int, nonfinite: int) -> float:
    """The first total divided by the number of inputs whose outputs are finite (nan when there are none)."""
    finite = n - nonfinite
    return totals[0] / finite if finite > 0 else math.nan


def ratio(totals: list[float], n: int, nonfinite: int) -> float:
    """The first total divided by the second (a sum over tokens over their count)."""
    return totals[0] / totals[1] if totals[1] else math.nan


METRICS.load_entry_points(ENTRY_POINT_GROUP)
