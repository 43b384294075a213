"""One fast pass over the evaluation set: accuracy, error, loss and agreement.

Where the inputs live is decided once, by size (``Evaluator.mode``):

- ``prepared``: normalised float inputs fit ``prepare_budget`` bytes: they are normalised once and kept on
  the device, so a pass is the model's forward passes and nothing else;
- ``raw``: the raw inputs (uint8 for 8-bit data) fit the device budget (a quarter of the free memory of a
  GPU; no limit on the CPU, where the set already is): they are kept on the device and each batch is
  normalised as it is used;
- ``stream``: otherwise the raw inputs stay in host memory and each batch is moved to the device when it is
  used (a set too large for the GPU; labels and clean predictions, which are small, stay on the device).

All counts stay on the device and are read once per pass. A pass does what a plain loop does (forward,
argmax, summed loss, correct count) plus one sum of the outputs per batch; only when that sum is not finite
is the pass redone row by row: an input whose outputs are not all finite counts as an error and as a
disagreement, and the loss is averaged over the inputs with finite outputs (``nan`` when there are none).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..datasets.base import EvalSet, Normalization

PREPARE_BUDGET = 1 << 30  # bytes of normalised float inputs kept ready on the device
GPU_FRACTION = 0.25  # of a GPU's free memory, for the raw evaluation set (the rest is for the model)


@dataclass(frozen=True)
class PassResult:
    n: int
    accuracy: float  # nan without labels
    error: float
    loss: float
    agreement: float  # fraction of predictions equal to the clean model's (1.0 for a finite clean pass)
    nonfinite: int  # inputs whose outputs were not all finite


def device_budget(device: torch.device) -> int:
    """Bytes of raw inputs that may live on ``device``: a share of a GPU's free memory; no limit on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * GPU_FRACTION)
    return sys.maxsize


def placement(data: EvalSet, prepare_budget: int, budget: int) -> str:
    """``prepared``, ``raw`` or ``stream`` (see the module docstring) for ``data`` under the two budgets."""
    elements = len(data) * math.prod(data.input_shape)
    if elements * 4 <= prepare_budget:
        return "prepared"
    return "raw" if elements * data.x.element_size() <= budget else "stream"


class Evaluator:
    """Evaluates one model on one evaluation set, again and again, as its weights change."""

    def __init__(self, model: nn.Module, data: EvalSet, batch_size: int = 1024, device: torch.device | str = "cpu",
                 normalization: Normalization | None = None, prepare_budget: int = PREPARE_BUDGET,
                 budget: int | None = None):
        self.model = model
        self.device = torch.device(device)
        self.norm = normalization or data.normalization
        self.n = len(data)
        self.has_labels = data.has_labels
        self.mode = placement(data, prepare_budget, device_budget(self.device) if budget is None else budget)
        self._batches = [(self._place(xb), None if yb is None else yb.to(self.device))
                         for xb, yb in _split(data, batch_size)]
        self.clean: torch.Tensor | None = None  # clean predictions, set by the first pass

    def _place(self, xb: torch.Tensor) -> torch.Tensor:
        """A batch as it is kept between passes."""
        if self.mode == "stream":
            return xb
        xb = xb.to(self.device, non_blocking=True)
        return self.norm.apply(xb) if self.mode == "prepared" else xb

    def _inputs(self, xb: torch.Tensor) -> torch.Tensor:
        """A kept batch as model input."""
        if self.mode == "prepared":
            return xb
        return self.norm.apply(xb.to(self.device, non_blocking=True) if self.mode == "stream" else xb)

    @torch.inference_mode()
    def fast_predict(self) -> tuple[torch.Tensor, list[float]]:
        """Predictions and ``[loss, correct, sum of all outputs]`` with no per-row checks: the plain loop's
        work. A non-finite sum of outputs means some output was NaN or Inf: :meth:`run` then redoes the pass
        with :meth:`predict`."""
        preds, losses, corrects, totals = [], [], [], []
        for xb, yb in self._batches:
            logits = self.model(self._inputs(xb)).float()
            preds.append(logits.argmax(dim=1))
            totals.append(logits.sum())
            if yb is not None:
                losses.append(F.cross_entropy(logits, yb, reduction="sum"))
                corrects.append((preds[-1] == yb).sum())
        pred = torch.cat(preds)
        zero = torch.zeros((), device=self.device)
        parts = [torch.stack(v).sum().double() if v else zero.double() for v in (losses, corrects, totals)]
        if self.clean is not None:
            parts.append((pred == self.clean).sum().double())
        return pred, torch.stack(parts).tolist()

    @torch.inference_mode()
    def predict(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions (-1 where outputs are not finite) and the sums ``[loss, correct, non-finite]``."""
        preds, sums = [], torch.zeros(3, device=self.device, dtype=torch.float64)
        for xb, yb in self._batches:
            logits = self.model(self._inputs(xb)).float()
            finite = torch.isfinite(logits.sum(dim=1))  # any NaN or Inf in a row makes its sum non-finite
            pred = torch.where(finite, logits.argmax(dim=1), -1)
            preds.append(pred)
            if yb is None:
                sums[2] += (~finite).sum()
                continue
            loss = F.cross_entropy(torch.where(finite.unsqueeze(1), logits, 0.0), yb, reduction="none")
            sums += torch.stack([(loss * finite).sum(), (pred == yb).sum(), (~finite).sum()])
        return torch.cat(preds), sums

    def run(self) -> PassResult:
        """One pass; the first pass on a model defines the clean predictions that agreement compares with."""
        pred, values = self.fast_predict()
        if math.isfinite(values[2]):
            loss_v, correct_v, bad_v = values[0], values[1], 0.0
            agree_v = values[3] if self.clean is not None else self.n
        else:  # some outputs are NaN or Inf: count them, row by row
            pred, sums = self.predict()
            loss_v, correct_v, bad_v = sums.tolist()
            agree_v = agreements(pred, self.clean) if self.clean is not None else self.n - bad_v
        if self.clean is None:
            self.clean = pred
        finite_n = self.n - int(bad_v)
        acc = correct_v / self.n if self.has_labels else math.nan
        return PassResult(
            n=self.n, accuracy=acc, error=1.0 - acc if self.has_labels else math.nan,
            loss=loss_v / finite_n if self.has_labels and finite_n > 0 else math.nan,
            agreement=agree_v / self.n, nonfinite=int(bad_v),
        )


def agreements(pred: torch.Tensor, clean: torch.Tensor) -> int:
    """Inputs whose prediction equals the clean one; a non-finite row (-1, in either pass) never agrees."""
    return int(((pred == clean) & (pred >= 0)).sum())


def _split(data: EvalSet, batch_size: int):
    for start in range(0, len(data), batch_size):
        yb = None if data.y is None else data.y[start:start + batch_size]
        yield data.x[start:start + batch_size], yb
