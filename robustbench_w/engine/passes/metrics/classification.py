"""Classification metrics: outputs ``(batch, classes)``, the argmax is the prediction.

``error``, ``accuracy``, ``top5`` and ``loss`` need integer class labels; ``agreement`` compares with the clean
model's predictions and needs none. An input whose outputs are not all finite is wrong, outside the top 5,
and never agrees; the ``loss`` is averaged over the inputs whose outputs are finite (``nan`` if there are none).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import mean_over_finite, register_metric


def one_minus_mean(totals: list[float], n: int, nonfinite: int) -> float:
    return 1.0 - totals[0] / n if n else float("nan")


def correct(view, clean) -> torch.Tensor:
    """Whether the argmax equals the label."""
    return view.pred == view.labels


register_metric("error", finish=one_minus_mean, kind="classification", higher_is_better=False, labels="classes",
                outputs="classes", bounds=(0.0, 1.0), bad=(0.0,),
                formula="fraction of inputs whose argmax is not their label")(correct)
register_metric("accuracy", kind="classification", higher_is_better=True, labels="classes", outputs="classes",
                bounds=(0.0, 1.0), bad=(0.0,), formula="fraction of inputs whose argmax is their label")(correct)


@register_metric("top5", kind="classification", higher_is_better=True, labels="classes", outputs="classes",
                 bounds=(0.0, 1.0), bad=(0.0,), formula="fraction of inputs whose label is among the 5 highest outputs")
def top5(view, clean) -> torch.Tensor:
    """Whether the label is among the five highest outputs (all of them with fewer than five classes)."""
    k = min(5, view.out.shape[-1])
    return (view.out.topk(k, dim=-1).indices == view.labels.unsqueeze(-1)).any(dim=-1)


@register_metric("loss", finish=mean_over_finite, kind="classification", higher_is_better=False, labels="classes",
                 outputs="classes", bounds=(0.0, float("inf")), bad=(0.0,),
                 formula="mean cross-entropy -log softmax(y')[label] over inputs with finite outputs")
def loss(view, clean) -> torch.Tensor:
    """Cross-entropy of the outputs against the label."""
    return F.cross_entropy(view.out, view.labels, reduction="none")


@register_metric("agreement", kind="classification", higher_is_better=True, outputs="classes", bounds=(0.0, 1.0),
                 identity=1.0, clean=("pred",), bad=(0.0,),
                 formula="fraction of inputs whose argmax equals the clean model's")
def agreement(view, clean) -> torch.Tensor:
    """Whether the argmax equals the clean model's (no labels needed)."""
    return view.pred == clean.pred
