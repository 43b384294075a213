"""Additive and multiplicative weight noise (Merolla et al. 2016, and the Gaussian multiplicative law).

Noise law x scale rule: the standard deviation of additive noise is relative to the scale ``a`` of the row
(``scale=max`` by default, the paper's ``alpha_k``); multiplicative noise is relative to each weight.
Each law has an in-place form (``_NAME_into``, registered beside it) that draws straight into the
destination and combines there, with the same operations in the same order (so the same bits).
"""

from __future__ import annotations

from ..registry import LazyModule
from ._random import normal, uniform
from .base import Range
from .catalog import register_distortion
from .scratch import Scratch

torch = LazyModule("torch")  # imported at the first tensor operation, not at registration

MEROLLA = "Merolla et al. 2016, arXiv:1606.01981"
SIGMA_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def _addnorm_into(out: torch.Tensor, w: torch.Tensor, sigma: float, a: torch.Tensor,
                  generator: torch.Generator | None, scratch: Scratch) -> torch.Tensor:
    """Returns the norm of the noise added: ``||out - w||`` but for the rounding of the addition."""
    noise = out.normal_(generator=generator).mul_(sigma * a)
    change = torch.linalg.vector_norm(noise)
    noise.add_(w)
    return change


@register_distortion(
    "addnorm", aliases=("noise", "additive"), family="noise", formula="w + N(0, a*sigma)", values="real",
    strength="sigma", valid=Range(0.0), grid=SIGMA_GRID, identity=0.0, random=True, reference=MEROLLA,
    inplace=_addnorm_into,
)
def addnorm(w: torch.Tensor, sigma: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Additive Gaussian noise with standard deviation ``sigma * a``."""
    return w + (sigma * a) * normal(w, generator)


def _multunif_into(out: torch.Tensor, w: torch.Tensor, gamma: float, a: torch.Tensor,
                   generator: torch.Generator | None, scratch: Scratch) -> None:
    low, high = gamma, 1.0 / gamma
    out.uniform_(generator=generator).mul_(high - low).add_(low).mul_(w)


@register_distortion(
    "multunif", family="noise", formula="w * U(g, 1/g)", values="real", strength="gamma",
    valid=Range(0.0, 1.0, low_open=True), grid=(1.0, 0.8, 0.6, 0.4, 0.2, 0.1), identity=1.0, random=True,
    reference=MEROLLA,
    inplace=_multunif_into,
)
def multunif(w: torch.Tensor, gamma: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Multiplicative uniform noise: each weight times an independent ``U(g, 1/g)`` factor."""
    return w * uniform(w, generator, gamma, 1.0 / gamma)


def _multnorm_into(out: torch.Tensor, w: torch.Tensor, sigma: float, a: torch.Tensor,
                   generator: torch.Generator | None, scratch: Scratch) -> None:
    out.normal_(generator=generator).mul_(sigma).add_(1.0).mul_(w)


@register_distortion(
    "multnorm", aliases=("multiplicative",), family="noise", formula="w * (1 + N(0, sigma))", values="real",
    strength="sigma", valid=Range(0.0), grid=SIGMA_GRID, identity=0.0, random=True,
    reference="Joshi et al. 2020 (analog in-memory computing), Nat. Commun. 11:2473",
    inplace=_multnorm_into,
)
def multnorm(w: torch.Tensor, sigma: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Multiplicative Gaussian noise: each weight times an independent ``1 + N(0, sigma)`` factor."""
    return w * (1.0 + sigma * normal(w, generator))
