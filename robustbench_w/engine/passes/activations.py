"""Activation reuse for per-layer sweeps of chains of modules.

**Which models qualify.** A model whose top-level module is an ``nn.Sequential`` (or a subclass that keeps
``Sequential.forward``), called with one input tensor: its output is its modules applied one after another.
Everything else (a ResNet's skip connections, a transformer, a compiled program, models taking named inputs, a
``Sequential`` subclass with its own ``forward``) runs the naive path: the whole model for every point.

**What is reused.** A unit of a per-layer sweep (:mod:`.layers`) starts at the first top-level module that
holds one of its tensors, ``k``. Modules ``0 .. k-1`` hold no distorted tensor, so their output on the
evaluation set is the same at every point of the unit: it is computed once (with the clean weights), kept,
and each point runs only modules ``k ..`` on it. The arithmetic is the same as the whole model's, in the same
order and in the same batches, so the rows are the naive path's, exactly. Units come one after another in the
chain's order, so moving to the next unit runs only the modules between the two (from the kept activations),
and over the whole sweep the prefixes cost about one clean pass. A unit starting at module 0 has nothing to
reuse and runs the whole model.

**Memory.** One set of activations is kept at a time (the boundary in front of the current unit), on the
device where the batches are evaluated. It is kept when it takes at most ``budget`` bytes: by default
:data:`ACTIVATION_BUDGET` (1 GiB), on a GPU at most a quarter of its free memory. The size is estimated from
the first batch's activations before the rest is computed; moving from one boundary to the next holds both
for a moment, so that move is made from the kept activations only when both fit the budget together (else
from the inputs). A unit whose activations would not fit runs the naive path, and the result file's
``meta.activation_reuse`` names it (``naive``: unit -> why).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from ...datasets.base import inputs_len
from ...load.inputs import call_model
from .batches import device_budget

ACTIVATION_BUDGET = 1 << 30  # bytes of cached activations


def chain_of(module: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The named modules of a chain (see the module docstring), or None for a model that is not one."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward and len(module) > 1:
        return list(module.named_children())
    return None


def activation_budget(device: torch.device, budget: int | None = None) -> int:
    """Bytes of activations that may be kept: ``budget``, or 1 GiB and at most a quarter of a GPU's free memory."""
    if budget is not None:
        return int(budget)
    return min(ACTIVATION_BUDGET, device_budget(device))


def nbytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class BoundaryCache:
    """What the caches of clean activations share (:class:`ChainCache`, :class:`.stacks.StackCache`): the
    boundary ``at`` whose activations are kept, and the boundaries refused with why. A subclass computes the
    activations in front of a boundary in ``_compute_in`` (an empty string when done, else why not)."""

    at: int | None
    refused: dict[int, str]
    arithmetic: Callable[[], AbstractContextManager]

    def prepare(self, start: int) -> bool | str:
        """Keep the clean activations in front of module ``start``: True when they are (or already were), else
        why not (too large for the budget, named inputs, not a tensor)."""
        if start == self.at:
            return True
        if start not in self.refused:
            reason = self._compute(start)
            if not reason:
                return True
            self.refused[start] = reason
        return self.refused[start]

    def _compute(self, start: int) -> str:
        with torch.inference_mode(), self.arithmetic():
            return self._compute_in(start)

    def _compute_in(self, start: int) -> str:
        raise NotImplementedError


class ChainCache(BoundaryCache):
    """The clean activations in front of one module of a chain (``model``, a :func:`chain_of`), for every batch
    of the evaluation set ``batches`` (``n`` inputs)."""

    def __init__(self, model: nn.Module, batches, device: torch.device, n: int, budget: int | None = None,
                 arithmetic: Callable[[], AbstractContextManager] = nullcontext,
                 forward: Callable[[object], object] | None = None):
        chain = chain_of(model)
        if chain is None:
            raise ValueError("not a chain of modules")
        self.model, self.batches, self.n = model, batches, n
        self.names, self.chain = [name for name, _ in chain], [m for _, m in chain]
        self.budget = activation_budget(torch.device(device), budget)
        self.at: int | None = None  # the boundary of the kept activations (module index)
        self.kept: list[torch.Tensor] = []
        self.refused: dict[int, str] = {}  # boundary -> why its activations are not kept
        # the passes' arithmetic (their precision: the prefix runs as the naive pass would run it) and the
        # whole model's forward (compiled or not) for batches the kept activations do not match
        self.arithmetic, self.whole = arithmetic, forward or model
        self.batch_size = None  # of the batches the kept activations were computed on

    def start_of(self, tensors: Iterable[str]) -> int | None:
        """The index of the first module holding one of ``tensors`` (parameter names such as ``3.weight``)."""
        index = {name: i for i, name in enumerate(self.names)}
        found = [index.get(t.split(".", 1)[0]) for t in tensors]
        return None if not found or None in found else min(found)

    def _compute_in(self, start: int) -> str:
        """Run modules up to ``start`` on every batch, from the kept activations where they lie in front and
        both fit the budget, else from the inputs. An empty string when done, else why not."""
        base = self.at if self.at is not None and self.at < start else 0
        new: list[torch.Tensor] = []
        for i, (x, _) in enumerate(self.batches):
            if isinstance(x, dict):
                return "named inputs"
            h = self._run(base, start, self.kept[i] if base else x)
            if not torch.is_tensor(h):
                return f"module {self.names[start - 1]} returns {type(h).__name__}, not a tensor"
            if i == 0:
                need = math.ceil(nbytes([h]) / max(len(h), 1) * self.n)
                if need > self.budget:
                    return f"activations of {need:,} bytes exceed the budget of {self.budget:,}"
                if base and need + nbytes(self.kept) > self.budget:  # not both at once: start from the inputs
                    self.kept, self.at, base = [], None, 0
                    h = self._run(0, start, x)
            new.append(h)
        self.kept, self.at, self.batch_size = new, start, self._batch_size()
        return ""

    def _batch_size(self) -> int | None:
        return getattr(self.batches, "batch_size", None)

    def _run(self, first: int, stop: int, h: object) -> object:
        for module in self.chain[first:stop]:
            h = module(h)
        return h

    def forward(self, batch: int, x: object) -> object:
        """The model's output on batch ``batch`` (whose inputs are ``x``): the kept activations through the rest
        of the chain; the whole model where the batches no longer match the kept ones (a pass that ran out of
        memory halved them: the kept activations are dropped, and the next unit computes them anew)."""
        if self.at is not None and self._batch_size() != self.batch_size:
            self.kept, self.at, self.refused = [], None, {}
        if self.at is None or batch >= len(self.kept) or len(self.kept[batch]) != inputs_len(x):
            return call_model(self.whole, x)
        return self._run(self.at, len(self.chain), self.kept[batch])
