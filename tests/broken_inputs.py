"""Files that a careless or unlucky user hands to wrobust, written by the tests themselves (issue 10).

Imported by ``test_bad_inputs.py``, ``test_health.py`` and ``test_state_dicts.py``: checkpoints with one NaN or
Inf weight, plain state dicts, a BERT-style model with buffers, user code that raises or warns, and a way
to make a file unreadable that works even for root (the tests patch ``open``).
"""

from __future__ import annotations

import _io
import builtins
import io
from pathlib import Path

import torch

from robustbench_w.load.checkpoints import resolve_path

BUILTIN = "builtin:digits-mlp"

# User code: ``--arch net.py:NAME``. ``digits`` fits the built-in model's state dict; ``bert`` is a BERT-style
# model with a non-persistent ``position_ids`` buffer (as newer Hugging Face models have) and a persistent
# ``token_type_ids`` buffer; ``boom`` raises in its forward pass; ``warns`` warns while it is built.
NET_PY = '''
import warnings

import torch
from torch import nn


def digits(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, num_classes))


class Boom(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        raise RuntimeError("boom")


def boom(num_classes=10):
    return Boom(num_classes)


def warns(num_classes=10):
    warnings.warn("this factory is deprecated", DeprecationWarning)
    warnings.warn("a library's own user warning", UserWarning)
    return digits(num_classes)


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(16, 8)
        self.LayerNorm = nn.LayerNorm(8)
        self.register_buffer("position_ids", torch.arange(4).unsqueeze(0), persistent=False)
        self.register_buffer("token_type_ids", torch.zeros(1, 4, dtype=torch.long))


class Bert(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.embeddings = Embeddings()
        self.proj = nn.Linear(64, 8)
        self.classifier = nn.Linear(8, num_classes)

    def forward(self, x):
        e = self.embeddings
        pos = e.word_embeddings(e.position_ids + e.token_type_ids).mean(1)
        return self.classifier(e.LayerNorm(self.proj(x.flatten(1)) + pos))


def bert(num_classes=10):
    torch.manual_seed(0)
    return Bert(num_classes)
'''


def write_net(folder: Path) -> Path:
    path = folder / "net.py"
    path.write_text(NET_PY)
    return path


def builtin_checkpoint() -> dict:
    return torch.load(resolve_path(BUILTIN), map_location="cpu", weights_only=True)


def write_nonfinite(path: Path, value: float, key: str = "1.weight") -> Path:
    """The built-in model with one weight set to ``value`` (NaN or Inf)."""
    ckpt = builtin_checkpoint()
    ckpt["state_dict"][key].view(-1)[7] = value
    torch.save(ckpt, path)
    return path


def write_state_dict(path: Path) -> Path:
    """The built-in model's weights as a plain state dict (``--arch net.py:digits`` fits it)."""
    torch.save(builtin_checkpoint()["state_dict"], path)
    return path


def write_safetensors(path: Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in builtin_checkpoint()["state_dict"].items()}
    save_file({**state, **(extra or {})}, str(path))
    return path


def bert_state(net: Path, extra: dict | None = None, drop: tuple[str, ...] = ()) -> dict:
    """The state dict of ``net.py:bert`` as an older Hugging Face file would hold it, edited."""
    from robustbench_w.load.archspec import build

    state = build(f"{net}:bert", 10).state_dict()
    return {**{k: v for k, v in state.items() if k not in drop}, **(extra or {})}


def policy_text(distortion: str = "noise", strength: float = 0.1, trials: int = 2, **limits: float) -> str:
    """A gate policy on digits with one requirement."""
    lines = ["[gate]", 'dataset = "digits"', f"trials = {trials}", "[[gate.require]]",
             f'distortion = "{distortion}"', f"strength = {strength}", *(f"{k} = {v}" for k, v in limits.items())]
    return "\n".join(lines) + "\n"


def write_tensors(path: Path, n: int = 16, classes: int = 10) -> Path:
    """A ``tensors:FILE`` dataset that fits the digits models: 8x8 greyscale, uint8."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 17, (n, 1, 8, 8), dtype=torch.uint8, generator=gen)
    torch.save({"x": x, "y": torch.arange(n) % classes, "num_classes": classes}, path)
    return path


def deny(monkeypatch, *paths: Path) -> None:
    """Opening any of ``paths`` raises ``PermissionError`` as an unreadable file does (also for root)."""
    denied = {str(Path(p).resolve()) for p in paths}

    def guard(real):
        def guarded(file, *args, **kwargs):
            if isinstance(file, (str, Path)) and str(Path(file).resolve()) in denied:
                raise PermissionError(13, "Permission denied", str(file))
            return real(file, *args, **kwargs)
        return guarded

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io, "open", guard(io.open))
    # how Python reads a source file it imports: binary, so modules imported meanwhile still load
    monkeypatch.setattr(_io, "open_code", guard(_io.open_code))
