"""The arithmetic of a pass: ``fp32`` (the default), ``tf32`` or ``bf16`` (``--precision``).

- ``fp32``: float32 everywhere. On a CUDA GPU this also turns off TensorFloat-32 in cuDNN convolutions (which
  PyTorch allows by default), so that fp32 means IEEE float32 on every layer.
- ``tf32``: float32 tensors, with matrix products and convolutions in TensorFloat-32 on CUDA GPUs that have
  it (Ampere and later; about 10 bits of mantissa in the products, float32 accumulation). On the CPU and on
  MPS there is no TF32: the math stays fp32 (the run's meta and report say so).
- ``bf16``: automatic mixed precision (``torch.autocast`` with bfloat16) around the model's forward pass: the
  weights stay float32 (distortions are written in float32), matrix products and convolutions run in
  bfloat16, and the outputs are read back as float32 before any metric (:mod:`.outputs`). It runs on CUDA and
  on the CPU.

The settings apply only inside :func:`precision_context` (one pass) and are restored on the way out, even
when an exception passes through. PyTorch's legacy ``allow_tf32`` flags are used because they are what
``torch.compile``'s kernels read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from ...errors import InvalidValueError
from ..defaults import DEFAULT_PRECISION, PRECISIONS


def check_precision(name: str | None) -> str:
    """The precision's canonical name; an unknown one is a usage error."""
    text = str(name or DEFAULT_PRECISION).strip().lower()
    if text not in PRECISIONS:
        raise InvalidValueError(f"--precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    return text


def effective_precision(name: str, device: torch.device) -> str:
    """What a pass really computes in: ``tf32`` is fp32 on a device without TensorFloat-32 (CPU, MPS)."""
    return "fp32" if name == "tf32" and device.type != "cuda" else name


def precision_note(name: str, device: torch.device) -> str | None:
    """One line for the meta when the precision asked for is not what runs (``tf32`` on the CPU)."""
    if effective_precision(name, device) != name:
        return f"--precision {name} has no effect on {device.type}: the math is fp32"
    return None


def precision_context(name: str, device: torch.device) -> AbstractContextManager:
    """The arithmetic of ``name`` on ``device`` for the duration of the block (see the module docstring); off a
    CUDA device nothing is switched but for ``bf16`` (no TF32 flags there), so the block costs nothing."""
    if device.type != "cuda" and name != "bf16":
        return nullcontext()
    return _switched(name, device)


@contextmanager
def _switched(name: str, device: torch.device) -> Iterator[None]:
    with _tf32(name == "tf32") if device.type == "cuda" else nullcontext():
        with torch.autocast(device.type, dtype=torch.bfloat16) if name == "bf16" else nullcontext():
            yield


@contextmanager
def _tf32(allowed: bool) -> Iterator[None]:
    """TensorFloat-32 in cuBLAS matrix products and cuDNN convolutions on or off; the old flags restored."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32, cudnn.allow_tf32 = allowed, allowed
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before
