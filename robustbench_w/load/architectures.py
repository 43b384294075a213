"""Built-in architectures, by name (``wrobust list archs``): the registry ``ARCHS`` and its entries.

An architecture is a factory ``(num_classes=..., **kwargs) -> nn.Module`` registered with
:func:`register_arch`. Checkpoints in wrobust's own format record the name and the keyword arguments.
:func:`check_options` checks keyword arguments a user gives (``train -A KEY=VALUE``) against the
factory's signature: a known name, and a value of the kind its default has.
Names are resolved (built-in, torchvision, user code) by :mod:`.archspec`, which consults this registry.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import nn

from ..errors import InvalidValueError
from ..registry import Registry


@dataclass(frozen=True)
class ArchDef:
    name: str
    factory: Callable[..., nn.Module]
    description: str
    input_shape: tuple[int, ...] | None = None  # default input shape (without batch), if fixed
    # keyword arguments that fit the architecture to an input shape (without batch), for training
    fit: Callable[[tuple[int, ...]], dict] | None = None
    # keyword arguments ``wrobust train`` uses unless told otherwise (e.g. batch norm after each layer)
    train_defaults: dict = field(default_factory=dict)


ARCHS: Registry[ArchDef] = Registry("architecture", ArchDef)


def check_options(definition: ArchDef, given: dict) -> None:
    """Raise a usage error about ``-A KEY=VALUE`` unless each key is an argument of the factory and each value
    is of the kind of its default: true/false, a positive integer, a positive number, a list of positive
    integers. (``num_classes`` and the input size come from the data unless given.)"""
    params = inspect.signature(definition.factory).parameters
    for key, value in given.items():
        if key not in params:
            raise InvalidValueError(f"-A {key}: {definition.name} has no option {key!r} "
                                    f"(options: {', '.join(params)})")
        expected = _expected(params[key].default, value)
        if expected:
            shown = value if isinstance(value, str) else json.dumps(value)
            raise InvalidValueError(f"-A {key}={shown}: expected {expected} "
                                    f"(default {json.dumps(params[key].default)})")


def _expected(default: object, value: object) -> str:
    """What ``value`` should be, judged by ``default``; '' when it is fine."""
    def positive_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return "" if positive_int(value) else "a positive integer"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        return "" if ok else "a positive number"
    if isinstance(default, (tuple, list)):
        return "" if isinstance(value, list) and value and all(map(positive_int, value)) else \
            "a list of positive integers such as [256,256]"
    return ""


def register_arch(name: str, description: str, input_shape: tuple[int, ...] | None = None,
                  fit: Callable[[tuple[int, ...]], dict] | None = None, train_defaults: dict | None = None):
    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ARCHS.register(name, ArchDef(name.lower(), factory, description, input_shape, fit, dict(train_defaults or {})))
        return factory

    return decorate


@register_arch("mlp", "multi-layer perceptron: flatten, then Linear-(BatchNorm)-ReLU blocks, then Linear",
               fit=lambda shape: {"in_features": math.prod(shape)},
               train_defaults={"batch_norm": True, "batch_norm_output": True})
def mlp(
    in_features: int = 64, hidden: Sequence[int] = (256, 256), num_classes: int = 10, batch_norm: bool = False,
    batch_norm_output: bool = False,
) -> nn.Module:
    """``batch_norm`` puts a BatchNorm1d after each hidden Linear; ``batch_norm_output`` one after the last
    (as BinaryConnect does, so that the scale of projected weights does not set the scale of the logits)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers.append(nn.Linear(width, h, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(nn.ReLU())
        width = h
    layers.append(nn.Linear(width, num_classes, bias=not batch_norm_output))
    if batch_norm_output:
        layers.append(nn.BatchNorm1d(num_classes))
    return nn.Sequential(*layers)


def _image_fit(shape: tuple[int, ...]) -> dict:
    if len(shape) != 3:
        raise InvalidValueError(f"a convolutional network needs images (C, H, W), not inputs of shape {tuple(shape)}")
    return {"in_channels": shape[0], "image_size": shape[1]}


@register_arch("binaryconnect", "the CIFAR-10 net of BinaryConnect (Courbariaux et al. 2015): "
               "2x128C3-MP2-2x256C3-MP2-2x512C3-MP2-2x1024FC-10, batch norm after each layer",
               input_shape=(3, 32, 32), fit=_image_fit)
def binaryconnect(in_channels: int = 3, num_classes: int = 10, image_size: int = 32, width: float = 1.0,
                  fc: int = 1024) -> nn.Module:
    """Conv-(MaxPool)-BatchNorm-ReLU blocks as in BinaryConnect, batch norm on the output layer too
    (Courbariaux, Bengio, David 2015, arXiv:1511.00363). ``width`` scales every channel count."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for c in (128, 256, 512):
        c = max(1, round(c * width))
        for pool in (False, True):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False)]
            layers += [nn.MaxPool2d(2)] if pool else []
            layers += [nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
    side = image_size // 8
    layers += [nn.Flatten(), nn.Linear(c_in * side * side, fc, bias=False), nn.BatchNorm1d(fc), nn.ReLU(),
               nn.Linear(fc, fc, bias=False), nn.BatchNorm1d(fc), nn.ReLU(),
               nn.Linear(fc, num_classes, bias=False), nn.BatchNorm1d(num_classes)]
    return nn.Sequential(*layers)


@register_arch("resnet18-cifar", "ResNet-18 for small images: 3x3 stem, stride 1, no max-pool "
               "(He et al. 2016), torchvision's blocks", input_shape=(3, 32, 32),
               fit=lambda shape: {"in_channels": _image_fit(shape)["in_channels"]})
def resnet18_cifar(in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 with the stem replaced by a 3x3 stride-1 convolution and no max-pool."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
