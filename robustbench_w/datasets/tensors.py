"""``tensors:FILE``: an evaluation set saved with ``torch.save``, loaded with ``weights_only=True``.

The file holds a dict ``{"x": inputs, "y": labels}`` (``y`` may be left out), or a tuple ``(x, y)`` /
``(x,)``. ``x`` is ``(N, ...)`` (float or uint8), or a dict of named input tensors (``input_ids``,
``attention_mask``, ...; any dtype), passed to the model as keyword arguments. A dict without ``x`` holds
the named inputs directly: every tensor entry but the labels (``y``, ``labels`` or ``label``) is one.
``y`` is a 1-D integer tensor of length N (classes) or a float tensor ``(N, ...)`` (regression targets).
Optional dict keys: ``num_classes`` (then the model's outputs are checked against it exactly; without it
only that every label is an output index), and ``normalization`` (``{"divisor", "mean", "std"}``). Without
one, uint8 inputs are divided by 255 and float inputs are taken as they are (model inputs); named inputs are
never normalised. The file is the whole set: every ``--split`` reads it.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import InputFileError, permission_denied
from .base import EvalSet, Inputs, Normalization, register_dataset

LABEL_KEYS = ("y", "labels", "label")
OPTION_KEYS = ("num_classes", "normalization")


@register_dataset("tensors", "a .pt file of inputs and labels: {'x': ..., 'y': ...}, (x, y), or named inputs "
                  "{'input_ids': ..., 'attention_mask': ..., 'y': ...}; optional 'num_classes' and "
                  "'normalization'", argument="FILE")
def load_tensors(split: str = "test", source: str = "", **_: object) -> EvalSet:
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputFileError(f"{path}: no such file (tensors:FILE needs a .pt file saved with torch.save)")
    x, y, extra = unpack(read(path), path)
    check(x, y, path)
    norm = extra.get("normalization")
    normalization = Normalization.from_dict(norm) if isinstance(norm, dict) else default_normalization(x)
    kind = "named" if isinstance(x, dict) else "uint8" if x.dtype == torch.uint8 else "float"
    where = "the tensors file" if isinstance(norm, dict) else f"the default for {kind} inputs"
    num_classes = int(extra["num_classes"]) if extra.get("num_classes") is not None else None
    if y is not None and not y.is_floating_point():
        y = y.long()
    return EvalSet(f"tensors:{source}", x, y, num_classes, normalization, split, where)


def read(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise permission_denied(path, "cannot read the tensors:FILE dataset") from None
    except pickle.UnpicklingError as exc:
        raise InputFileError(f"{path}: holds Python objects beyond tensors; save plain tensors "
                             f"(a dict of x and y)") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, io.UnsupportedOperation) as exc:
        raise InputFileError(f"{path}: not a readable torch.save file (truncated or corrupt?)") from exc


def unpack(obj: object, path: Path) -> tuple[Inputs, torch.Tensor | None, dict]:
    """``(x, y, the other dict entries)`` from a dict (with ``x``, or of named inputs) or a tuple."""
    if isinstance(obj, dict) and "x" in obj:
        return obj["x"], obj.get("y"), obj
    if isinstance(obj, dict):
        named = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and k not in LABEL_KEYS}
        if named and all(isinstance(k, str) for k in named) and set(obj) <= {*named, *LABEL_KEYS, *OPTION_KEYS}:
            return named, next((obj[k] for k in LABEL_KEYS if k in obj), None), obj
    if isinstance(obj, (tuple, list)) and 1 <= len(obj) <= 2:
        return obj[0], (obj[1] if len(obj) == 2 else None), {}
    found = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
    raise InputFileError(f"{path}: expected a dict with 'x' and 'y', a dict of named input tensors, or a tuple "
                         f"(x, y); found {found}")


def check(x: object, y: object, path: Path) -> None:
    n = check_named(x, path) if isinstance(x, dict) else check_tensor(x, path)
    if y is None:
        return
    if not isinstance(y, torch.Tensor) or y.dim() < 1 or len(y) != n or y.is_complex() or y.dtype == torch.bool:
        raise InputFileError(f"{path}: 'y' must be a tensor of length {n}: integer classes (N,) or float targets "
                             f"(N, ...), not {_describe(y)}")
    if not y.is_floating_point() and y.dim() != 1:
        raise InputFileError(f"{path}: integer labels 'y' must be 1-D (N,), not {_describe(y)}")
    if not y.is_floating_point() and len(y) and int(y.min()) < 0:
        raise InputFileError(f"{path}: 'y' holds negative labels")


def check_tensor(x: object, path: Path) -> int:
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or len(x) == 0:
        raise InputFileError(f"{path}: 'x' must be a tensor of shape (N, ...) with N >= 1, not {_describe(x)}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise InputFileError(f"{path}: 'x' must be float or uint8, not {x.dtype}")
    return len(x)


def check_named(x: dict, path: Path) -> int:
    """Named inputs: tensors ``(N, ...)`` with one N >= 1."""
    for k, v in x.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor) or v.dim() < 1:
            raise InputFileError(f"{path}: named input {k!r} must be a tensor of shape (N, ...), not {_describe(v)}")
    sizes = {k: int(v.shape[0]) for k, v in x.items()}
    if not sizes or len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise InputFileError(f"{path}: the named inputs must share one first dimension N >= 1, not {sizes}")
    return next(iter(sizes.values()))


def _describe(t: object) -> str:
    return f"{t.dtype} of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__


def default_normalization(x: Inputs) -> Normalization:
    """uint8 images are divided by 255; float inputs and named inputs are used as they are."""
    return Normalization(divisor=255.0) if isinstance(x, torch.Tensor) and x.dtype == torch.uint8 else Normalization()
