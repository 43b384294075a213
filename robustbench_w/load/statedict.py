"""State dicts as real checkpoints hold them: found under a wrapper's key, with a wrapper's key prefixes, and
fitted to an architecture (every parameter with its shape; buffers looser, with one-line notes).

Fitting (:func:`load_state`): every parameter must be there with its shape, and nothing else may be. Keys
that are buffers the architecture does not save (``embeddings.position_ids`` of older Hugging Face files: a
non-persistent buffer of the module, or any integer tensor, which cannot be a trained parameter) are ignored,
and buffers the architecture creates itself may be missing; both with a one-line note. ``strict=True``
(``--strict``) asks for exact keys.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path

import torch
from torch import nn

from ..errors import InputFileError, WrobustNote

# Keys under which a pickled checkpoint keeps a whole module (Lightning, timm, training scripts), in this order.
STATE_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "state_dict_ema", "ema",
              "weights", "params")
# Keys of a checkpoint that hold training state, never the model's weights.
NOT_MODEL = ("optim", "sched", "scaler")
# Prefixes that wrappers add to every key: DataParallel/DDP, Lightning, torch.compile, training scripts.
PREFIXES = ("module.", "model.", "_orig_mod.", "net.", "network.")


def find_module(obj: object) -> nn.Module | None:
    """A whole module in a (trusted) unpickled object: the object itself or under one of ``STATE_KEYS``."""
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        return next((obj[k] for k in STATE_KEYS if isinstance(obj.get(k), nn.Module)), None)
    return None


def extract_state_dict(obj: object, path: Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` mapping in ``obj``: ``obj`` itself, or the one tensor dict found under a key (at any
    key, nested up to three levels: ``model_state``, ``state_dict/model``), unwrapped with a note naming the key.
    Several such dicts (a model and its EMA copy) are an error that lists them, unless ``key`` (``--key``) names
    one; a key path is written with ``/``."""
    if _tensor_dict(obj) and key is None:
        return dict(obj)
    found = dict(_candidates(obj)) if isinstance(obj, Mapping) else {}
    if key is not None:
        if key not in found:
            there = ", ".join(found) or ("none: the file is a bare state dict" if _tensor_dict(obj) else "none")
            raise InputFileError(f"{path}: --key {key}: no state dict of tensors under that key (state dicts: "
                                 f"{there})")
        return found[key]
    if len(found) > 1:
        raise InputFileError(f"{path}: holds {len(found)} state dicts ({', '.join(found)}): choose one with --key "
                             f"(for example --key {next(iter(found))})")
    if found:
        (where, state), = found.items()
        others = [str(k) for k in obj if str(k) != where.split("/")[0]]
        also = f" (also in the file: {_some(others)})" if others else ""
        warnings.warn(f"{path}: took the state dict under key {where!r}{also}", WrobustNote, stacklevel=3)
        return state
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)} \
        if isinstance(obj, Mapping) else {}
    if tensors:
        return tensors
    what = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
    raise InputFileError(f"{path}: holds {what}, not a model or a state dict of tensors")


def _tensor_dict(obj: object) -> bool:
    """A non-empty mapping of string keys to tensors only: a state dict."""
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                           for k, v in obj.items())


def _candidates(obj: Mapping, prefix: str = "", depth: int = 0):
    """``(key path, state dict)`` for every tensor dict under ``obj``'s string keys, nested up to three levels;
    an optimizer's, scheduler's or gradient scaler's state is not a model's."""
    for key, value in obj.items():
        if not isinstance(key, str) or any(word in key.lower() for word in NOT_MODEL):
            continue
        where = f"{prefix}{key}"
        if _tensor_dict(value):
            yield where, dict(value)
        elif isinstance(value, Mapping) and depth < 2:
            yield from _candidates(value, where + "/", depth + 1)


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


def drop_keys(state: Mapping, globs: tuple[str, ...], name: str) -> dict:
    """``state`` without the keys matching any of ``globs`` (``--ignore-keys``), with a note; a glob that matches
    no key is an error (a typo would otherwise leave the keys in)."""
    if not globs:
        return dict(state)
    for glob in globs:
        if not any(fnmatchcase(k, glob) for k in state):
            raise InputFileError(f"{name}: ignore-keys {glob!r} matches no key (keys: {_some(list(state))})")
    dropped = [k for k in state if any(fnmatchcase(k, g) for g in globs)]
    warnings.warn(f"{name}: left out {len(dropped)} key(s) matching the ignored keys {', '.join(map(repr, globs))} "
                  f"({_some(dropped)})",
                  WrobustNote, stacklevel=3)
    return {k: v for k, v in state.items() if k not in dropped}


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
        extra = [k for k in unexpected if k not in ignored]
        leave = "" if not extra else f" (keys the architecture lacks, a training-only head perhaps, can be left " \
                                     f"out: --ignore-keys '{extra[0].split('.')[0]}.*')"
        raise InputFileError(f"{name}: the weights do not fit {what}; " + "; ".join(parts) + (hint if shaped else "")
                             + leave)
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
