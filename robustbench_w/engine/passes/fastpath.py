"""The fast paths of a pass, chosen once per sweep: precision, channels-last layout, ``torch.compile``.

- ``precision`` (``--precision fp32|tf32|bf16``): :mod:`.precision`.
- ``channels_last`` (``--channels-last``): a convolutional model's parameters and buffers are converted to
  channels-last layout (in place, once, before the pristine copy of the distorted tensors is taken) and image
  batches are kept in it (:mod:`.batches`). It is what GPU convolutions in bf16/tf32 are fastest with; on a
  model without 2-D convolutions it changes nothing, and a warning says so. The model is left in that layout.
- ``compile`` (``--compile``): the forward pass is ``torch.compile``d once per sweep (a graph per batch
  shape: the full batches, and the last one when it is smaller; compiling takes seconds to minutes, so it
  pays off for long sweeps). Distorted weights are written into the parameters in place, which the compiled
  graph reads at every call: it stays valid from point to point and is never recompiled for a point. The
  clean model's rerun (fidelity metrics whose references do not fit) uses the eager model. ``True`` means
  the default backend (inductor); a backend name or callable may be given from Python.

The random draws of a point are made on the device of the parameters (:mod:`.seeding`, :mod:`.perturb`):
on a GPU, no random number crosses the bus.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import EnvironmentProblem, InvalidValueError, WrobustWarning
from .precision import check_precision, effective_precision, precision_note

Compile = bool | str | Callable


@dataclass(frozen=True)
class FastPath:
    """How passes run: the precision, channels-last layout, compilation (see the module docstring)."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: Compile = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", check_precision(self.precision))
        if not (isinstance(self.compile, (bool, str)) or callable(self.compile)):
            raise InvalidValueError(f"compile must be True, False, a backend name or a callable, not {self.compile!r}")

    @property
    def compiled(self) -> bool:
        return self.compile is not False and self.compile != ""

    @property
    def backend(self) -> str | Callable:
        return "inductor" if self.compile is True else self.compile

    def meta(self, device: torch.device) -> dict:
        """What the run's meta records: asked-for and effective precision, layout, compilation."""
        backend = self.backend if isinstance(self.backend, str) else getattr(self.backend, "__name__", "custom")
        return {"precision": self.precision, "precision_effective": effective_precision(self.precision, device),
                "channels_last": self.channels_last, "compile": backend if self.compiled else None}

    def notes(self, device: torch.device) -> list[str]:
        note = precision_note(self.precision, device)
        return [note] if note else []


def is_convolutional(module: nn.Module) -> bool:
    """Whether ``module`` has a 2-D convolution (a 4-D weight), the layers channels-last layout speeds up."""
    return any(isinstance(m, nn.modules.conv._ConvNd) and m.weight.dim() == 4 for m in module.modules())


def to_channels_last(module: nn.Module, name: str) -> bool:
    """Convert a convolutional ``module`` to channels-last layout in place; warn (and do nothing) otherwise.
    Returns whether it was converted."""
    if not is_convolutional(module):
        warnings.warn(f"--channels-last: {name} has no 2-D convolutions; the layout is left as it is",
                      WrobustWarning, stacklevel=3)
        return False
    module.to(memory_format=torch.channels_last)
    return True


def forward_of(module: nn.Module, fast: FastPath, device: torch.device | None = None) -> Callable:
    """What a pass calls: the module itself, or its compiled form (compiled lazily, at its first call)."""
    if not fast.compiled:
        return module
    if fast.backend == "inductor" and (device is None or device.type == "cpu"):
        check_compiler()
    return torch.compile(module, backend=fast.backend)


def check_compiler() -> None:
    """inductor on the CPU builds C++: without a compiler torch fails at the first pass with a page of text. Say it
    in one line, before any work (the compilers torch looks for: ``torch._inductor.config.cpp.cxx``, $CXX)."""
    import shutil

    try:
        from torch._inductor import config

        search = [c for c in config.cpp.cxx if c] if isinstance(config.cpp.cxx, (list, tuple)) else [config.cpp.cxx]
    except (ImportError, AttributeError):
        search = ["g++"]
    if not any(c and shutil.which(c) for c in search):
        raise EnvironmentProblem(f"--compile: torch.compile (inductor) on the CPU needs a C++ compiler, and none "
                                 f"was found ({', '.join(map(str, search)) or 'g++'} on PATH, or $CXX): install one "
                                 "(apt-get install g++) or drop --compile")
