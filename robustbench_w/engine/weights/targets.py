"""Which parameters a distortion touches.

Default: the weights of convolution and linear layers (not biases, not normalisation layers). ``include``
globs (on parameter names such as ``features.0.weight``) replace the default with every parameter they
match; ``exclude`` globs remove parameters from the selection. Shared (tied) parameters count once.

Without a model (a state dict read without ``--arch``, for effective bits), :func:`select_tensors` chooses
by shape: the default targets are the floating-point tensors with two or more dimensions (matrix and
convolution weights), named by their keys; ``include`` and ``exclude`` work the same way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import torch
from torch import nn

from ...errors import InvalidValueError
from ...load.layers import is_weight_layer


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
    params = dict(_unique_named_parameters(model))
    return _choose(params, [n for n in default_targets(model) if n in params], include, exclude,
                   "the default (conv and linear weights)")


def shape_targets(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Without an architecture: the floating-point tensors with two or more dimensions."""
    return [n for n, t in tensors.items() if t.is_floating_point() and t.dim() >= 2]


def select_tensors(tensors: dict[str, torch.Tensor], include: Iterable[str] = (),
                   exclude: Iterable[str] = ()) -> list[tuple[str, torch.Tensor]]:
    """``(key, tensor)`` pairs of a bare state dict, chosen by shape (see the module docstring)."""
    return _choose(tensors, shape_targets(tensors), include, exclude,
                   "shape (floating-point tensors with 2 or more dimensions)")


def _choose(params: dict[str, torch.Tensor], default: list[str], include: Iterable[str], exclude: Iterable[str],
            what_default: str) -> list[tuple[str, torch.Tensor]]:
    include, exclude = list(include), list(exclude)
    chosen = [n for n in params if any(fnmatch.fnmatchcase(n, p) for p in include)] if include else default
    chosen = [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in exclude)]
    chosen = [n for n in chosen if params[n].is_floating_point()]
    if not chosen:
        what = f"--include {' '.join(include)}" if include else what_default
        raise InvalidValueError(f"no parameters selected by {what}" + (f" minus --exclude {' '.join(exclude)}" if exclude else ""))
    return [(n, params[n]) for n in chosen]


def _unique_named_parameters(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            yield name, p
