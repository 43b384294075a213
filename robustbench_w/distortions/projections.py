"""Deterministic and stochastic projections of Merolla et al. 2016, plus ternarization and clipping.

Notation: ``a`` is the scale of the row (default ``max|w|``), ``u = w / a``. Every function sees a 2-D view
(one row per scale group) and returns a new tensor; most also have an in-place form (``_NAME_into``, registered
beside them) that writes the same bits into a given tensor, for the sweep engine. Used as training projections
(see ``paper/train.py``) the gradient is straight-through: ``dL/dw := dL/dP(w)``, as in BinaryConnect
(Courbariaux et al. 2015).
"""

from __future__ import annotations

import math

from ..registry import LazyModule
from ._random import uniform
from .base import Range
from .catalog import register_distortion
from .scratch import Scratch

torch = LazyModule("torch")  # imported at the first tensor operation, not at registration

MEROLLA = "Merolla et al. 2016, arXiv:1606.01981"


@register_distortion(
    "none", family="projection", formula="w", values="real", reference=MEROLLA,
)
def none(w: torch.Tensor, strength: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """No distortion: the weights as they are."""
    return w.clone()


def _sign_into(out: torch.Tensor, w: torch.Tensor, strength: float, a: torch.Tensor,
               generator: torch.Generator | None, scratch: Scratch) -> None:
    torch.where(torch.ge(w, 0, out=scratch.like(w, torch.bool)), a, -a, out=out)


@register_distortion(
    "sign", aliases=("binarize",), family="projection", formula="a * sign(w), sign(0) = +1",
    values="{-a, +a}", discrete=True, max_values=2,
    reference=f"{MEROLLA}; Courbariaux et al. 2015 (BinaryConnect), arXiv:1511.00363",
    inplace=_sign_into,
)
def sign(w: torch.Tensor, strength: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Binarization: ``a * sign(w)`` with zero mapped to ``+a``, so there are exactly two values."""
    return torch.where(w >= 0, a, -a).expand_as(w).clone()


def _round_into(out: torch.Tensor, w: torch.Tensor, strength: float, a: torch.Tensor,
                generator: torch.Generator | None, scratch: Scratch) -> None:
    torch.div(w, a, out=out).round_().clamp_(-1, 1).mul_(a)


@register_distortion(
    "round", family="projection", formula="a * clamp(round(w / a), -1, 1)", values="{-a, 0, +a}",
    discrete=True, max_values=3, reference=MEROLLA,
    inplace=_round_into,
)
def round_(w: torch.Tensor, strength: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Ternary rounding: ``a * round(w / a)``; with ``a = max|w|`` the quotient is already in [-1, 1],
    with other scale rules it is clamped there so the values stay ternary. Ties round half to even."""
    return a * torch.round(w / a).clamp_(-1, 1)


def _power_into(out: torch.Tensor, w: torch.Tensor, beta: float, a: torch.Tensor,
                generator: torch.Generator | None, scratch: Scratch) -> None:
    torch.abs(w, out=out).div_(a).pow_(beta).mul_(a).mul_(torch.sign(w, out=scratch.like(w)))


@register_distortion(
    "power", family="projection", formula="a * |w / a|^beta * sign(w)", values="[-a, a] (scale=max)",
    strength="beta", valid=Range(0.0), grid=(1.0, 0.75, 0.5, 0.25, 0.1, 0.05, 0.0), identity=1.0,
    discrete_when=lambda beta: beta == 0, max_values=lambda beta: 3 if beta == 0 else None, reference=MEROLLA,
    inplace=_power_into,
)
def power(w: torch.Tensor, beta: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The power projection family: identity at ``beta = 1``; ``beta -> 0`` approaches Sign
    (zero stays zero), and ``beta = 0`` is ternary ``{-a, 0, +a}`` (discrete: exact effective bits);
    ``beta > 1`` pushes small weights towards zero."""
    return a * (w.abs() / a).pow(beta) * torch.sign(w)


def _p_plus(w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Probability of ``+a``: ``p = (clamp(w / a, -1, 1) + 1) / 2``."""
    return (torch.clamp(w / a, -1.0, 1.0) + 1.0) / 2.0


def _plus_into(out: torch.Tensor, w: torch.Tensor, a: torch.Tensor, generator: torch.Generator | None,
               scratch: Scratch) -> torch.Tensor:
    """Draw uniforms into ``out`` and return the mask ``u < p`` (a scratch buffer), as ``stoch`` does."""
    out.uniform_(generator=generator)
    p = torch.div(w, a, out=scratch.like(w)).clamp_(-1.0, 1.0).add_(1.0).div_(2.0)
    return torch.lt(out, p, out=scratch.like(w, torch.bool))


def _stoch_into(out: torch.Tensor, w: torch.Tensor, strength: float, a: torch.Tensor,
                generator: torch.Generator | None, scratch: Scratch) -> None:
    torch.where(_plus_into(out, w, a, generator, scratch), a, -a, out=out)


@register_distortion(
    "stoch", family="projection", formula="+a with probability p = (w/a + 1)/2, else -a",
    values="{-a, +a}", random=True, discrete=True, max_values=2,
    reference=f"{MEROLLA}; Courbariaux et al. 2015 (stochastic BinaryConnect)",
    inplace=_stoch_into,
)
def stoch(w: torch.Tensor, strength: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Stochastic binarization; its expectation is ``w`` (for ``|w| <= a``)."""
    plus = uniform(w, generator) < _p_plus(w, a)
    return torch.where(plus, a, -a)


def _stochm_into(out: torch.Tensor, w: torch.Tensor, gamma: float, a: torch.Tensor,
                 generator: torch.Generator | None, scratch: Scratch) -> None:
    plus = _plus_into(out, w, a, generator, scratch)
    magnitude = out.uniform_(generator=generator).mul_(1.0 / gamma - gamma).add_(gamma)
    magnitude.mul_(torch.abs(w, out=scratch.like(w)))
    torch.where(plus, magnitude, torch.neg(magnitude, out=scratch.like(w)), out=out)


@register_distortion(
    "stochm", family="projection",
    formula="+|w|*U(g, 1/g) with probability p = (w/a + 1)/2, else -|w|*U(g, 1/g)",
    values="[-a/g, a/g] (scale=max)", strength="gamma", valid=Range(0.0, 1.0, low_open=True),
    grid=(1.0, 0.9, 0.75, 0.5, 0.25), random=True, reference=f"{MEROLLA} (the 7.64% CIFAR-10 rule)",
    inplace=_stochm_into,
)
def stochm(w: torch.Tensor, gamma: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The paper's stochastic projection rule ``StochM``: the sign is drawn as in ``stoch``, the magnitude is
    ``|w|`` times a multiplicative uniform factor in ``[g, 1/g]``.

    The only public transcription of the formula writes ``w * U`` rather than ``|w| * U``; with ``w`` a
    negative weight's expected sign would flip, so we adopt ``|w|`` (SPEC section 2).
    """
    plus = uniform(w, generator) < _p_plus(w, a)
    magnitude = w.abs() * uniform(w, generator, gamma, 1.0 / gamma)
    return torch.where(plus, magnitude, -magnitude)


def _ternarize_into(out: torch.Tensor, w: torch.Tensor, t: float, a: torch.Tensor,
                    generator: torch.Generator | None, scratch: Scratch) -> None:
    keep = torch.gt(torch.abs(w, out=scratch.like(w)), t * a, out=scratch.like(w, torch.bool))
    torch.sign(w, out=out).mul_(a).masked_fill_(keep.logical_not_(), 0.0)


@register_distortion(
    "ternarize", family="projection", formula="a * sign(w) if |w| > t*a else 0", values="{-a, 0, +a}",
    strength="t", valid=Range(0.0, 1.0), grid=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    discrete=True, max_values=3, reference="Li, Zhang, Liu 2016 (Ternary weight networks), arXiv:1605.04711",
    inplace=_ternarize_into,
)
def ternarize(w: torch.Tensor, t: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Ternarization with threshold ``t * a``: weights at most the threshold in magnitude become zero."""
    return torch.where(w.abs() > t * a, a * torch.sign(w), torch.zeros_like(w))


def _clip_into(out: torch.Tensor, w: torch.Tensor, c: float, a: torch.Tensor,
               generator: torch.Generator | None, scratch: Scratch) -> None:
    bound = c * a
    torch.maximum(torch.minimum(w, bound, out=out), -bound, out=out)


@register_distortion(
    "clip", family="projection", formula="clamp(w, -c*a, c*a)", values="[-c*a, c*a]",
    strength="c", valid=Range(0.0, math.inf), grid=(1.0, 0.75, 0.5, 0.25, 0.1), identity=math.inf,
    reference=MEROLLA,
    inplace=_clip_into,
)
def clip(w: torch.Tensor, c: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Clipping to ``+-c*a``; with ``scale=max`` any ``c >= 1`` changes nothing (identity at ``c = inf``)."""
    bound = c * a
    return torch.maximum(torch.minimum(w, bound), -bound)
