"""An evaluation set given as batches (the Python API): a ``DataLoader``, a list of dicts or of tuples.

The batches are read once and kept as they came (their sizes and padding are the user's); a sweep then
evaluates them again and again. A batch is

- a tensor: the inputs, no labels;
- a tuple or list ``(inputs, labels)`` or ``(inputs,)``: ``inputs`` a tensor or a dict of named tensors;
- a dict of named tensors, passed to the model as keyword arguments; its entry ``labels`` (or ``label``,
  or ``y``) holds the labels and is not passed to the model.

Every batch must have labels, or none. The inputs are model inputs: they are not normalised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch

from ..errors import InvalidValueError
from .base import Inputs, Normalization, inputs_len, take

LABEL_KEYS = ("labels", "label", "y")


def split_batch(batch: object, where: str) -> tuple[Inputs, torch.Tensor | None]:
    """``(inputs, labels)`` of one batch as a user gives it (see the module docstring)."""
    if isinstance(batch, torch.Tensor):
        return _inputs(batch, where), None
    if isinstance(batch, dict):
        labels = next((batch[k] for k in LABEL_KEYS if k in batch), None)
        named = {k: v for k, v in batch.items() if k not in LABEL_KEYS}
        return _inputs(named, where), _labels(labels, where)
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 2:
        return _inputs(batch[0], where), _labels(batch[1] if len(batch) == 2 else None, where)
    raise InvalidValueError(f"{where}: a batch must be a tensor, a dict of named tensors or a tuple (inputs, labels), "
                            f"not {_kind(batch)}")


def _inputs(x: object, where: str) -> Inputs:
    if isinstance(x, torch.Tensor) and x.dim() >= 1 and len(x):
        return x
    if isinstance(x, dict) and x and all(isinstance(k, str) and isinstance(v, torch.Tensor) and v.dim() >= 1
                                         for k, v in x.items()):
        if len({int(v.shape[0]) for v in x.values()}) == 1 and inputs_len(x):
            return x
        raise InvalidValueError(f"{where}: the named inputs differ in their first (batch) dimension")
    raise InvalidValueError(f"{where}: inputs must be a non-empty tensor or a dict of named tensors, not {_kind(x)}")


def _labels(y: object, where: str) -> torch.Tensor | None:
    if y is None or isinstance(y, torch.Tensor):
        return y
    raise InvalidValueError(f"{where}: labels must be a tensor, not {_kind(y)}")


def _kind(x: object) -> str:
    return f"a {type(x).__name__}"


@dataclass
class BatchedSet:
    """Batches kept as the user gave them; the same interface as :class:`EvalSet` where the engine needs it."""

    name: str
    batches: list[tuple[Inputs, torch.Tensor | None]]
    num_classes: int | None = None
    split: str = "test"
    normalization: Normalization = field(default_factory=Normalization)
    normalization_source: str = "the batches as given"

    def __len__(self) -> int:
        return sum(inputs_len(x) for x, _ in self.batches)

    @property
    def has_labels(self) -> bool:
        return self.batches[0][1] is not None

    @property
    def named(self) -> bool:
        return isinstance(self.batches[0][0], dict)

    @property
    def y(self) -> torch.Tensor | None:
        """All labels, concatenated (for checks against the model's outputs)."""
        return torch.cat([y.reshape(len(y), -1) for _, y in self.batches]).squeeze(1) if self.has_labels else None

    def classes(self) -> int | None:
        """The number of classes: as given, else the number of distinct class labels (None without them)."""
        if self.num_classes is not None:
            return self.num_classes
        y = self.y
        return int(torch.unique(y).numel()) if y is not None and y.dim() == 1 and not y.is_floating_point() else None

    def raw_batches(self, batch_size: int = 0) -> Iterator[tuple[Inputs, torch.Tensor | None]]:
        """The batches as given (``batch_size`` is not used: the user chose the batching)."""
        return iter(self.batches)

    def model_inputs(self, raw: Inputs) -> Inputs:
        return raw

    def head(self, k: int) -> tuple[Inputs, torch.Tensor | None]:
        x, y = self.batches[0]
        return take(x, slice(0, k)), None if y is None else y[:k]

    def limited(self, limit: int) -> BatchedSet:
        """The first ``limit`` examples (the batches are the user's: no seeded subset)."""
        kept, left = [], limit
        for x, y in self.batches:
            if left <= 0:
                break
            part = slice(0, left)
            kept.append((take(x, part), None if y is None else y[part]))
            left -= inputs_len(kept[-1][0])
        return BatchedSet(self.name, kept, self.num_classes, self.split, self.normalization, self.normalization_source)


def from_batches(batches: Iterable, name: str | None = None) -> BatchedSet:
    """Read an iterable of batches once (a ``DataLoader``, a list of dicts or tuples) into a :class:`BatchedSet`.
    A single tensor or dict of named tensors is one batch."""
    if isinstance(batches, (torch.Tensor, dict)):
        batches = [batches]
    try:
        kept = [split_batch(b, f"batch {i}") for i, b in enumerate(batches)]
    except TypeError as exc:
        raise InvalidValueError(f"the dataset must be a name, an EvalSet or an iterable of batches, not "
                                f"{_kind(batches)}") from exc
    if not kept:
        raise InvalidValueError("the iterable of batches is empty")
    labelled = {y is not None for _, y in kept}
    if len(labelled) > 1:
        raise InvalidValueError("some batches have labels and some do not: give labels with every batch, or none")
    if len({isinstance(x, dict) for x, _ in kept}) > 1:
        raise InvalidValueError("some batches have named inputs and some a plain tensor: use one form")
    return BatchedSet(name or type(batches).__name__, kept)
