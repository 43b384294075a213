"""Built-in architectures, by name (``wrobust list archs``).

An architecture is a factory ``(num_classes=..., **kwargs) -> nn.Module`` registered with
:func:`register_arch`. Checkpoints in wrobust's own format record the name and the keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from .registry import Registry


@dataclass(frozen=True)
class ArchDef:
    name: str
    factory: Callable[..., nn.Module]
    description: str
    input_shape: tuple[int, ...] | None = None  # default input shape (without batch), if fixed


ARCHS: Registry[ArchDef] = Registry("architecture", ArchDef)


def register_arch(name: str, description: str, input_shape: tuple[int, ...] | None = None):
    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ARCHS.register(name, ArchDef(name.lower(), factory, description, input_shape))
        return factory

    return decorate


def build_arch(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered architecture."""
    return ARCHS.get(name).factory(**kwargs)


@register_arch("mlp", "multi-layer perceptron: flatten, then Linear-(BatchNorm)-ReLU blocks, then Linear")
def mlp(
    in_features: int = 64, hidden: Sequence[int] = (256, 256), num_classes: int = 10, batch_norm: bool = False
) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers.append(nn.Linear(width, h, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(nn.ReLU())
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def build_model(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Any architecture by name: a built-in one, else a torchvision classification model
    (``torchvision.models.get_model``), else user code as ``package.module:callable`` or
    ``path/to/file.py:callable``. ``num_classes`` is passed on when given."""
    from .archspec import resolve_arch

    extra = dict(kwargs)
    if num_classes is not None:
        extra["num_classes"] = num_classes
    return resolve_arch(name)(**extra)
