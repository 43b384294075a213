"""The device a command runs on, from what the user typed (``--device auto|cpu|cuda``)."""

from __future__ import annotations

import torch

from ..errors import InvalidValueError


def resolve_device(device: str | torch.device | None) -> torch.device:
    name = str(device or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidValueError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InvalidValueError(f"unknown device {name!r} (use auto, cpu or cuda)") from None
