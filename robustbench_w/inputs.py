"""Turn what the user named (a model spec, a dataset name, a device) into ready objects.

Every command loads its inputs through :func:`load_inputs`, so that model options (``--arch``, ...) and
data options (``--data-root``, ...) mean the same thing everywhere. Options are passed flat, as the CLI
parses them, and routed by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .checkpoints import LoadedModel, load_model
from .data import EvalSet, limit_subset, load_dataset
from .errors import InvalidValueError
from .evaluate import resolve_device

# Option names that belong to checkpoint loading; every other option goes to the dataset loader.
MODEL_OPTIONS = frozenset({"arch", "num_classes", "trust_checkpoint"})


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
        return limit_subset(dataset, limit, seed) if limit else dataset
    name = dataset or model.dataset
    if name is None:
        raise InvalidValueError(f"{model.name}: the checkpoint names no dataset; pass --dataset")
    return load_dataset(name, limit=limit, seed=seed, **data_options)


def load_inputs(model: str | LoadedModel | nn.Module, dataset: str | EvalSet | None = None, *,
                device: str | torch.device | None = "auto", limit: int | None = None, seed: int = 0,
                **options) -> Inputs:
    """Load the model (on the device) and its evaluation set."""
    dev = resolve_device(device)
    model_options, data_options = split_options(options)
    loaded = as_loaded(model, dev, **model_options)
    data = as_evalset(dataset, loaded, limit=limit, seed=seed, **data_options)
    return Inputs(loaded, data, dev)
