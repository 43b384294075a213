"""Uniform symmetric quantization (quantizer x granularity: ``granularity=channel`` gives per-channel scales)."""

from __future__ import annotations

from ..registry import LazyModule
from .base import Range
from .catalog import register_distortion
from .scratch import Scratch


def _quantize_into(out: torch.Tensor, w: torch.Tensor, bits: float, a: torch.Tensor,
                   generator: torch.Generator | None, scratch: Scratch) -> None:
    levels = 2 ** (int(bits) - 1) - 1
    torch.div(w, a, out=out).mul_(levels).round_().clamp_(-levels, levels).mul_(a).div_(levels)

torch = LazyModule("torch")  # imported at the first tensor operation, not at registration


@register_distortion(
    "quantize", family="quantize", formula="a * clamp(round(w/a * L), -L, L) / L, L = 2^(b-1) - 1",
    values="2^b - 1 levels in [-a, a]", strength="bits", valid=Range(2, 16, integer=True),
    grid=(8.0, 6.0, 5.0, 4.0, 3.0, 2.0), discrete=True, max_values=lambda b: 2 ** int(b) - 1,
    reference="Jacob et al. 2018 (integer-arithmetic-only inference), arXiv:1712.05877",
    inplace=_quantize_into,
)
def quantize(w: torch.Tensor, bits: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Symmetric uniform quantization to ``2^b - 1`` levels over ``[-a, a]`` (zero is a level);
    ``b = 2`` is ternary. Values beyond ``a`` (scale rules other than ``max``) saturate."""
    levels = 2 ** (int(bits) - 1) - 1
    return a * torch.clamp(torch.round(w / a * levels), -levels, levels) / levels
