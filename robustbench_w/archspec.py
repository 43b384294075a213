"""Resolve an architecture name to a factory: built-in, torchvision, or user code."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from torch import nn

from .errors import InputFileError, InvalidValueError, UnknownNameError


def resolve_arch(name: str) -> Callable[..., nn.Module]:
    """A factory for ``name``: built-in (``wrobust list archs``), torchvision model, or ``module:callable``."""
    from .models import ARCHS

    if ":" in name and not name.lower().startswith("builtin:"):
        return _user_callable(name)
    if name in ARCHS:
        return ARCHS.get(name).factory
    tv = _torchvision(name)
    if tv is not None:
        return tv
    ARCHS.get(name)  # raises UnknownNameError with close matches
    raise UnknownNameError(f"unknown architecture {name!r}")


def _torchvision(name: str) -> Callable[..., nn.Module] | None:
    from torchvision import models as tvm

    if name.lower() not in tvm.list_models(module=tvm):
        return None

    def build(**kwargs) -> nn.Module:
        return tvm.get_model(name.lower(), weights=None, **kwargs)

    return build


def _user_callable(spec: str) -> Callable[..., nn.Module]:
    """``package.module:callable`` or ``path/to/file.py:callable``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise InvalidValueError(f"--arch {spec!r}: expected NAME, package.module:callable or file.py:callable")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise InputFileError(f"{path}: no such file (from --arch {spec})")
        mod_name = f"_wrobust_user_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            raise InputFileError(f"{path}: failed to import: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise InvalidValueError(f"--arch {spec!r}: cannot import {target!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InvalidValueError(f"--arch {spec!r}: {target} has no callable {attr!r}")
    return fn
