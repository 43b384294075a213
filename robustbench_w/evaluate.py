"""One fast pass over the evaluation set: accuracy, error, loss and agreement.

The inputs are normalised once and kept on the device when they fit in ``prepare_budget`` bytes (else each
batch is normalised on the fly). All counts stay on the device and are read once per pass, so a pass costs
what the model's forward passes cost. An input whose outputs are not all finite counts as an error and as
a disagreement; the loss is averaged over the inputs with finite outputs (``nan`` when there are none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import EvalSet, Normalization

PREPARE_BUDGET = 1 << 30  # bytes of float inputs kept ready on the device


@dataclass(frozen=True)
class PassResult:
    n: int
    accuracy: float  # nan without labels
    error: float
    loss: float
    agreement: float  # fraction of predictions equal to the clean model's (1.0 for the clean pass)
    nonfinite: int  # inputs whose outputs were not all finite


def resolve_device(device: str | torch.device | None) -> torch.device:
    from .errors import InvalidValueError

    name = str(device or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidValueError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InvalidValueError(f"unknown device {name!r} (use auto, cpu or cuda)") from None


class Evaluator:
    """Evaluates one model on one evaluation set, again and again, as its weights change."""

    def __init__(self, model: nn.Module, data: EvalSet, batch_size: int = 1024, device: torch.device | str = "cpu",
                 normalization: Normalization | None = None, prepare_budget: int = PREPARE_BUDGET):
        self.model = model
        self.device = torch.device(device)
        self.norm = normalization or data.normalization
        self.n = len(data)
        self.has_labels = data.has_labels
        self._prepared = self.n * math.prod(data.input_shape) * 4 <= prepare_budget
        self._batches = [(self._to_device(xb), None if yb is None else yb.to(self.device))
                         for xb, yb in _split(data, batch_size)]
        self.clean: torch.Tensor | None = None  # clean predictions, set by the first pass

    def _to_device(self, xb: torch.Tensor) -> torch.Tensor:
        xb = xb.to(self.device, non_blocking=True)
        return self.norm.apply(xb) if self._prepared else xb

    def _inputs(self, xb: torch.Tensor) -> torch.Tensor:
        return xb if self._prepared else self.norm.apply(xb)

    @torch.inference_mode()
    def predict(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predictions (-1 where outputs are not finite), summed loss, correct count and non-finite count."""
        preds, loss, correct, bad = [], torch.zeros((), device=self.device, dtype=torch.float64), 0, 0
        for xb, yb in self._batches:
            logits = self.model(self._inputs(xb)).float()
            finite = torch.isfinite(logits).all(dim=1)
            pred = torch.where(finite, logits.argmax(dim=1), -1)
            preds.append(pred)
            bad = bad + (~finite).sum()
            if yb is not None:
                safe = torch.where(finite.unsqueeze(1), logits, 0.0)
                loss = loss + (F.cross_entropy(safe, yb, reduction="none") * finite).sum()
                correct = correct + (pred == yb).sum()
        return torch.cat(preds), loss, torch.as_tensor(correct), torch.as_tensor(bad)

    def run(self) -> PassResult:
        """One pass; the first pass on a model defines the clean predictions that agreement compares with."""
        pred, loss, correct, bad = self.predict()
        if self.clean is None:
            self.clean = pred
        agree = (pred == self.clean).sum()
        loss_v, correct_v, bad_v, agree_v = (t.item() for t in (loss, correct, bad, agree))
        finite_n = self.n - int(bad_v)
        acc = correct_v / self.n if self.has_labels else math.nan
        return PassResult(
            n=self.n, accuracy=acc, error=1.0 - acc if self.has_labels else math.nan,
            loss=loss_v / finite_n if self.has_labels and finite_n > 0 else math.nan,
            agreement=agree_v / self.n, nonfinite=int(bad_v),
        )


def _split(data: EvalSet, batch_size: int):
    for start in range(0, len(data), batch_size):
        yb = None if data.y is None else data.y[start:start + batch_size]
        yield data.x[start:start + batch_size], yb
