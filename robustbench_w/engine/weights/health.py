"""Is the model sound? Non-finite weights and a non-finite clean pass, found before any point is evaluated.

One NaN or Inf among a model's weights makes every number of a sweep meaningless: the clean error is 100%,
error drops measured against it are negative, and a gate could pass a broken model. So the weights (every
floating-point parameter and buffer; for ``bits``, the targeted tensors) are checked before any sweep, and the
clean pass is checked for inputs whose outputs are not finite. When there are such inputs, the evaluation set
is checked too: NaN or Inf in the inputs themselves is the data's fault, not the model's, and the line says
so. ``sweep`` and ``bits`` warn in one line (:func:`warn_if_broken`) and record :meth:`Health.to_meta` in
their meta; ``gate`` fails with :meth:`Health.problem` as its own verdict line, whatever the requirements say.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ...errors import WrobustWarning

LISTED = 3  # tensors named in a message; the rest are counted


@dataclass(frozen=True)
class Health:
    """What is broken: non-finite values per tensor, and inputs with non-finite outputs in the clean pass."""

    nonfinite_weights: dict[str, int] = field(default_factory=dict)
    nonfinite_inputs: int = 0
    n: int = 0  # inputs of the clean pass (0: not evaluated)
    nonfinite_data: int = 0  # inputs of the evaluation set that hold NaN or Inf themselves

    @property
    def ok(self) -> bool:
        return not self.nonfinite_weights and not self.nonfinite_inputs

    @property
    def subject(self) -> str:
        """What is broken: the model, or (finite weights, NaN/Inf in the inputs) the evaluation data."""
        return "evaluation data" if self.nonfinite_data and not self.nonfinite_weights else "model"

    def problem(self) -> str:
        """One line: ``12 non-finite weights in fc1.weight; non-finite outputs for 355 of 355 inputs``."""
        parts = []
        if self.nonfinite_weights:
            parts.append(weights_text(self.nonfinite_weights))
        if self.nonfinite_data:
            parts.append(f"{self.nonfinite_data:,} of {self.n:,} inputs of the evaluation set hold NaN or Inf")
        if self.nonfinite_inputs:
            parts.append(f"non-finite outputs for {self.nonfinite_inputs:,} of {self.n:,} inputs of the clean pass")
        return "; ".join(parts)

    def to_meta(self) -> dict:
        return {"health": {"ok": self.ok, "nonfinite_weights": dict(self.nonfinite_weights),
                           "nonfinite_inputs": self.nonfinite_inputs, "nonfinite_data": self.nonfinite_data,
                           "problem": self.problem() or None}}


def weights_text(counts: dict[str, int]) -> str:
    """``12 non-finite weights in fc1.weight`` or ``13 non-finite weights in 2 tensors: a (12), b (1)``."""
    total = sum(counts.values())
    noun = "weight" if total == 1 else "weights"
    if len(counts) == 1:
        return f"{total:,} non-finite {noun} in {next(iter(counts))}"
    listed = ", ".join(f"{name} ({k:,})" for name, k in list(counts.items())[:LISTED])
    more = f" and {len(counts) - LISTED} more" if len(counts) > LISTED else ""
    return f"{total:,} non-finite {noun} in {len(counts)} tensors: {listed}{more}"


def nonfinite_counts(named: Iterable[tuple[str, torch.Tensor]]) -> dict[str, int]:
    """``{name: number of NaN/Inf values}`` of the floating-point tensors that have any (in the given order)."""
    named = [(n, t.detach()) for n, t in named if t.is_floating_point() and t.numel()]
    if not named:
        return {}
    # one reduction per tensor, no new tensors: a finite sum means finite values; only the tensors whose sum
    # is not finite (NaN/Inf, or a sum beyond the dtype's range) are counted value by value
    totals = [t.sum() for _, t in named]
    finite = torch.stack([s.to(totals[0].device) for s in totals]).isfinite().tolist()  # one transfer
    suspect = [(n, t) for (n, t), ok in zip(named, finite) if not ok]
    if not suspect:
        return {}
    sums = [(~torch.isfinite(t)).sum() for _, t in suspect]
    counts = torch.stack([s.to(sums[0].device) for s in sums]).tolist()
    return {n: int(k) for (n, _), k in zip(suspect, counts) if k}


def model_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and buffer of ``module`` once (tied tensors count once)."""
    seen: set[int] = set()
    out = []
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            out.append((name, t))
    return out


def check_model(module: nn.Module, clean=None, data=None) -> Health:
    """The health of ``module`` (all its parameters and buffers) and of its clean pass (an engine
    ``PassResult``, if it was run); when the clean pass had non-finite outputs, of the inputs of ``data``
    (an ``EvalSet`` or ``BatchedSet``) too."""
    bad = nonfinite_counts(model_tensors(module))
    if clean is None:
        return Health(bad)
    suspect = int(clean.nonfinite) and data is not None
    return Health(bad, int(clean.nonfinite), int(clean.n), nonfinite_rows(data) if suspect else 0)


def nonfinite_rows(data) -> int:
    """The number of inputs of ``data`` whose floating-point values (any named input) are not all finite."""
    total = 0
    for x, _ in data.raw_batches(4096):
        tensors = [t for t in (x.values() if isinstance(x, dict) else [x])
                   if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() > 0]
        if tensors:
            bad = torch.stack([(~torch.isfinite(t.reshape(len(t), -1))).any(dim=1) for t in tensors]).any(dim=0)
            total += int(bad.sum())
    return total


def warn_if_broken(health: Health, consequence: str = "its results are not meaningful") -> None:
    """One :class:`WrobustWarning` line naming what is broken (nothing when the model is sound)."""
    if not health.ok:
        warnings.warn(f"broken {health.subject}: {health.problem()}: {consequence}", WrobustWarning, stacklevel=2)
