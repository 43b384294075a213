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
- ``torchscript`` and ``export``: compiled programs that carry their graph (no ``--arch``): :mod:`.exported`.
  A TorchScript archive is a program, so it needs ``--trust-checkpoint``; an exported program does not,
  unless it holds pickled Python objects.
- ``pickle``: a whole pickled module (``torch.save(model)``). Unpickling runs code from the file, so it
  is refused unless the caller passes ``trust_checkpoint=True`` (``--trust-checkpoint``).

``builtin:NAME`` names a checkpoint shipped in the package (``robustbench_w/assets/NAME.pt``), and
``hf:DIR`` a local Hugging Face model folder (:mod:`.hf`, format ``hf``; needs ``transformers``). Every
failure is an :class:`InputFileError` (or another ``WrobustError``) whose one-line message names the file.

Fitting a state dict to its architecture (:func:`load_state`): every parameter must be there with its shape,
and nothing else may be. Buffers are looser, as real checkpoints need: keys that are buffers the architecture
does not save (``embeddings.position_ids`` of older Hugging Face files: a non-persistent buffer of the module,
or any integer tensor, which cannot be a trained parameter) are ignored, and buffers the architecture creates
itself may be missing; both with a one-line note. ``strict=True`` (``--strict``) asks for exact keys. A file
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
    WrobustNote,
    WrobustWarning,
    permission_denied,
)
from ..registry import close_matches
from .archspec import arch_input_shape, build, build_arch, current_folder_importable, module_input_shape
from .hf import is_hf_spec, read_hf_folder
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


# ------------------------------------------------------------------ recognising a file by its bytes

def sniff(path: Path) -> str:
    """The kind of checkpoint file, from its content: ``torch``, ``safetensors``, ``torchscript`` or ``export``."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except PermissionError:
        raise permission_denied(path, "cannot read the checkpoint") from None
    if not head:
        raise InputFileError(f"{path}: empty file, not a checkpoint")
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30):
        return "safetensors"  # an 8-byte little-endian header length, then the JSON header
    if head[:1] == b"\x80":  # a pickle: torch.save's legacy (before PyTorch 1.6) format
        return "torch"
    raise InputFileError(f"{path}: not a checkpoint wrobust can read (expected a PyTorch .pt/.pth/.bin, "
                         f"safetensors, TorchScript or torch.export .pt2 file)")


def _zip_kind(path: Path) -> str:
    try:
        if not _ends_with_directory(path):
            raise zipfile.BadZipFile("the archive's directory is not at its end")
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"{path}: truncated or corrupt checkpoint ({_first_line(exc)})") from exc
    tails = {name.split("/", 1)[-1] for name in names}
    if "archive_format" in tails or any(t.startswith("models/") and t.endswith(".json") for t in tails):
        return "export"
    if "constants.pkl" in tails and any(t.startswith("code/") for t in tails):
        return "torchscript"
    if "data.pkl" in tails:
        return "torch"
    raise InputFileError(f"{path}: a zip archive, but not a PyTorch checkpoint")


def _ends_with_directory(path: Path) -> bool:
    """Whether the file ends with a zip end-of-directory record (a truncated archive does not; without this
    check a cut ``.pt2`` would be read as the ``torch.save`` archive it embeds)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 22 - 65535))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    return at >= 0 and at + 22 + int.from_bytes(tail[at + 20:at + 22], "little") == len(tail)


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
                             f"{_first_line(exc)}") from exc


def read_trusted(path: Path) -> object:
    """``torch.load(weights_only=False)``: runs the file's pickled code. Only with ``--trust-checkpoint``. The
    classes it names are imported from the installed packages or the current folder (``models.py``)."""
    try:
        with current_folder_importable():
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # unpickling can raise anything the file's classes raise
        raise InputFileError(f"{path}: cannot unpickle it: {type(exc).__name__}: {_first_line(exc)} (the code that "
                             f"defined its classes must be importable, from the current folder or an installed "
                             f"package)") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@dataclass(frozen=True)
class LoadOptions:
    arch: str | None = None
    num_classes: int | None = None
    trust_checkpoint: bool = False
    strict: bool = False


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
    return from_state_dict(extract_state_dict(obj, path), path, name, opts, "state_dict")


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


# ------------------------------------------------------------------ state dicts

# Keys under which checkpoints keep the weights (Lightning, timm, training scripts), searched in this order.
STATE_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "state_dict_ema", "ema",
              "weights", "params")
# Prefixes that wrappers add to every key: DataParallel/DDP, Lightning, torch.compile, training scripts.
PREFIXES = ("module.", "model.", "_orig_mod.", "net.", "network.")


def find_module(obj: object) -> nn.Module | None:
    """A whole module in a (trusted) unpickled object: the object itself or under one of ``STATE_KEYS``."""
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        return next((obj[k] for k in STATE_KEYS if isinstance(obj.get(k), nn.Module)), None)
    return None


def extract_state_dict(obj: object, path: Path, depth: int = 0) -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` mapping in ``obj``: ``obj`` itself, or found under one of ``STATE_KEYS``."""
    if isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return tensors
        for key in STATE_KEYS:
            if isinstance(obj.get(key), Mapping) and depth < 3:
                found = extract_state_dict(obj[key], path, depth + 1)
                if found:
                    return found
        if tensors:
            return tensors
    if depth:
        return {}
    what = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
    raise InputFileError(f"{path}: holds {what}, not a model or a state dict of tensors")


def fit_prefixes(state: dict[str, torch.Tensor], own_keys) -> dict[str, torch.Tensor]:
    """``state`` with wrapper prefixes (``module.``, ``model.``, ...) removed where that fits the model's keys
    better: of all ways to strip up to three prefixes, the one matching most keys (the least stripping wins ties)."""
    own = set(own_keys)
    best, best_hits = state, len(own.intersection(state))
    frontier = [state]
    for _ in range(3):
        frontier = [{k[len(p):]: v for k, v in cand.items() if k.startswith(p)}
                    for cand in frontier for p in PREFIXES if any(k.startswith(p) for k in cand)]
        for cand in frontier:
            hits = len(own.intersection(cand))
            if hits > best_hits:
                best, best_hits = cand, hits
    return best


def load_state(module: nn.Module, state: Mapping, name: str, what: str = "the architecture", hint: str = "",
               strict: bool = False) -> list[str]:
    """``load_state_dict`` with a one-line report of the first missing, unexpected and mis-shaped keys.

    A missing BatchNorm ``num_batches_tracked`` counter (absent from old checkpoints) is never an error. Unless
    ``strict``, keys that are only buffers (see the module docstring) are ignored or kept with a note: the
    notes are returned (and shown once as a :class:`WrobustNote`)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shaped = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    buffers = {k for k, _ in module.named_buffers()}
    kept = [] if strict else [k for k in missing if k in buffers]
    ignored = [] if strict else [k for k in unexpected if k in buffers or not _trainable(state[k])]
    if shaped or len(kept) < len(missing) or len(ignored) < len(unexpected):  # a parameter does not fit: say all
        parts = [f"{len(keys)} {label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped)) if keys]
        raise InputFileError(f"{name}: the weights do not fit {what}; " + "; ".join(parts) + (hint if shaped else ""))
    module.load_state_dict({k: v for k, v in state.items() if k not in ignored}, strict=False)
    return _buffer_notes(name, ignored, kept)


def _trainable(value: object) -> bool:
    """Whether a state dict entry could be a trained parameter (integer and bool tensors cannot)."""
    return not isinstance(value, torch.Tensor) or value.is_floating_point() or value.is_complex()


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _buffer_notes(name: str, ignored: list[str], kept: list[str]) -> list[str]:
    """One note for the buffers that were ignored or kept, shown once as a :class:`WrobustNote`."""
    parts = [f"ignored {len(ignored)} buffer(s) the architecture does not load ({_some(ignored)})"] if ignored else []
    parts += [f"kept the architecture's own values of {len(kept)} buffer(s) the file lacks ({_some(kept)})"] if kept else []
    if not parts:
        return []
    note = f"{name}: " + "; ".join(parts) + " (--strict refuses this)"
    warnings.warn(note, WrobustNote, stacklevel=3)
    return [note]


def from_state_dict(state: dict[str, torch.Tensor], path: Path, name: str, opts: LoadOptions, kind: str) -> LoadedModel:
    """Build ``--arch`` and load ``state`` into it."""
    if not opts.arch:
        raise NeedsArchitecture(f"{path}: a plain state dict ({len(state)} tensors)", [
            "--arch NAME (built-in, a torchvision model name, package.module:callable or file.py:callable) and "
            "--num-classes N"], TensorsOnly(name, path, state, kind))
    module = build(opts.arch, opts.num_classes)
    hint = "" if opts.num_classes else f" (pass --num-classes N: --arch {opts.arch} was built with its default)"
    notes = load_state(module, fit_prefixes(state, module.state_dict()), str(path), f"--arch {opts.arch}", hint,
                       strict=opts.strict)
    return LoadedModel(module=module, name=name, arch=opts.arch, num_classes=opts.num_classes,
                       input_shape=arch_input_shape(opts.arch) or module_input_shape(module), format=kind,
                       notes=notes)


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
                             f"{_first_line(exc)}") from exc


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
               num_classes: int | None = None, trust_checkpoint: bool = False, strict: bool = False) -> LoadedModel:
    """Load a model spec (a path, ``builtin:NAME`` or ``hf:DIR``) into an eval-mode module on ``device``.

    ``arch`` and ``num_classes`` rebuild plain state dicts and safetensors files; ``trust_checkpoint``
    allows unpickling a whole pickled module (it runs code from the file); ``strict`` asks for exactly the
    architecture's keys (no buffer ignored or kept)."""
    if num_classes is not None and int(num_classes) < 1:
        raise InvalidValueError(f"--num-classes must be a positive number, not {num_classes}")
    if is_hf_spec(spec):
        return load_hf(str(spec), device)
    path = resolve_path(spec)
    opts = LoadOptions(arch, None if num_classes is None else int(num_classes), bool(trust_checkpoint), bool(strict))
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
