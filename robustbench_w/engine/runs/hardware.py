"""The hardware side of a sweep: per-batch redraws (:mod:`..weights.redraw`) and converters
(:mod:`..passes.converters`), put around the clean pass and each point.

With ``--converters all`` (the default) the converters apply to the clean pass too: the clean row is then the
baseline of the model behind its converters, and what the points measure is the distortion on top of them;
with ``distorted-only`` they apply to the distorted points only (a point at its distortion's identity strength
is then evaluated, not taken from the clean pass).
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field

from torch import nn

from ...errors import InvalidValueError
from ..passes.converters import ConverterSpec, Converters
from ..passes.evaluate import Evaluator
from ..weights.perturb import WeightPatch
from ..weights.redraw import MODES, redrawing
from ..weights.seeding import derive_seed


@dataclass(frozen=True)
class Hardware:
    """``--redraw`` and the converters of one sweep."""

    redraw: str = "point"
    converters: ConverterSpec = field(default_factory=ConverterSpec)

    def __post_init__(self) -> None:
        if self.redraw not in MODES:
            raise InvalidValueError(f"redraw must be one of {', '.join(MODES)}, not {self.redraw!r}")

    def meta(self) -> dict:
        return {"redraw": self.redraw, "converters": self.converters.meta() if self.converters.active else None}


class HardwareRun:
    """The hardware of a sweep on one model: converters calibrated on the clean model, then attached per pass."""

    def __init__(self, hardware: Hardware, evaluator: Evaluator, targets: list[str], model: nn.Module, seed: int):
        self.hardware, self.evaluator, self.seed = hardware, evaluator, seed
        self.converters = None
        if hardware.converters.active:
            self.converters = Converters(hardware.converters, model, targets, evaluator.device)
            self.converters.calibrate(evaluator.batches, evaluator.model, evaluator.arithmetic)
            evaluator.batch_hooks.append(self.converters.on_batch)

    @property
    def changes_identity(self) -> bool:
        """Whether a point at its identity strength differs from the clean pass (converters on points only)."""
        return self.converters is not None and self.hardware.converters.apply == "distorted-only"

    def clean(self) -> AbstractContextManager:
        """Around the clean pass: the converters, unless they apply to the distorted points only."""
        if self.converters is None or self.changes_identity:
            return nullcontext()
        return self.converters.attached(self._seeds(self.seed, "none", math.nan, 0))

    def point(self, patch: WeightPatch, dist, strength: float, seed: int, trial: int) -> AbstractContextManager:
        """Around a point's pass (its draw already written): the per-batch redraws and the converters."""
        stack = ExitStack()
        if self.hardware.redraw == "batch" and dist.is_random_at(strength):
            stack.enter_context(redrawing(self.evaluator.batch_hooks, patch, dist, strength, seed, trial))
        if self.converters is not None:
            stack.enter_context(self.converters.attached(self._seeds(seed, dist.spec, strength, trial)))
        return stack

    def columns(self, dist, strength: float) -> dict:
        """``redraw`` of a row where the sweep redraws per batch: ``batch`` where it did, else ``point``."""
        if self.hardware.redraw != "batch":
            return {}
        return {"redraw": "batch" if dist.name != "none" and dist.is_random_at(strength) else "point"}

    @staticmethod
    def _seeds(seed: int, spec: str, strength: float, trial: int):
        def seeds(batch: int, layer: str) -> int:
            return derive_seed(seed, spec, float(strength), trial, "out-noise", batch, layer)
        return seeds
