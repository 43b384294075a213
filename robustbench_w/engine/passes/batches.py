"""How the evaluator keeps the evaluation set between passes, batched, and where it lives.

Where the inputs live is decided once, by size (``Batches.mode``):

- ``prepared``: normalised float inputs fit ``prepare_budget`` bytes: they are normalised once and kept on
  the device, so a pass is the model's forward passes and nothing else;
- ``raw``: the raw inputs (uint8 for 8-bit data; named inputs and given batches as they are) fit the device
  budget (a quarter of the free memory of a GPU; no limit on the CPU, where the set already is): they are
  kept on the device and each batch is normalised as it is used;
- ``stream``: otherwise the raw inputs stay in host memory and each batch is moved to the device when it is
  used (a set too large for the GPU; labels, which are small, stay on the device).

Named inputs (a dict of tensors) and batches given by the user are model inputs: they are never normalised
(``prepared`` and ``raw`` are the same for them).

On a GPU the evaluation set is therefore resident on the device whenever it fits a quarter of the free memory
(``prepared`` or ``raw``): no input crosses the bus during a sweep. With ``channels_last`` (``--channels-last``)
image batches (4-D float inputs) are kept, or made, in channels-last layout, as a convolutional model converted
to it expects. :meth:`Batches.halve` splits every batch in two (after an out-of-memory error, :mod:`.batchsize`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator

import torch

from ...datasets.base import EvalSet, Inputs, Normalization, inputs_len, take
from ...datasets.batches import BatchedSet
from ...errors import InvalidValueError
from ..defaults import DATA_ON
from ...load.inputs import to_device

PREPARE_BUDGET = 1 << 30  # bytes of normalised float inputs kept ready on the device
GPU_FRACTION = 0.25  # of a GPU's free memory, for the raw evaluation set (the rest is for the model)


def device_budget(device: torch.device) -> int:
    """Bytes of raw inputs that may live on ``device``: a share of a GPU's free memory; no limit on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * GPU_FRACTION)
    return sys.maxsize


def data_budgets(data_on: str) -> dict[str, int]:
    """The budgets that place the set (``--data-on``): ``device`` keeps it there when it fits (the defaults,
    as above), ``host`` always streams it one batch at a time (``stream``: the device holds one batch)."""
    if data_on not in DATA_ON:
        raise InvalidValueError(f"--data-on {data_on!r}: choose one of {', '.join(DATA_ON)}")
    return {} if data_on == "device" else {"prepare_budget": 0, "budget": 0}


def nbytes(x: Inputs) -> int:
    tensors = x.values() if isinstance(x, dict) else [x]
    return sum(t.numel() * t.element_size() for t in tensors)


def placement(data: EvalSet | BatchedSet, prepare_budget: int, budget: int) -> str:
    """``prepared``, ``raw`` or ``stream`` (see the module docstring) for ``data`` under the two budgets."""
    if not plain(data):
        return "raw" if sum(nbytes(x) for x, _ in data.raw_batches(max(1, len(data)))) <= budget else "stream"
    elements = len(data) * math.prod(data.input_shape)
    if elements * 4 <= prepare_budget:
        return "prepared"
    return "raw" if elements * data.x.element_size() <= budget else "stream"


def plain(data: EvalSet | BatchedSet) -> bool:
    """Whether the set is one input tensor that the normalisation turns into model input."""
    return isinstance(data, EvalSet) and not data.named


class Batches:
    """The evaluation set, batched and placed (see the module docstring); iterating gives model-ready batches."""

    def __init__(self, data: EvalSet | BatchedSet, batch_size: int, device: torch.device,
                 normalization: Normalization | None = None, prepare_budget: int = PREPARE_BUDGET,
                 budget: int | None = None, channels_last: bool = False):
        self.device, self.channels_last = device, channels_last
        self.norm = (normalization or data.normalization) if plain(data) else None
        self.mode = placement(data, prepare_budget, device_budget(device) if budget is None else budget)
        self.kept = [(self._place(x), None if y is None else y.to(device)) for x, y in data.raw_batches(batch_size)]

    def _place(self, x: Inputs) -> Inputs:
        """A batch as it is kept between passes."""
        if self.mode == "stream":
            return x
        x = to_device(x, self.device)
        if self.mode != "prepared":
            return x
        return self._layout(self.norm.apply(x) if self.norm is not None else x)

    def _inputs(self, x: Inputs) -> Inputs:
        """A kept batch as model input."""
        if self.mode == "prepared":
            return x
        if self.mode == "stream":
            x = to_device(x, self.device)
        return self._layout(self.norm.apply(x) if self.norm is not None else x)

    def _layout(self, x: Inputs) -> Inputs:
        """Image batches in channels-last layout when asked for; everything else as it is."""
        if self.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point():
            return x.contiguous(memory_format=torch.channels_last)
        return x

    @property
    def batch_size(self) -> int:
        """The largest batch."""
        return max((inputs_len(x) for x, _ in self.kept), default=0)

    def halve(self) -> list[int | None]:
        """Split every batch of two or more inputs in two (the first half takes the odd one); return, per old
        batch, where it was split (None: a batch of one, left whole)."""
        cuts: list[int | None] = []
        kept = []
        for x, y in self.kept:
            n = inputs_len(x)
            cut = (n + 1) // 2 if n > 1 else None
            cuts.append(cut)
            parts = [slice(0, n)] if cut is None else [slice(0, cut), slice(cut, n)]
            kept += [(take(x, s), None if y is None else y[s]) for s in parts]
        self.kept = kept
        return cuts

    def __iter__(self) -> Iterator[tuple[Inputs, torch.Tensor | None]]:
        for x, y in self.kept:
            yield self._inputs(x), y

    def __len__(self) -> int:
        return len(self.kept)
