"""Resolve an architecture name (``--arch``) to a factory, and build the module.

``NAME`` is, in this order: ``timm:NAME``, a timm architecture (``timm.create_model``, the optional extra
``[timm]``); a built-in architecture (``wrobust list archs``); any torchvision classification model
(``torchvision.models.get_model``); or user code, ``package.module:callable`` or
``path/to/file.py:callable``, a callable that returns the ``nn.Module`` (it gets ``num_classes=N`` when
``--num-classes`` is given); ``package.module`` is found in the current folder too, as ``python -m`` finds
it. timm and torchvision models are built without pretrained weights: the checkpoint supplies them. Naming
user code runs it, as importing it would: that is the user's explicit choice.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from ..errors import InputFileError, InvalidValueError, UnknownNameError, first_line, permission_denied
from ..registry import close_matches
from .architectures import ARCHS


def resolve_arch(name: str) -> Callable[..., nn.Module]:
    """A factory for ``name``: ``timm:NAME``, built-in, torchvision model, or ``module:callable`` / ``file.py:callable``."""
    if name.lower().startswith(TIMM_PREFIX):
        return _timm(name[len(TIMM_PREFIX):])
    if ":" in name:
        return _user_callable(name)
    if name in ARCHS:
        return ARCHS.get(name).factory
    tv = _torchvision(name)
    if tv is not None:
        return tv
    raise UnknownNameError(_unknown_message(name))


def takes_num_classes(name: str) -> bool:
    """Whether architecture ``name``'s factory takes ``num_classes`` (``--num-classes`` can change its outputs)."""
    return _accepts(resolve_arch(name), "num_classes")


def build(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Instantiate architecture ``name`` (``num_classes`` passed on when given); errors are one line."""
    factory = resolve_arch(name)
    if num_classes is not None:
        if not _accepts(factory, "num_classes"):
            raise InvalidValueError(f"--arch {name}: the factory takes no num_classes argument; leave out --num-classes")
        kwargs["num_classes"] = int(num_classes)
    try:
        module = factory(**kwargs)
    except Exception as exc:  # the factory is user or library code given the user's arguments
        raise InvalidValueError(f"--arch {name}: building the model failed: "
                                f"{type(exc).__name__}: {first_line(exc, '(no message)')}") from exc
    if not isinstance(module, nn.Module):
        raise InvalidValueError(f"--arch {name}: the factory returned a {type(module).__name__}, not an nn.Module")
    return module


def arch_input_shape(name: str) -> tuple[int, ...] | None:
    """The fixed input shape of a built-in architecture (without batch), else None."""
    return ARCHS.get(name).input_shape if ":" not in name and name in ARCHS else None


def module_input_shape(module: nn.Module) -> tuple[int, ...] | None:
    """The input shape (without batch) a module records, as timm models do in ``pretrained_cfg``."""
    shape = (getattr(module, "pretrained_cfg", None) or {}).get("input_size")
    return tuple(int(d) for d in shape) if isinstance(shape, (tuple, list)) and shape else None


TIMM_PREFIX = "timm:"


def _timm(name: str) -> Callable[..., nn.Module]:
    """A factory for the timm architecture ``name`` (no pretrained weights, nothing downloaded)."""
    try:
        import timm
    except ImportError:
        raise InvalidValueError("--arch timm:NAME needs the timm package: pip install 'robustbench_w[timm]'") from None
    if not name or not timm.is_model(name):
        close = close_matches(name.lower(), timm.list_models())
        hint = f"; did you mean {' or '.join(repr('timm:' + c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown timm architecture {name!r}{hint} (see timm.list_models())")

    def build_timm(**kwargs) -> nn.Module:
        return timm.create_model(name, pretrained=False, **kwargs)

    return build_timm


def _accepts(factory: Callable, param: str) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature (a C function): let the call decide
        return True
    return any(p.name == param or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)



def _torchvision_names() -> list[str]:
    from torchvision import models as tvm

    return tvm.list_models(module=tvm)


def _torchvision(name: str) -> Callable[..., nn.Module] | None:
    from torchvision import models as tvm

    key = name.lower()
    if key not in _torchvision_names():
        return None

    def build_torchvision(**kwargs) -> nn.Module:
        return tvm.get_model(key, weights=None, **kwargs)

    return build_torchvision


def _unknown_message(name: str) -> str:
    close = close_matches(name.lower(), [*ARCHS.names(), *_torchvision_names()])
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (f"unknown architecture {name!r}{hint} (built-in: {', '.join(ARCHS.names())}; or any torchvision "
            f"classification model; or package.module:callable or path/to/file.py:callable)")


def _user_callable(spec: str) -> Callable[..., nn.Module]:
    """``package.module:callable`` or ``path/to/file.py:callable``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise InvalidValueError(f"--arch {spec!r}: expected NAME, package.module:callable or file.py:callable")
    module = _import_file(Path(target).expanduser(), spec) if target.endswith(".py") else _import_module(target, spec)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InvalidValueError(f"--arch {spec!r}: {target} has no callable {attr!r}")
    return fn


def _import_module(target: str, spec: str):
    """Import ``package.module`` with the current folder on the import path, as ``python -m`` has it."""
    try:
        with current_folder_importable():
            return importlib.import_module(target)
    except ImportError as exc:
        raise InvalidValueError(f"--arch {spec!r}: cannot import {target!r} (from the current folder {Path.cwd()} "
                                f"or the installed packages): {exc}") from exc


@contextmanager
def current_folder_importable() -> Iterator[None]:
    """Within the block, modules in the current folder can be imported (``models.py`` as ``models``), as with
    ``python -m`` or an interactive ``python``; the console script ``wrobust`` does not put it on ``sys.path``.
    The current folder comes after the entries already there, so it never shadows an installed package."""
    cwd = os.getcwd()
    present = any(os.path.abspath(p or os.curdir) == cwd for p in sys.path)
    if not present:
        sys.path.append(cwd)
    try:
        yield
    finally:
        if not present and cwd in sys.path:
            sys.path.remove(cwd)


def _import_file(path: Path, spec: str):
    """Import a Python file as a module (its folder is on ``sys.path`` meanwhile, for its sibling imports)."""
    if not path.is_file():
        raise InputFileError(f"{path}: no such file (from --arch {spec})")
    resolved = path.resolve()
    mod_name = "_wrobust_arch_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    loader_spec = importlib.util.spec_from_file_location(mod_name, resolved)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module  # before running it, as an import does (dataclasses look it up)
    sys.path.insert(0, str(resolved.parent))
    try:
        loader_spec.loader.exec_module(module)
    except PermissionError:
        del sys.modules[mod_name]
        raise permission_denied(path, f"from --arch {spec}") from None
    except Exception as exc:
        del sys.modules[mod_name]
        raise InputFileError(f"{path}: failed to import: {type(exc).__name__}: {first_line(exc, '(no message)')}") from exc
    finally:
        sys.path.remove(str(resolved.parent))
    return module


def build_arch(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered architecture, or a torchvision model by name (checkpoints written by
    ``wrobust train --arch resnet18``); never user code (``module:callable``), which needs an explicit --arch."""
    if ":" not in name and name not in ARCHS:
        return resolve_arch(name)(**kwargs)  # torchvision, else UnknownNameError with close matches
    return ARCHS.get(name).factory(**kwargs)


def build_model(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Any architecture by name: a built-in one, else a torchvision classification model
    (``torchvision.models.get_model``), else user code as ``package.module:callable`` or
    ``path/to/file.py:callable``. ``num_classes`` is passed on when given."""
    extra = dict(kwargs)
    if num_classes is not None:
        extra["num_classes"] = num_classes
    return resolve_arch(name)(**extra)
