"""The device a command runs on, from what the user typed: ``--device auto|cpu|cuda|cuda:N|mps``.

``auto`` is the first CUDA GPU when there is one, else the CPU (Apple's ``mps`` only when asked for). A device
that does not exist here is an error a user can cause: one line, exit code 2.
"""

from __future__ import annotations

import re

import torch

from ..errors import InvalidValueError

NAMES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def resolve_device(device: str | torch.device | None) -> torch.device:
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device or "auto").strip().lower()
    if not NAMES.fullmatch(name):
        raise InvalidValueError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        return _cuda(name)
    if name == "mps" and not _mps_available():
        raise InvalidValueError("--device mps: Apple's MPS backend is not available here (use --device cpu or auto)")
    return torch.device(name)


def _cuda(name: str) -> torch.device:
    if not torch.cuda.is_available():
        raise InvalidValueError(f"--device {name}: no CUDA device is available here (use --device cpu or auto)")
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise InvalidValueError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
