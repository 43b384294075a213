"""Turn what the user named (a model spec, a dataset name, a device) into ready objects.

Every command loads its inputs through :func:`load_inputs`, so that model options (``--arch``, ...) and
data options (``--data-root``, ...) mean the same thing everywhere. Options are passed flat, as the CLI
parses them, and routed by name.

Normalisation: ``--mean``/``--std`` when given; else the checkpoint's, when it records one (it is what the
model expects); else the dataset's preset. The model's input shape and normalisation are offered to the
dataset loader (``synthetic`` draws its inputs from them). Before any sweep, one probe batch of two inputs
checks that the model runs on the data and that its outputs fit the dataset's classes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..datasets.base import EvalSet, limit_subset, load_dataset
from ..errors import InvalidValueError
from .checkpoints import LoadedModel, load_model
from .device import resolve_device
from .usercode import user_code_error

# Option names that belong to checkpoint loading; every other option goes to the dataset loader.
MODEL_OPTIONS = frozenset({"arch", "num_classes", "trust_checkpoint", "strict"})
OVERRIDES = ("mean", "std")


@dataclass
class Inputs:
    model: LoadedModel
    data: EvalSet
    device: torch.device


def split_options(options: dict) -> tuple[dict, dict]:
    """(model options, data options); ``None`` values (options not given) are dropped."""
    given = {k: v for k, v in options.items() if v is not None}
    return ({k: v for k, v in given.items() if k in MODEL_OPTIONS},
            {k: v for k, v in given.items() if k not in MODEL_OPTIONS})


def as_loaded(model: str | LoadedModel | nn.Module, device: torch.device, **model_options) -> LoadedModel:
    if isinstance(model, LoadedModel):
        model.module.to(device).eval()
        return model
    if isinstance(model, nn.Module):
        return LoadedModel(module=model.to(device).eval(), name=type(model).__name__)
    return load_model(model, device=device, **model_options)


def as_evalset(dataset: str | EvalSet | None, model: LoadedModel, limit: int | None = None, seed: int = 0,
               **data_options) -> EvalSet:
    if isinstance(dataset, EvalSet):
        if any(k in data_options for k in OVERRIDES):
            norm = dataset.normalization.with_overrides(data_options.get("mean"), data_options.get("std"))
            dataset = replace(dataset, normalization=norm)
        return limit_subset(dataset, limit, seed) if limit else dataset
    name = dataset or model.dataset
    if name is None:
        raise InvalidValueError(f"{model.name}: the checkpoint names no dataset; pass --dataset "
                                f"(for example --dataset synthetic --input-shape 3,32,32)")
    data_options.setdefault("input_shape", model.input_shape)
    data_options.setdefault("model_normalization", model.normalization)
    return load_dataset(name, limit=limit, seed=seed, **data_options)


def resolve_normalization(model: LoadedModel, data: EvalSet, overridden: bool) -> tuple[LoadedModel, EvalSet]:
    """The model and evaluation set of this run, both carrying the normalisation it uses (copies where that
    differs: the caller's objects are left as they were)."""
    norm = data.normalization if overridden or model.normalization is None else model.normalization
    if model.normalization != norm:
        model = replace(model, normalization=norm)
    return model, (data if norm == data.normalization else replace(data, normalization=norm))


def check_fit(model: LoadedModel, data: EvalSet, device: torch.device) -> None:
    """One probe batch: the model must run on the data and give ``(batch, classes)`` outputs that fit its labels."""
    if len(data) == 0:
        raise InvalidValueError(f"dataset {data.name} is empty")
    x = data.normalization.apply(data.x[:2].to(device))
    try:
        with torch.inference_mode():
            out = model.module(x)
    except Exception as exc:  # the user's code raised, or model and data do not fit each other
        mine = user_code_error(exc)
        if mine is not None:
            raise mine from exc
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidValueError(f"{model.name} does not run on {data.name} inputs of shape {tuple(data.input_shape)}: "
                                f"{first} (wrong dataset, --input-shape or --image-size?)") from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidValueError(f"{model.name}: outputs {shape}, expected logits of shape (batch, classes)")
    _check_classes(model, data, int(out.shape[1]))


def _check_classes(model: LoadedModel, data: EvalSet, outputs: int) -> None:
    if data.num_classes is not None and outputs != data.num_classes:
        raise InvalidValueError(f"{model.name} has {outputs} outputs but dataset {data.name} has {data.num_classes} "
                                f"classes (with --arch, pass --num-classes {data.num_classes})")
    if data.y is not None and len(data.y) and int(data.y.max()) >= outputs:
        raise InvalidValueError(f"{model.name} has {outputs} outputs but dataset {data.name} has label "
                                f"{int(data.y.max())}")


def load_inputs(model: str | LoadedModel | nn.Module, dataset: str | EvalSet | None = None, *,
                device: str | torch.device | None = "auto", limit: int | None = None, seed: int = 0,
                **options) -> Inputs:
    """Load the model (on the device) and its evaluation set, and check that they fit each other."""
    dev = resolve_device(device)
    model_options, data_options = split_options(options)
    loaded = as_loaded(model, dev, **model_options)
    data = as_evalset(dataset, loaded, limit=limit, seed=seed, **data_options)
    loaded, data = resolve_normalization(loaded, data, any(k in data_options for k in OVERRIDES))
    check_fit(loaded, data, dev)
    return Inputs(loaded, data, dev)
