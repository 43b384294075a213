"""Distort the targeted tensors in place, and restore them.

One pristine copy of the targeted tensors is kept (never of the whole model). :meth:`WeightPatch.applied`
writes the distorted values into the live parameters and restores them on exit, even when an exception
passes through, so the model is always left as it was loaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..distortions import Distortion
from .seeding import point_generator


@dataclass
class Applied:
    """What one application did: the relative weight change ``||w' - w|| / ||w||`` (a 0-d tensor)."""

    weight_change: torch.Tensor


class WeightPatch:
    """The targeted parameters of a model with their pristine values."""

    def __init__(self, targets: list[tuple[str, torch.Tensor]]):
        self.targets = targets
        self.pristine = {name: p.detach().clone() for name, p in targets}
        self._scales: dict[tuple[str, str, str], torch.Tensor] = {}
        self.norm = math.sqrt(sum(float(w.double().square().sum()) for w in self.pristine.values()))

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

    def distorted(self, dist: Distortion, strength: float, seed: int, trial: int) -> Iterator[tuple[str, torch.Tensor]]:
        """The distorted value of each target, one tensor at a time (nothing is written). The seeds derive from
        the distortion's canonical spec without its strength (``noise:sigma=0.2`` and ``noise`` at 0.2 draw the
        same noise) and the strength itself."""
        key = dist.with_strength(None).spec
        for name, p in self.targets:
            w = self.pristine[name]
            gen = point_generator(seed, key, strength, trial, name, w.device) if dist.is_random_at(strength) else None
            yield name, dist(w, strength, gen, scale=self._scale(dist, name))

    @contextmanager
    def applied(self, dist: Distortion, strength: float, seed: int = 0, trial: int = 0) -> Iterator[Applied]:
        """Write the distorted weights into the model for the duration of the block."""
        params = dict(self.targets)
        squares = []
        try:
            with torch.no_grad():
                for name, new in self.distorted(dist, strength, seed, trial):
                    squares.append(torch.linalg.vector_norm(new - self.pristine[name]).double().square())
                    params[name].copy_(new)
            change = torch.stack([s.to(squares[0].device) for s in squares]).sum().sqrt()
            yield Applied(weight_change=change / self.norm if self.norm > 0 else change)
        finally:
            self.restore()

    def restore(self) -> None:
        with torch.no_grad():
            for name, p in self.targets:
                p.copy_(self.pristine[name])

