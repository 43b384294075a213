"""Load any checkpoint into an ``nn.Module`` in eval mode, safely, recognising its kind by content.

Kinds (``LoadedModel.format``), told apart by the file's bytes, never by its suffix:

- ``wrobust``: wrobust's own format, a plain dict (loads with ``torch.load(weights_only=True)``)::

      {"format": "wrobust", "version": 1,
       "arch": "mlp", "arch_kwargs": {...},          # rebuilt with archspec.build_arch
       "state_dict": {...},
       "dataset": "digits", "num_classes": 10, "input_shape": [1, 8, 8],
       "normalization": {"divisor": 16.0, "mean": [...], "std": [...]},
       "train": {...}}                               # optional: how it was trained

- ``state_dict``: a ``torch.save`` file (.pt, .pth, .bin) holding a state dict, bare or under a
  ``state_dict``/``model``/... key, with ``module.``/``model.``/``_orig_mod.`` prefixes fitted away;
  rebuilt with ``--arch NAME`` (and ``--num-classes N``): see :mod:`.archspec`.
- ``safetensors``: the same, from a safetensors file (needs the optional ``safetensors`` package).
- ``torchscript`` and ``export``: compiled programs that carry their graph (no ``--arch``): :mod:`.compiled`.
  A TorchScript archive is a program, so it needs ``--trust-checkpoint``; an exported program does not,
  unless it holds pickled Python objects.
- ``pickle``: a whole pickled module (``torch.save(model)``). Unpickling runs code from the file, so it
  is refused unless the caller passes ``trust_checkpoint=True`` (``--trust-checkpoint``).

``builtin:NAME`` names a checkpoint shipped in the package (``robustbench_w/assets/NAME.pt``), and
``hf:DIR`` a local Hugging Face model folder (:mod:`.hf`, format ``hf``; needs ``transformers``). Every
failure is an :class:`InputFileError` (or another ``WrobustError``) whose one-line message names the file.

The kind comes from :mod:`.sniff`; a state dict is found and fitted to its architecture by :mod:`.statedict`
(parameters exactly, buffers with one-line notes; ``strict=True``, ``--strict``, asks for exact keys). A file
that carries its own architecture (wrobust's format, a pickled module, a compiled program) ignores ``--arch``
and says so. A plain state dict without ``--arch`` raises :class:`NeedsArchitecture`, which carries the
tensors: effective bits need nothing else.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..datasets.base import Normalization
from ..errors import (
    InputFileError,
    InvalidValueError,
    MissingOptionsError,
    UnknownNameError,
    UntrustedCheckpointError,
    WrobustWarning,
    first_line,
)
from ..registry import close_matches
from .archspec import (
    arch_input_shape,
    build,
    build_arch,
    current_folder_importable,
    module_input_shape,
    takes_num_classes,
)
from .hf import is_hf_spec, read_hf_folder
from .sniff import sniff
from .statedict import drop_keys, extract_state_dict, find_module, fit_prefixes, load_state
from .writing import atomic_write_bytes

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
    format: str | None = None  # wrobust, state_dict, safetensors, torchscript, export, pickle or hf
    notes: list[str] = field(default_factory=list)  # what loading adjusted (buffers ignored or kept), said once
    tokenizer: object | None = None  # the tokenizer of an hf: folder (for text:FILE and jsonl:FILE)
    task: str | None = None  # what the checkpoint says the model is: "causal-lm", "other" (hf: folders); None: unknown
    resizable: bool = False  # built by --arch from a factory that takes num_classes (--num-classes changes it)


@dataclass
class TensorsOnly:
    """A plain state dict or safetensors file read without an architecture: its tensors, by key."""

    name: str
    path: Path
    tensors: dict[str, torch.Tensor]
    format: str
    sha256: str | None = None


class NeedsArchitecture(MissingOptionsError):
    """A plain state dict without ``--arch``: a model cannot be built, but the tensors were read (``.file``).
    Commands that need more (``--dataset``) add it to the same message (:meth:`MissingOptionsError.adding`)."""

    def __init__(self, subject: str, needs: list[str], file: TensorsOnly):
        super().__init__(subject, needs)
        self.file = file


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
    if not text.strip():
        raise InputFileError("an empty model path (give a checkpoint file, builtin:NAME or hf:DIR)")
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
    buffer = io.BytesIO()  # saved through a buffer, the archive's root name does not depend on the file name,
    torch.save(payload, buffer)  # so the same training gives the same bytes wherever it is written
    return atomic_write_bytes(path, buffer.getvalue())


# ------------------------------------------------------------------ torch.save files

def is_wrobust_checkpoint(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def read_weights_only(path: Path) -> object:
    """``torch.load(weights_only=True)``, with corrupt files and unpicklable content turned into one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise UntrustedCheckpointError(
            f"{path}: holds pickled Python objects beyond tensors{what}, a whole pickled module perhaps; loading it "
            f"would run code from the file: pass --trust-checkpoint to load it, only if you trust where it came from"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, io.UnsupportedOperation) as exc:
        raise InputFileError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): "
                             f"{first_line(exc)}") from exc


def read_trusted(path: Path) -> object:
    """``torch.load(weights_only=False)``: runs the file's pickled code. Only with ``--trust-checkpoint``. The
    classes it names are imported from the installed packages or the current folder (``models.py``)."""
    try:
        with current_folder_importable():
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # unpickling can raise anything the file's classes raise
        raise InputFileError(f"{path}: cannot unpickle it: {type(exc).__name__}: {first_line(exc)} (the code that "
                             f"defined its classes must be importable, from the current folder or an installed "
                             f"package)") from exc



@dataclass(frozen=True)
class LoadOptions:
    arch: str | None = None
    num_classes: int | None = None
    trust_checkpoint: bool = False
    strict: bool = False
    key: str | None = None  # --key: which of several state dicts in the file
    ignore_keys: tuple[str, ...] = ()  # --ignore-keys: globs of keys left out (a training-only head)


def _load_torch_file(path: Path, name: str, opts: LoadOptions) -> LoadedModel:
    try:
        obj = read_weights_only(path)
    except UntrustedCheckpointError:
        if not opts.trust_checkpoint:
            raise
        obj = read_trusted(path)
    if is_wrobust_checkpoint(obj):
        return from_wrobust(obj, name, path, opts.strict)
    module = find_module(obj)
    if module is not None:
        return LoadedModel(module=module, name=name, arch=type(module).__name__, format="pickle")
    return from_state_dict(extract_state_dict(obj, path, opts.key), path, name, opts, "state_dict")


def from_wrobust(obj: dict, name: str, path: Path | None, strict: bool = False) -> LoadedModel:
    """Rebuild a module from wrobust's own format."""
    if obj.get("version", 0) > VERSION:
        raise InputFileError(f"{name}: written by a newer wrobust (format version {obj['version']}); please upgrade")
    if not isinstance(obj.get("arch"), str) or not isinstance(obj.get("state_dict"), Mapping):
        raise InputFileError(f"{name}: a malformed wrobust checkpoint (no 'arch' or 'state_dict')")
    module = build_arch(obj["arch"], **obj.get("arch_kwargs", {}))
    notes = load_state(module, obj["state_dict"], name, strict=strict)
    norm = obj.get("normalization")
    shape = obj.get("input_shape")
    return LoadedModel(
        module=module, name=name, path=path, arch=obj["arch"], dataset=obj.get("dataset"),
        num_classes=obj.get("num_classes"), input_shape=tuple(shape) if shape else None,
        normalization=Normalization.from_dict(norm) if norm else None, extra={"train": obj.get("train", {})},
        format="wrobust", notes=notes,
    )


def from_state_dict(state: dict[str, torch.Tensor], path: Path, name: str, opts: LoadOptions, kind: str) -> LoadedModel:
    """Build ``--arch`` and load ``state`` into it."""
    if not opts.arch:
        raise NeedsArchitecture(f"{path}: a plain state dict ({len(state)} tensors)", [
            "--arch NAME (built-in, a torchvision model name, package.module:callable or file.py:callable) and "
            "--num-classes N"], TensorsOnly(name, path, state, kind))
    module = build(opts.arch, opts.num_classes)
    hint = "" if opts.num_classes else f" (pass --num-classes N: --arch {opts.arch} was built with its default)"
    fitted = drop_keys(fit_prefixes(state, module.state_dict()), opts.ignore_keys, str(path))
    notes = load_state(module, fitted, str(path), f"--arch {opts.arch}", hint, strict=opts.strict)
    return LoadedModel(module=module, name=name, arch=opts.arch, num_classes=opts.num_classes,
                       input_shape=arch_input_shape(opts.arch) or module_input_shape(module), format=kind,
                       notes=notes, resizable=takes_num_classes(opts.arch))


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (the ``safetensors`` package is imported only here)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise InputFileError(f"{path}: reading safetensors files needs the safetensors package: "
                             f"pip install 'robustbench_w[safetensors]'") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types on bad headers and short files
        raise InputFileError(f"{path}: not a readable safetensors file (truncated or corrupt?): "
                             f"{first_line(exc)}") from exc


def _load_safetensors(path: Path, name: str, opts: LoadOptions) -> LoadedModel:
    return from_state_dict(read_safetensors(path), path, name, opts, "safetensors")


def _load_torchscript(path: Path, name: str, opts: LoadOptions) -> LoadedModel:
    from .compiled import load_torchscript

    module = load_torchscript(path, opts.trust_checkpoint)
    return LoadedModel(module=module, name=name, num_classes=opts.num_classes, format="torchscript")


def _load_export(path: Path, name: str, opts: LoadOptions) -> LoadedModel:
    from .compiled import load_exported

    module, shape = load_exported(path, opts.trust_checkpoint)
    return LoadedModel(module=module, name=name, num_classes=opts.num_classes, input_shape=shape, format="export")


LOADERS = {"torch": _load_torch_file, "safetensors": _load_safetensors, "torchscript": _load_torchscript,
           "export": _load_export}


def load_model(spec: str | Path, device: str | torch.device = "cpu", *, arch: str | None = None,
               num_classes: int | None = None, trust_checkpoint: bool = False, strict: bool = False,
               key: str | None = None, ignore_keys: tuple[str, ...] | list[str] = ()) -> LoadedModel:
    """Load a model spec (a path, ``builtin:NAME`` or ``hf:DIR``) into an eval-mode module on ``device``.

    ``arch`` and ``num_classes`` rebuild plain state dicts and safetensors files; ``trust_checkpoint``
    allows unpickling a whole pickled module (it runs code from the file); ``strict`` asks for exactly the
    architecture's keys (no buffer ignored or kept); ``key`` chooses one of several state dicts in the file, and
    ``ignore_keys`` (globs) leaves keys of a plain state dict out."""
    if num_classes is not None and int(num_classes) < 1:
        raise InvalidValueError(f"--num-classes must be a positive number, not {num_classes}")
    if is_hf_spec(spec):
        return load_hf(str(spec), device)
    path = resolve_path(spec)
    opts = LoadOptions(arch, None if num_classes is None else int(num_classes), bool(trust_checkpoint), bool(strict),
                       key, tuple(ignore_keys))
    loaded = LOADERS[sniff(path)](path, str(spec), opts)
    loaded.path, loaded.sha256 = path, file_sha256(path)
    loaded.module.to(device).eval()
    if loaded.format not in ("state_dict", "safetensors"):
        _options_not_used(loaded, arch, opts.num_classes)
    return loaded


def _options_not_used(loaded: LoadedModel, arch: str | None, num_classes: int | None) -> None:
    """A file that carries its own architecture ignores ``--arch`` (and wrobust's own, ``--num-classes``):
    say so unless they agree with the file."""
    own = loaded.arch or loaded.format
    if arch and str(own).lower() != arch.lower():
        warnings.warn(f"--arch {arch} is not used: {loaded.name} carries its own architecture ({own})",
                      WrobustWarning, stacklevel=3)
    if num_classes is not None and loaded.format == "wrobust" and num_classes != loaded.num_classes:
        warnings.warn(f"--num-classes {num_classes} is not used: {loaded.name} has {loaded.num_classes} classes",
                      WrobustWarning, stacklevel=3)


def load_hf(spec: str, device: str | torch.device = "cpu") -> LoadedModel:
    """A Hugging Face model folder (``hf:DIR``) as a :class:`LoadedModel` (see :mod:`.hf`)."""
    hf = read_hf_folder(spec)
    hf.module.to(device).eval()
    return LoadedModel(module=hf.module, name=spec, path=hf.weights, sha256=file_sha256(hf.weights), arch=hf.arch,
                       format="hf", tokenizer=hf.tokenizer, task="causal-lm" if hf.causal else "other")
