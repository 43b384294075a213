"""Which parameters a distortion touches.

Default: the weights of convolution and linear layers (not biases, not normalisation layers). ``include``
globs (on parameter names such as ``features.0.weight``) replace the default with every parameter they
match; ``exclude`` globs remove parameters from the selection. Shared (tied) parameters count once.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import torch
from torch import nn

from ..errors import InvalidValueError
from ..load.layers import is_weight_layer


def default_targets(model: nn.Module) -> list[str]:
    """Names of the weight tensors of the convolution and linear layers of ``model``."""
    names = []
    for mod_name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and is_weight_layer(module):
            names.append(f"{mod_name}.weight" if mod_name else "weight")
    return names


def select_targets(
    model: nn.Module, include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> list[tuple[str, torch.Tensor]]:
    """``(name, parameter)`` pairs to distort, in the model's order; raises if nothing is selected."""
    include, exclude = list(include), list(exclude)
    params = dict(_unique_named_parameters(model))
    chosen = [n for n in params if any(fnmatch.fnmatchcase(n, p) for p in include)] if include else [
        n for n in default_targets(model) if n in params
    ]
    chosen = [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in exclude)]
    chosen = [n for n in chosen if params[n].is_floating_point()]
    if not chosen:
        what = f"--include {' '.join(include)}" if include else "the default (conv and linear weights)"
        raise InvalidValueError(f"no parameters selected by {what}" + (f" minus --exclude {' '.join(exclude)}" if exclude else ""))
    return [(n, params[n]) for n in chosen]


def _unique_named_parameters(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            yield name, p
