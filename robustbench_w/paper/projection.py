"""Training rules of Merolla et al. 2016 (arXiv:1606.01981) and the switch between hidden weights and their
projection (BinaryConnect-style, Courbariaux et al. 2015, arXiv:1511.00363).

Rules: ``none`` (ordinary training, no clipping), ``clip`` (no projection, clipping only), or any registered
distortion spec (``sign``, ``round``, ``stoch``, ``power:beta=0.5``, ``stochm:gamma=0.5``, ...): the same
functions as the test-time registry. As a *training rule* the name ``clip`` means "no projection, clip the
hidden weights to [-C, C]"; the ``clip`` *distortion* (strength c) is not a training rule.

Scale: a projection uses ``a = C`` by default, the paper's setting (alpha = 1 on hidden weights clipped to
[-1, 1]); a spec that names its own scale (``sign:scale=max``) uses the registry's rule. :mod:`.train` runs
the steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..distortions import Distortion, get_distortion, parse_spec
from ..engine.weights.seeding import derive_seed
from ..errors import InvalidValueError

RULE_NONE, RULE_CLIP = "none", "clip"


@dataclass(frozen=True)
class TrainingRule:
    """A training rule: the projection ``P`` (None: none) and the clip bound ``C`` (None: no clipping)."""

    name: str
    projection: Distortion | None = None
    clip: float | None = None
    own_scale: bool = False  # True: the projection's own scale rule; False: a = C

    @property
    def scale(self) -> str:
        if self.projection is None:
            return "-"
        return self.projection.scale if self.own_scale else "clip"

    def project(self, w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``P(w)``, a new tensor (``w`` itself when the rule has no projection)."""
        if self.projection is None:
            return w
        scale = None if self.own_scale else torch.full((1, 1), float(self.clip), device=w.device)
        return self.projection(w, generator=generator, scale=scale)


def parse_rule(spec: str, clip: float = 1.0) -> TrainingRule:
    """The rule named by ``spec`` (``none``, ``clip`` or a distortion spec carrying its strength)."""
    if not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip > 0):
        raise InvalidValueError(f"--clip must be a positive number, not {clip}")
    name, opts = parse_spec(spec)
    if name in (RULE_NONE, RULE_CLIP):
        if opts:
            raise InvalidValueError(f"training rule {name!r} takes no options (the clip bound is --clip)")
        return TrainingRule(name, None, None if name == RULE_NONE else float(clip))
    dist = get_distortion(spec)
    dist.one_strength(f"--projection {spec}")
    info = dist.info
    if not info.parameterless and dist.fixed_strength is None:
        raise InvalidValueError(
            f"projection {info.name!r} needs its strength: --projection {info.name}:{info.strength}=VALUE "
            f"({info.strength} in {info.valid})")
    own = "scale" in opts
    label = dist.spec
    if own and "scale=" not in label:  # the default rule (max) is left out of the canonical spec: name it
        label += ("," if ":" in label else ":") + "scale=max"
    return TrainingRule(label, dist, float(clip), own_scale=own)


class Projector:
    """The targeted parameters of a model (holding the hidden weights) and the switch to their projections."""

    def __init__(self, targets: list[tuple[str, torch.Tensor]], rule: TrainingRule):
        self.targets = targets
        self.rule = rule
        self._hidden = [torch.empty_like(p) for _, p in targets] if rule.projection is not None else []

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.targets]

    @contextmanager
    def projected(self, generator: torch.Generator | None = None) -> Iterator[None]:
        """Inside the block the parameters hold ``P(w)``; on exit, also by an exception, they hold ``w`` again.

        Gradients computed inside are ``dL/dP(w)`` and stay in ``.grad``; an optimizer step taken after the
        block applies them to the hidden weights: the straight-through estimator.
        """
        saved = 0
        try:
            with torch.no_grad():
                for (_, p), hidden in zip(self.targets, self._hidden):
                    hidden.copy_(p)
                    saved += 1
                    p.copy_(self.rule.project(hidden, generator))
            yield
        finally:
            with torch.no_grad():
                for (_, p), hidden in zip(self.targets[:saved], self._hidden):
                    p.copy_(hidden)

    def clip_(self) -> None:
        """``w <- clamp(w, -C, C)`` (nothing for rule ``none``)."""
        if self.rule.clip is None:
            return
        with torch.no_grad():
            for _, p in self.targets:
                p.clamp_(-self.rule.clip, self.rule.clip)

    def init_uniform_(self, bound: float, seed: int) -> None:
        """Hidden weights ``~ U(-bound, bound)``, drawn on the CPU (the same values on every device)."""
        gen = torch.Generator().manual_seed(derive_seed(seed, "init-uniform"))
        with torch.no_grad():
            for _, p in self.targets:
                p.copy_(torch.empty(p.shape, dtype=p.dtype).uniform_(-bound, bound, generator=gen))
