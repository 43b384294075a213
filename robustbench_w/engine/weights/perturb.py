"""Distort the targeted tensors in place, and restore them.

One pristine copy of the targeted tensors is kept (never of the whole model). :meth:`WeightPatch.applied`
writes the distorted values into the live parameters and restores them on exit, even when an exception
passes through, so the model is always left as it was loaded.

The write path of one point runs at memory speed; per target tensor:

1. the patch's one generator per device is reseeded for this tensor (no new generator per point);
2. the distortion writes into the parameter itself (:meth:`Distortion.write`): its in-place form draws the
   random numbers straight into the parameter and combines them there with the pristine values, bit for bit
   what the pure function gives; a distortion without one (or a half-precision tensor) computes the pure
   result and copies it in;
3. the weight change ``||w' - w||`` is the norm of the difference formed in a reused scratch buffer (the size
   of the largest target, allocated once per sweep), not in a new tensor; an additive in-place form
   (``addnorm``) hands back the norm of the noise it added instead, which saves that pass and differs from
   the stored difference's norm only by the rounding of the addition (at most ``2^-24 ||w'||``, below the
   float32 norm's own error).

After the evaluation one copy from the pristine tensor restores each parameter. A point at a distortion's
identity strength writes nothing new (the parameters keep, or get back, their pristine values) and has
weight change 0.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ...distortions.base import Distortion, Writer, in_place_dtype
from ...distortions.scratch import Scratch
from .seeding import point_seeds, seed_spec


@dataclass
class Applied:
    """What one application did: the relative weight change ``||w' - w|| / ||w||``."""

    weight_change: float


class WeightPatch:
    """The targeted parameters of a model with their pristine values."""

    mode = "device"  # where the pristine copy lives (:mod:`.pristine`)

    def __init__(self, targets: list[tuple[str, torch.Tensor]]):
        self.targets = targets
        self.pristine = {name: p.detach().clone() for name, p in targets}
        self.scratch = Scratch()
        self._scales: dict[tuple[str, str, str], torch.Tensor] = {}
        self._prepared_for: dict[int, tuple[Distortion, list[Writer], str]] = {}
        self._generators = generators_of(targets)
        self._norms = {name: norm_of(p.detach()) for name, p in targets}
        self.norm = _total_norm(list(self._norms.values()))

    @property
    def clean_params(self) -> dict[str, torch.Tensor] | None:
        """The clean values by parameter name on the model's device (for a clean rerun), where they are kept."""
        return self.pristine

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.targets]

    @property
    def numel(self) -> int:
        return sum(p.numel() for _, p in self.targets)

    def _scale(self, dist: Distortion, name: str) -> torch.Tensor:
        key = (name, dist.scale, dist.granularity)
        if key not in self._scales:
            self._scales[key] = dist.scale_of(self.pristine[name])
        return self._scales[key]

    def _prepared(self, dist: Distortion) -> tuple[list[Writer], str]:
        """One writer per target for ``dist`` (views, scale and form chosen once per sweep) and its seed spec."""
        key = id(dist)
        if key not in self._prepared_for:  # the entry holds ``dist`` itself, so its id is not reused
            writers = [dist.writer(p, self.pristine[name], self._scale(dist, name)) for name, p in self.targets]
            self._prepared_for[key] = (dist, writers, seed_spec(dist))
        return self._prepared_for[key][1:]

    def _seeded(self, spec: str, dist: Distortion, strength: float, seed: int,
                trial: int) -> Iterator[torch.Generator | None]:
        """The generator of each target in turn, seeded for it (``None`` where the point draws nothing). One
        generator per device is reseeded for each tensor: use each before taking the next."""
        if not dist.is_random_at(strength):
            return iter([None] * len(self.targets))
        seeds = point_seeds(seed, spec, strength, trial, self.names)
        return (gen.manual_seed(s) for gen, s in zip(self._generators, seeds))

    def distorted(self, dist: Distortion, strength: float, seed: int, trial: int) -> Iterator[tuple[str, torch.Tensor]]:
        """The distorted value of each target, one new tensor at a time (nothing is written)."""
        gens = self._seeded(seed_spec(dist), dist, strength, seed, trial)
        for (name, _), gen in zip(self.targets, gens):
            yield name, dist(self.pristine[name], strength, gen, scale=self._scale(dist, name))

    def write(self, dist: Distortion, strength: float, seed: int = 0, trial: int = 0, measure: bool = True) -> float:
        """Write the distorted weights into the parameters; return the relative weight change (read from the
        device once: the norms of all tensors together), or NaN with ``measure=False`` (a per-batch redraw, whose
        row reports the change of batch 0: no norms, no read from the device)."""
        dist.check_strength(strength)
        if dist.is_identity(strength):
            self.restore()
            return 0.0
        writers, spec = self._prepared(dist)
        norms = []
        with torch.no_grad():
            for (name, p), gen, write in zip(self.targets, self._seeded(spec, dist, strength, seed, trial), writers):
                norm = write(strength, gen, self.scratch)
                if measure:
                    norms.append(norm if norm is not None else change_norm(p, self.pristine[name], self.scratch))
        return self._relative_change(norms) if measure else math.nan

    def _relative_change(self, norms: list[torch.Tensor]) -> float:
        """``||w' - w|| / ||w||`` over all targets, from each target's ``||w' - w||`` (one read from the device)."""
        change = _total_norm(norms)
        return change / self.norm if self.norm > 0 else change

    @contextmanager
    def applied(self, dist: Distortion, strength: float, seed: int = 0, trial: int = 0) -> Iterator[Applied]:
        """Write the distorted weights into the model for the duration of the block."""
        try:
            yield Applied(weight_change=self.write(dist, strength, seed, trial))
        finally:
            self.restore()

    def values_run(self) -> Iterator[torch.Tensor]:
        """The targeted tensors with the values the model runs with at the applied point (here: the parameters,
        distorted in place); one at a time, each used before the next is taken."""
        return (p for _, p in self.targets)

    def restore(self) -> None:
        with torch.no_grad():
            for name, p in self.targets:
                p.copy_(self.pristine[name])

    def subset(self, names: Iterable[str]) -> WeightPatch:
        """A patch of some of these targets (a per-layer sweep's unit) that shares their pristine copy, scales
        and seeding: nothing is copied, and a tensor gets the same values as in the whole-model patch. Its
        weight change is relative to the norm of its own tensors."""
        wanted = set(names)
        part = copy.copy(self)
        keep = [i for i, (n, _) in enumerate(self.targets) if n in wanted]
        part.targets = [self.targets[i] for i in keep]
        part._generators = [self._generators[i] for i in keep]
        part._prepared_for = {}  # writers are per target list
        part.norm = _total_norm([self._norms[n] for n, _ in part.targets])
        return part


def generators_of(targets: list[tuple[str, torch.Tensor]]) -> list[torch.Generator]:
    """One generator per target, shared by the targets on one device (each reseeded before use)."""
    by_device: dict[torch.device, torch.Generator] = {}
    for _, p in targets:
        by_device.setdefault(p.device, torch.Generator(device=p.device))
    return [by_device[p.device] for _, p in targets]


def norm_of(w: torch.Tensor) -> torch.Tensor:
    """``||w||`` (in float32 for a half-precision tensor)."""
    return torch.linalg.vector_norm(w, dtype=None if in_place_dtype(w.dtype) else torch.float32)


def change_norm(p: torch.Tensor, w: torch.Tensor, scratch: Scratch) -> torch.Tensor:
    """``||p - w||``, the difference formed in a scratch buffer; in float32 for a half-precision tensor (the
    difference of the values the model runs with, not rounded to their dtype)."""
    if in_place_dtype(w.dtype):
        return torch.linalg.vector_norm(torch.sub(p, w, out=scratch.like(w)))
    return torch.linalg.vector_norm(scratch.like(w, torch.float32).copy_(p).sub_(w))


def _total_norm(norms: list[torch.Tensor]) -> float:
    """The norm over several tensors from their norms (one read from the device; the sum in float64)."""
    if not norms:
        return 0.0
    device = norms[0].device
    together = torch.stack(norms if all(n.device == device for n in norms) else [n.to(device) for n in norms])
    return math.hypot(*together.tolist())
