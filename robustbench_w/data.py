"""Datasets as evaluation sets held in memory as tensors.

An :class:`EvalSet` holds raw inputs (uint8 where the data is 8-bit) and labels, with the normalisation
that turns a raw batch into model input. Each sweep point then costs one pass over the model and nothing
else. Datasets are registered by name in ``DATASETS``; a loader is ``(split, **options) -> EvalSet``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .errors import InvalidValueError
from .registry import Registry


@dataclass(frozen=True)
class Normalization:
    """``(x / divisor - mean) / std`` with ``mean`` and ``std`` per channel (dimension 1)."""

    divisor: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.divisor != 1.0:
            x = x / self.divisor
        if self.mean == (0.0,) and self.std == (1.0,):
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape)
        return (x - mean) / std

    def to_dict(self) -> dict:
        return {"divisor": self.divisor, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(float(d.get("divisor", 1.0)), tuple(map(float, d["mean"])), tuple(map(float, d["std"])))


@dataclass
class EvalSet:
    """Inputs ``x`` (raw), labels ``y`` (None when the set has none), and how to normalise ``x``."""

    name: str
    x: torch.Tensor
    y: torch.Tensor | None
    num_classes: int | None
    normalization: Normalization = field(default_factory=Normalization)
    split: str = "test"

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    def subset(self, index: torch.Tensor) -> EvalSet:
        return replace(self, x=self.x[index], y=None if self.y is None else self.y[index])


@dataclass(frozen=True)
class DatasetDef:
    name: str
    loader: Callable[..., EvalSet]
    description: str


DATASETS: Registry[DatasetDef] = Registry("dataset", DatasetDef)


def register_dataset(name: str, description: str):
    def decorate(loader: Callable[..., EvalSet]) -> Callable[..., EvalSet]:
        DATASETS.register(name, DatasetDef(name.lower(), loader, description))
        return loader

    return decorate


def load_dataset(name: str, split: str = "test", limit: int | None = None, seed: int = 0, **options) -> EvalSet:
    """Load a registered dataset as an :class:`EvalSet`; ``limit`` takes a seeded, class-balanced subset."""
    if split not in ("test", "train"):
        raise InvalidValueError(f"split must be 'test' or 'train', not {split!r}")
    data = DATASETS.get(name).loader(split=split, **options)
    return limit_subset(data, limit, seed) if limit is not None else data


def limit_subset(data: EvalSet, limit: int, seed: int = 0) -> EvalSet:
    """A seeded subset of ``limit`` examples, balanced over classes when there are labels
    (classes take turns; a class that runs out drops out). The subset keeps the original order."""
    if limit <= 0:
        raise InvalidValueError(f"--limit must be a positive number, not {limit}")
    if limit >= len(data):
        return data
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)
    if data.y is None:
        return data.subset(order[:limit].sort().values)
    y = data.y[order]
    per_class = [order[y == c] for c in torch.unique(y)]
    # rank of each example within its class (in the seeded order); take the lowest ranks first
    rank = torch.empty(len(data), dtype=torch.long)
    for members in per_class:
        rank[members] = torch.arange(len(members))
    chosen = torch.argsort(rank[order] * len(data) + torch.arange(len(data)), stable=True)[:limit]
    return data.subset(order[chosen].sort().values)


# ---------------------------------------------------------------- built-in: digits

DIGITS_NORMALIZATION = Normalization(divisor=16.0, mean=(0.3058,), std=(0.3764,))


@register_dataset("digits", "8x8 handwritten digits shipped with scikit-learn (1,797 images, 10 classes)")
def load_digits_set(split: str = "test", **_: object) -> EvalSet:
    """The 8x8 digits of scikit-learn (no download), as uint8 images of shape (1, 8, 8), values 0-16.

    Split (fixed, stratified, no randomness): within each class, in scikit-learn's order, every fifth image
    (positions 4, 9, 14, ...) is ``test`` (355 images); the other 1,442 are ``train``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.uint8)
    target = np.asarray(bunch.target, dtype=np.int64)
    test = digits_test_mask(target)
    keep = test if split == "test" else ~test
    x = torch.from_numpy(images[keep]).unsqueeze(1)
    y = torch.from_numpy(target[keep])
    return EvalSet("digits", x, y, 10, DIGITS_NORMALIZATION, split)


def digits_test_mask(target: np.ndarray) -> np.ndarray:
    """True for every fifth image of each class (positions 4, 9, 14, ... within the class)."""
    mask = np.zeros(len(target), dtype=bool)
    for c in np.unique(target):
        members = np.flatnonzero(target == c)
        mask[members[4::5]] = True
    return mask
