"""Which parameters a distortion touches: every weight that multiplies an input (docs/targets.md).

Each parameter has a role (:data:`ROLES`). With the record of the probe batch's forward pass
(:class:`~...load.uses.Uses`), the default targets are the floating-point parameters of two or more dimensions
that the pass multiplied with data: ``linear``, ``conv``, ``recurrent``, ``attention`` and ``matmul`` (a custom
``x @ W`` or ``einsum``; GPT-2's ``Conv1D``, an ``addmm``, is ``linear``). A table that is looked up is an
``embedding`` even where it is also multiplied (a tied output layer); ``embedding``, ``norm``, ``bias`` and
``other`` parameters are not targets by default, nor is a layer the pass never reached. Without a record (a
TorchScript program, a module given without data) the roles come from the module types alone
(:func:`~...load.layers.module_roles`) and the selection says so (:attr:`Selection.rule`).

``include`` globs (on parameter names such as ``features.0.weight``) replace the default with every parameter
they match; ``exclude`` globs remove parameters from the selection. Shared (tied) parameters count once.

Without a model (a state dict read without ``--arch``, for effective bits), :func:`choose_tensors` chooses
by shape: the default targets are the floating-point tensors with two or more dimensions, named by their keys;
``include`` and ``exclude`` work the same way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ...errors import InvalidValueError
from ...load.layers import looks_like_embedding, module_roles, unique_named_parameters
from ...load.uses import Uses

MULTIPLYING = ("linear", "conv", "recurrent", "attention", "matmul")
ROLES = (*MULTIPLYING, "embedding", "norm", "bias", "other")
RULES = {"use": "the weights that multiply an input in the forward pass",
         "module type": "the weights of linear, conv, recurrent and attention layers, by module type",
         "shape": "the floating-point tensors with 2 or more dimensions, by shape"}


@dataclass(frozen=True)
class Selection:
    """The chosen ``targets`` (``(name, tensor)``, in the model's order) among all ``params`` (each once), every
    parameter's role, the default names, the ``rule`` that chose them (``use``, ``module type`` or ``shape``),
    ``why`` a record was not used, the names an ``exclude`` glob took out, and whether ``include`` globs chose."""

    targets: list[tuple[str, torch.Tensor]]
    params: dict[str, torch.Tensor]
    roles: dict[str, str]
    default: list[str]
    rule: str
    why: str = ""
    excluded: list[str] = field(default_factory=list)
    included: bool = False  # chosen by --include globs (not the default)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.targets]


def parameter_roles(model: nn.Module, uses: Uses | None = None) -> dict[str, str]:
    """Every parameter's role: by its use in the recorded forward pass where there is one, else by module type."""
    by_type = module_roles(model)
    if uses is None or not uses.traced:
        return by_type
    params = dict(unique_named_parameters(model))
    return {name: role_by_use(role, uses.roles.get(name), params[name]) for name, role in by_type.items()}


def role_by_use(by_type: str, used: str | None, p: torch.Tensor) -> str:
    """A parameter's role from its use (``used``: None where the pass did not take it) and its module type."""
    if used == "embedding" or used is None:
        return used or by_type
    if used == "bias" or p.dim() < 2 or not p.is_floating_point():
        return by_type if by_type in ("norm", "bias", "embedding") else "bias" if used == "bias" else "other"
    if used == "matmul" and by_type in MULTIPLYING:  # Conv1D's addmm is a linear layer
        return by_type
    return used


def default_targets(model: nn.Module, uses: Uses | None = None) -> list[str]:
    """Names of the parameters distorted by default (see the module docstring)."""
    params = dict(unique_named_parameters(model))
    traced = uses is not None and uses.traced
    return [n for n, role in parameter_roles(model, uses).items()
            if role in MULTIPLYING and params[n].dim() >= 2 and (not traced or n in uses.roles)]


def choose_targets(model: nn.Module, include: Iterable[str] = (), exclude: Iterable[str] = (),
                   uses: Uses | None = None) -> Selection:
    """The :class:`Selection` of ``model`` (raises if nothing is selected)."""
    params = dict(unique_named_parameters(model))
    traced = uses is not None and uses.traced
    why = "" if traced else uses.why if uses is not None else "no forward pass was recorded"
    return _choose(params, parameter_roles(model, uses), default_targets(model, uses), include, exclude,
                   "use" if traced else "module type", why)


def select_targets(model: nn.Module, include: Iterable[str] = (), exclude: Iterable[str] = (),
                   uses: Uses | None = None) -> list[tuple[str, torch.Tensor]]:
    """``(name, parameter)`` pairs to distort, in the model's order; raises if nothing is selected."""
    return choose_targets(model, include, exclude, uses).targets


def shape_role(name: str, t: torch.Tensor) -> str:
    """A bare tensor's role, guessed from its name and shape (there is no module to ask)."""
    if not t.is_floating_point():
        return "other"
    if "bias" in name.rsplit(".", 1)[-1]:
        return "bias"
    if looks_like_embedding(name):
        return "embedding"
    return "conv" if t.dim() >= 3 else "linear" if t.dim() == 2 else "other"


def choose_tensors(tensors: dict[str, torch.Tensor], include: Iterable[str] = (),
                   exclude: Iterable[str] = ()) -> Selection:
    """The :class:`Selection` of a bare state dict, chosen by shape (see the module docstring)."""
    default = [n for n, t in tensors.items() if t.is_floating_point() and t.dim() >= 2]
    return _choose(tensors, {n: shape_role(n, t) for n, t in tensors.items()}, default, include, exclude, "shape",
                   "no architecture: a bare tensor file")


def select_tensors(tensors: dict[str, torch.Tensor], include: Iterable[str] = (),
                   exclude: Iterable[str] = ()) -> list[tuple[str, torch.Tensor]]:
    """``(key, tensor)`` pairs of a bare state dict, chosen by shape (see the module docstring)."""
    return choose_tensors(tensors, include, exclude).targets


def matching(names: Iterable[str], patterns: list[str]) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _choose(params: dict[str, torch.Tensor], roles: dict[str, str], default: list[str], include: Iterable[str],
            exclude: Iterable[str], rule: str, why: str) -> Selection:
    include, exclude = list(include), list(exclude)
    chosen = matching(params, include) if include else default
    excluded = matching(chosen, exclude)
    chosen = [n for n in chosen if n not in excluded and params[n].is_floating_point()]
    if not chosen:
        what = f"--include {' '.join(include)}" if include else f"the default ({RULES[rule]})"
        raise InvalidValueError(f"no parameters selected by {what}" + (f" minus --exclude {' '.join(exclude)}" if exclude else ""))
    return Selection([(n, params[n]) for n in chosen], params, roles, default, rule, why, excluded, bool(include))
