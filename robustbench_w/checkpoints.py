"""Load a checkpoint into an ``nn.Module`` in eval mode, safely.

wrobust's own format is a plain dict (loads with ``torch.load(weights_only=True)``)::

    {"format": "wrobust", "version": 1,
     "arch": "mlp", "arch_kwargs": {...},          # rebuilt with models.build_arch
     "state_dict": {...},
     "dataset": "digits", "num_classes": 10, "input_shape": [1, 8, 8],
     "normalization": {"divisor": 16.0, "mean": [...], "std": [...]},
     "train": {...}}                               # optional: how it was trained

``builtin:NAME`` names a checkpoint shipped in the package (``robustbench_w/assets/NAME.pt``).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .data import Normalization
from .errors import InputFileError, UnknownNameError
from .models import build_arch
from .registry import close_matches

FORMAT = "wrobust"
VERSION = 1
BUILTIN_PREFIX = "builtin:"


@dataclass
class LoadedModel:
    """A model ready to evaluate, with what its checkpoint says about it."""

    module: nn.Module
    name: str  # as the user named it (path or builtin:NAME)
    path: Path | None = None
    sha256: str | None = None
    arch: str | None = None
    dataset: str | None = None
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    normalization: Normalization | None = None
    extra: dict = field(default_factory=dict)  # training record and anything else the file holds


def builtin_names() -> list[str]:
    assets = resources.files("robustbench_w") / "assets"
    return sorted(p.name[:-3] for p in assets.iterdir() if p.name.endswith(".pt"))


def resolve_path(spec: str | Path) -> Path:
    """The file a model spec names; ``builtin:NAME`` resolves inside the package."""
    text = str(spec)
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX):]
        if name not in builtin_names():
            close = close_matches(name, builtin_names())
            hint = f"; did you mean {' or '.join('builtin:' + c for c in close)}?" if close else ""
            raise UnknownNameError(f"unknown built-in model {text!r}{hint} (available: {', '.join(builtin_names())})")
        return Path(str(resources.files("robustbench_w") / "assets" / f"{name}.pt"))
    path = Path(text).expanduser()
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, not a checkpoint file")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, arch_kwargs: dict, *, dataset: str | None = None,
                    num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
                    normalization: Normalization | None = None, train: dict | None = None) -> Path:
    """Write ``model`` in wrobust's own format (atomically: a failed write leaves no partial file)."""
    payload = {
        "format": FORMAT, "version": VERSION, "arch": arch, "arch_kwargs": dict(arch_kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "dataset": dataset, "num_classes": num_classes,
        "input_shape": list(input_shape) if input_shape else None,
        "normalization": normalization.to_dict() if normalization else None,
        "train": train or {},
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def is_wrobust_checkpoint(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def read_weights_only(path: Path) -> object:
    """``torch.load(weights_only=True)``, with corrupt files and unpicklable content turned into one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputFileError(
            f"{path}: holds Python objects beyond tensors (a whole pickled module?); loading it would run code "
            f"from the file: pass --trust-checkpoint if you trust it ({str(exc).splitlines()[0][:120]})"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, io.UnsupportedOperation) as exc:
        raise InputFileError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def from_wrobust(obj: dict, name: str, path: Path | None) -> LoadedModel:
    """Rebuild a module from wrobust's own format."""
    if obj.get("version", 0) > VERSION:
        raise InputFileError(f"{name}: written by a newer wrobust (format version {obj['version']}); please upgrade")
    module = build_arch(obj["arch"], **obj.get("arch_kwargs", {}))
    load_state(module, obj["state_dict"], name)
    norm = obj.get("normalization")
    shape = obj.get("input_shape")
    return LoadedModel(
        module=module, name=name, path=path, arch=obj["arch"], dataset=obj.get("dataset"),
        num_classes=obj.get("num_classes"), input_shape=tuple(shape) if shape else None,
        normalization=Normalization.from_dict(norm) if norm else None, extra={"train": obj.get("train", {})},
    )


def load_state(module: nn.Module, state: dict, name: str) -> None:
    """``load_state_dict`` with a one-line report of the first missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shaped:
        parts = [f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped)) if keys]
        raise InputFileError(f"{name}: the weights do not fit the architecture; " + "; ".join(parts))
    module.load_state_dict(state)


def load_model(spec: str | Path, device: str | torch.device = "cpu", **options) -> LoadedModel:
    """Load a model spec (a path or ``builtin:NAME``) into an eval-mode module on ``device``."""
    path = resolve_path(spec)
    obj = read_weights_only(path)
    if not is_wrobust_checkpoint(obj):
        raise InputFileError(f"{path}: not a wrobust checkpoint (other formats need --arch; see wrobust sweep --help)")
    loaded = from_wrobust(obj, str(spec), path)
    loaded.sha256 = file_sha256(path)
    loaded.module.to(device).eval()
    return loaded
