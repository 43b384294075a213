"""Datasets as evaluation sets held in memory as tensors.

An :class:`EvalSet` holds raw inputs (uint8 where the data is 8-bit) and labels, with the normalisation
that turns a raw batch into model input. Each sweep point then costs one pass over the model and nothing
else. Inputs are one tensor ``(N, ...)`` (passed to the model positionally) or a dict of named tensors
``{"input_ids": (N, T), "attention_mask": (N, T), ...}`` (passed as keyword arguments, never normalised).
Labels are integer classes ``(N,)`` or float targets ``(N, ...)`` (regression). Datasets are registered by name in ``DATASETS``; a loader is ``(split, **options) -> EvalSet``.

A dataset that takes an argument is named ``PREFIX:ARGUMENT`` (``imagefolder:PATH``, ``tensors:FILE``); the
prefix is looked up in the registry and the argument reaches the loader as ``source``. Loaders receive every
data option (``data_root``, ``download``, ``image_size``, ``input_shape``, ``limit``, ``seed``, ...) and
ignore those they do not use. The loaders live beside this file, one file per kind, and register themselves
when the package :mod:`robustbench_w.datasets` is imported.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Union

import torch

from ..errors import InvalidValueError, WrobustWarning
from ..registry import Registry


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

    def with_overrides(self, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> Normalization:
        """The same divisor with ``--mean`` / ``--std`` replacing the preset's (one value or one per channel)."""
        mean = self.mean if mean is None else tuple(float(v) for v in mean)
        std = self.std if std is None else tuple(float(v) for v in std)
        if not mean or not std:
            raise InvalidValueError("--mean and --std need at least one value each")
        if any(not s > 0 for s in std):
            raise InvalidValueError(f"--std must be positive, not {','.join(f'{v:g}' for v in std)}")
        if len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise InvalidValueError(f"--mean has {len(mean)} values and --std {len(std)}: give one each, or one per channel")
        return Normalization(self.divisor, mean, std)

    def check_channels(self, channels: int, where: str) -> None:
        """Raise unless ``mean`` and ``std`` have one value or one per channel of the inputs."""
        for label, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise InvalidValueError(f"{where}: {len(values)} {label} values for inputs with {channels} channels")

    @property
    def is_identity(self) -> bool:
        return self.divisor == 1.0 and self.mean == (0.0,) and self.std == (1.0,)

    def describe(self) -> str:
        """The formula in a few characters: ``(x/16 - 0.3058) / 0.3764``, ``x/255``, ``none``."""
        if self.is_identity:
            return "none"
        x = "x" if self.divisor == 1.0 else f"x/{self.divisor:g}"
        if self.mean == (0.0,) and self.std == (1.0,):
            return x
        return f"({x} - {_values(self.mean)}) / {_values(self.std)}"

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(float(d.get("divisor", 1.0)), tuple(map(float, d["mean"])), tuple(map(float, d["std"])))


def _values(values: tuple[float, ...]) -> str:
    return f"{values[0]:g}" if len(values) == 1 else "(" + ", ".join(f"{v:g}" for v in values) + ")"


Inputs = Union[torch.Tensor, dict[str, torch.Tensor]]  # one tensor, or named tensors (keyword arguments)


def inputs_len(x: Inputs) -> int:
    """The number of examples in ``x`` (the first dimension)."""
    return int(next(iter(x.values())).shape[0] if isinstance(x, dict) else x.shape[0])


def take(x: Inputs, index: torch.Tensor | slice) -> Inputs:
    """The examples ``index`` of ``x`` (each named tensor indexed alike)."""
    return {k: v[index] for k, v in x.items()} if isinstance(x, dict) else x[index]


def describe_inputs(x: Inputs) -> str:
    """``(1, 8, 8)`` or ``input_ids (16,), attention_mask (16,)``: the shape of one example."""
    if isinstance(x, dict):
        return ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in x.items())
    return str(tuple(x.shape[1:]))


@dataclass
class EvalSet:
    """Inputs ``x`` (raw), labels ``y`` (None when the set has none), and how to normalise ``x``;
    ``normalization_source`` says where that normalisation came from (the dataset's preset, a file, the
    checkpoint, the command line)."""

    name: str
    x: Inputs
    y: torch.Tensor | None
    num_classes: int | None
    normalization: Normalization = field(default_factory=Normalization)
    split: str = "test"
    normalization_source: str = "the dataset preset"

    def __len__(self) -> int:
        return inputs_len(self.x)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example (of the first named input, for named inputs)."""
        first = next(iter(self.x.values())) if isinstance(self.x, dict) else self.x
        return tuple(first.shape[1:])

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    @property
    def named(self) -> bool:
        """Whether the inputs are named tensors, passed to the model as keyword arguments."""
        return isinstance(self.x, dict)

    def subset(self, index: torch.Tensor) -> EvalSet:
        return replace(self, x=take(self.x, index), y=None if self.y is None else self.y[index])

    def raw_batches(self, batch_size: int) -> Iterator[tuple[Inputs, torch.Tensor | None]]:
        """``(raw inputs, labels)`` of consecutive batches of ``batch_size`` examples."""
        for start in range(0, len(self), batch_size):
            part = slice(start, start + batch_size)
            yield take(self.x, part), None if self.y is None else self.y[part]

    def model_inputs(self, raw: Inputs) -> Inputs:
        """Raw inputs as the model takes them: one tensor normalised, named tensors as they are."""
        return raw if isinstance(raw, dict) else self.normalization.apply(raw)

    def head(self, k: int) -> tuple[Inputs, torch.Tensor | None]:
        """The first ``k`` examples as model inputs, with their labels (a probe batch)."""
        raw, y = next(self.raw_batches(k))
        return self.model_inputs(raw), y

    def classes(self) -> int | None:
        """The number of classes: the dataset's, else the number of distinct labels (None without class labels)."""
        if self.num_classes is not None:
            return self.num_classes
        classes = self.y is not None and len(self.y) and self.y.dim() == 1 and not self.y.is_floating_point()
        return int(torch.unique(self.y).numel()) if classes else None


def concat_sets(first: EvalSet, second: EvalSet, split: str = "all") -> EvalSet:
    """Two splits of one dataset as one evaluation set (``--split all``): ``first``'s examples, then ``second``'s."""
    y = None if first.y is None or second.y is None else torch.cat([first.y, second.y])
    x = {k: torch.cat([v, second.x[k]]) for k, v in first.x.items()} if first.named else torch.cat([first.x, second.x])
    return replace(first, x=x, y=y, split=split)


@dataclass(frozen=True)
class DatasetDef:
    name: str
    loader: Callable[..., EvalSet]
    description: str
    argument: str | None = None  # metavar of the argument after the colon (``PATH``), if the dataset takes one

    @property
    def usage(self) -> str:
        return f"{self.name}:{self.argument}" if self.argument else self.name


DATASETS: Registry[DatasetDef] = Registry("dataset", DatasetDef)
SPLITS = ("test", "train", "all")  # all: train and test together


def register_dataset(name: str, description: str, argument: str | None = None):
    """Decorator: register a loader ``(split, **options) -> EvalSet``; ``argument`` names what follows the
    colon for datasets named ``NAME:ARGUMENT`` (the loader then gets it as ``source``)."""
    def decorate(loader: Callable[..., EvalSet]) -> Callable[..., EvalSet]:
        DATASETS.register(name, DatasetDef(name.lower(), loader, description, argument))
        return loader

    return decorate


OVERRIDES_FROM = "--mean/--std"  # where a given mean/std came from, unless the caller says otherwise


def parse_dataset_name(name: str) -> tuple[DatasetDef, dict]:
    """The registry entry for ``NAME`` or ``PREFIX:ARGUMENT``, and the loader's ``source`` option."""
    prefix, colon, argument = str(name).partition(":")
    definition = DATASETS.get(prefix)
    if definition.argument and not argument:
        raise InvalidValueError(f"dataset {definition.name!r} needs an argument: --dataset {definition.usage}")
    if colon and not definition.argument:
        raise InvalidValueError(f"dataset {definition.name!r} takes no argument (got {name!r})")
    return definition, ({"source": argument} if definition.argument else {})


def load_dataset(name: str, split: str = "test", limit: int | None = None, seed: int = 0, *,
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                 overrides_from: str = OVERRIDES_FROM, **options) -> EvalSet:
    """Load a registered dataset as an :class:`EvalSet`.

    ``limit`` takes a seeded, class-balanced subset (loaders that can pick it before reading, do);
    ``mean`` / ``std`` override the dataset's normalisation preset, and ``overrides_from`` says where they came
    from (the set's ``normalization_source``: ``--mean/--std``, or a gate policy's keys). Other ``options`` go
    to the loader.
    """
    if split not in SPLITS:
        raise InvalidValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if limit is not None and limit <= 0:
        raise InvalidValueError(f"--limit must be a positive number, not {limit}")
    definition, source = parse_dataset_name(name)
    data = definition.loader(split=split, limit=limit, seed=seed, **source, **options)
    if mean is not None or std is not None:
        data = replace(data, normalization=data.normalization.with_overrides(mean, std),
                       normalization_source=overrides_from)
    if not data.named and data.x.dim() >= 2:
        data.normalization.check_channels(int(data.x.shape[1]), f"dataset {data.name}")
    return limit_subset(data, limit, seed) if limit is not None else data


def subset_index(y: torch.Tensor | None, n: int, limit: int, seed: int = 0) -> torch.Tensor:
    """Indices (sorted) of a seeded subset of ``limit`` of ``n`` examples, balanced over the classes of ``y``
    when there are class labels (classes take turns; a class that runs out drops out; float targets are not
    classes)."""
    if limit <= 0:
        raise InvalidValueError(f"--limit must be a positive number, not {limit}")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    if y is None or limit >= n or y.dim() != 1 or y.is_floating_point():
        return order[:limit].sort().values
    y = y[order]
    # rank of each example within its class (in the seeded order); take the lowest ranks first
    rank = torch.empty(n, dtype=torch.long)
    for c in torch.unique(y):
        members = torch.nonzero(y == c).flatten()
        rank[members] = torch.arange(len(members))
    chosen = torch.argsort(rank * n + torch.arange(n), stable=True)[:limit]
    return order[chosen].sort().values


def limit_subset(data: EvalSet, limit: int, seed: int = 0) -> EvalSet:
    """A seeded subset of ``limit`` examples, balanced over classes when there are labels.
    The subset keeps the original order; a set no larger than ``limit`` is returned as it is (with a
    warning when it is smaller: the run is not on the ``limit`` examples that were asked for)."""
    if limit <= 0:
        raise InvalidValueError(f"--limit must be a positive number, not {limit}")
    if limit > len(data):
        warnings.warn(f"--limit {limit:,} is more than the {len(data):,} examples of {data.name} ({data.split}): "
                      f"using all {len(data):,}", WrobustWarning, stacklevel=2)
    if limit >= len(data):
        return data
    return data.subset(subset_index(data.y, len(data), limit, seed))
