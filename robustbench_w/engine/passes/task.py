"""What a sweep measures: the metrics (given with ``--metric``, or the task's defaults), checked on the probe.

The defaults follow the task, read from the probe batch's measured output (:mod:`.outputs`):

- **language model**: next-token scores ``(batch, tokens, vocab)`` over the inputs' ``input_ids``, from a
  causal language model (an ``hf:`` folder whose class is one; for other models, scores of that shape):
  ``perplexity``;
- **regression**: numeric (float) labels, or one output per input with labels: ``mse`` and ``mae``;
- **classifier**: scores ``(batch, classes)`` with two or more classes: today's ``error``, ``accuracy``,
  ``loss`` (with labels) and ``agreement``; the report shows the error and the agreement;
- **anything else** (feature vectors, pooled token states, outputs without labels that are not class
  scores): ``cosine`` and ``relative-l2`` against the clean model.

Every metric is checked on the probe batch before any work: it needs labels the data lacks, class labels the
data has as numbers, outputs of another shape, or it fails on the batch: one line, exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ...errors import InvalidValueError, WrobustError
from .metrics import METRICS, Metric, get_metric, list_metrics
from .outputs import OutputPlan, View, describe_key

CLASSIFIER = ("error", "accuracy", "loss", "agreement")
CLASSIFIER_SHOWN = ("error", "agreement")
LANGUAGE_MODEL = ("perplexity",)
REGRESSION = ("mse", "mae")
OUTPUTS = ("cosine", "relative-l2")

MetricSpec = str | Metric | Callable


@dataclass(frozen=True)
class Task:
    """The task a model was found to do, the metrics measured, those the report's table shows, and the output."""

    name: str
    metrics: tuple[Metric, ...]
    shown: tuple[str, ...]
    plan: OutputPlan

    @property
    def clean_kinds(self) -> tuple[str, ...]:
        """What of the clean outputs the metrics compare with."""
        return tuple(dict.fromkeys(k for m in self.metrics for k in m.info.clean))

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.metrics]


def as_metric_list(metric: MetricSpec | Iterable[MetricSpec] | None) -> list[Metric]:
    """The metrics named (each once, in order); empty for None."""
    if metric is None:
        return []
    items = [metric] if isinstance(metric, (str, Metric)) or callable(metric) else list(metric)
    unique: dict[str, Metric] = {}
    for m in map(get_metric, items):
        unique.setdefault(m.name, m)
    return list(unique.values())


def infer_task(view: View, plan: OutputPlan, hint: str | None) -> str:
    """``language-model``, ``regression``, ``classifier`` or ``outputs`` (see the module docstring)."""
    out, labels = view.out, view.labels
    if is_token_scores(view) and plan.scores and plan.pool == "none" and hint in (None, "causal-lm"):
        return "language-model"
    if labels is not None and (labels.is_floating_point() or out.reshape(len(out), -1).shape[1] == 1):
        return "regression"
    if out.dim() == 2 and out.shape[1] >= 2 and plan.scores and plan.pool == "none":
        return "classifier"
    return "outputs"


def is_token_scores(view: View) -> bool:
    ids = view.inputs.get("input_ids") if isinstance(view.inputs, dict) else None
    return view.out.dim() == 3 and ids is not None and ids.dim() == 2 and tuple(ids.shape) == tuple(view.out.shape[:2])


def default_metrics(task: str, has_labels: bool) -> tuple[list[Metric], tuple[str, ...]]:
    """The task's default metrics (those needing labels only with labels), and those the report shows."""
    names = {"language-model": LANGUAGE_MODEL, "regression": REGRESSION, "classifier": CLASSIFIER}.get(task, OUTPUTS)
    metrics = [METRICS.get(n) for n in names]
    metrics = [m for m in metrics if has_labels or not m.info.needs_labels]
    shown = CLASSIFIER_SHOWN if task == "classifier" else tuple(m.name for m in metrics)
    return metrics, shown


def plan_task(view: View, plan: OutputPlan, metric: MetricSpec | Iterable[MetricSpec] | None = None, *,
              also: Iterable[MetricSpec] = (), hint: str | None = None, model: str = "the model",
              data: str = "the dataset") -> Task:
    """The task of the probe batch ``view``, with the metrics given (or the defaults) and those in ``also``
    (a gate's requirements; those needing labels are left out on data without labels: the gate reports them
    as not measured), each checked."""
    task = infer_task(view, plan, hint)
    labelled = view.labels is not None
    given = as_metric_list(metric)
    metrics, shown = (given, tuple(m.name for m in given)) if given else default_metrics(task, labelled)
    extra = [m for m in as_metric_list(list(also)) if labelled or not m.info.needs_labels]
    metrics = as_metric_list([*metrics, *extra])
    for m in metrics:
        check_metric(m, view, plan, model, data)
    return Task(task, tuple(metrics), shown, plan)


def check_metric(m: Metric, view: View, plan: OutputPlan, model: str, data: str) -> None:
    """Refuse a metric that cannot be measured on this model and data (one line naming what is missing)."""
    info, out, labels = m.info, view.out, view.labels
    if info.needs_labels and labels is None:
        free = ", ".join(i.name for i in list_metrics() if not i.needs_labels)
        raise InvalidValueError(f"metric {m.name} needs labels, and dataset {data} has none (metrics without "
                                f"labels: {free})")
    if info.labels == "classes" and (labels.is_floating_point() or labels.dim() != 1):
        raise InvalidValueError(f"metric {m.name} needs integer class labels; dataset {data} has numeric targets "
                                f"(use --metric mse or --metric mae)")
    what = f"{model}'s output" + (f" {describe_key(plan.key)}" if plan.key is not None else "")
    if info.outputs == "classes" and out.dim() != 2:
        raise InvalidValueError(f"metric {m.name} needs scores (batch, classes); {what} is {tuple(out.shape)}"
                                + (" (for token outputs: perplexity, token-agreement, or --pool)" if out.dim() == 3 else ""))
    if info.outputs == "tokens" and not is_token_scores(view):
        raise InvalidValueError(f"metric {m.name} needs next-token scores (batch, tokens, vocab) over named inputs "
                                f"input_ids (batch, tokens); {what} is {tuple(out.shape)} (--pool none?)")
    if info.labels == "targets" and out.reshape(len(out), -1).shape[1] != labels.reshape(len(labels), -1).shape[1]:
        if not labels.is_floating_point() and labels.dim() == 1:  # one class index per input
            raise InvalidValueError(f"metric {m.name} needs numeric targets; dataset {data} has class labels and "
                                    f"{what} has {out[0].numel()} scores per input (a classifier: --metric error, "
                                    f"accuracy or loss)")
        raise InvalidValueError(f"metric {m.name}: {what} has {out[0].numel()} values per input but the targets "
                                f"have {labels[0].numel()}")
    dry_run(m, view)


def dry_run(m: Metric, view: View) -> None:
    """Measure the probe batch against itself: a metric that fails there is reported before any work."""
    try:
        with torch.inference_mode():
            m.stats(view, view)
    except WrobustError:
        raise
    except Exception as exc:  # a custom metric is user code
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidValueError(f"metric {m.name} fails on the first batch: {type(exc).__name__}: {first}") from exc
