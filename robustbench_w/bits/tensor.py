"""The effective bits of one weight tensor: the Shannon entropy of its code (SPEC section 2).

**The code.** A distortion writes each scale group (the whole tensor, or one output channel with
``granularity=channel``) as a code times the group's scale ``a``: ``a * sign(w)``, ``a * q / L``, ...
The code is what an entropy coder stores; the scales are side information. For a tensor whose groups
``g`` hold ``n_g`` values with frequencies ``p_{g,v}`` (NaN is never a value)::

    H = sum_g n_g * H_g / sum_g n_g,     H_g = -sum_v p_{g,v} * log2(p_{g,v})      bits per weight

(dividing a group by its scale does not change its entropy, so ``H_g`` is the entropy of the group's code),
and for a model the count-weighted mean over the targeted tensors. The scales are reported beside it as
``scale_bits``: one stored scale (of the tensor's storage width) per group, per weight. So ``sign`` is at
most 1 bit and ``quantize`` at ``b`` bits at most ``b`` bits in every granularity.

**Exact or on a grid.** A tensor is *exact* (its values are counted) when

- its distortion is discrete at this strength (``sign``, ``quantize``, ``power`` at ``beta = 0``, ...), or
- its values repeat: at most ``max_distinct`` distinct values (default 256) in every scale group, and on
  average each value used at least twice (``distinct <= weights / 2``), whatever the tensor's size.

Otherwise it is *continuous* (its values barely repeat): it has no finite entropy, so it is measured on the
stated grid: ``2^B`` levels (``B = resolution``) of equal width spanning ``mean +- 4 std`` of each scale
group (values beyond fall in the end levels), with the Miller-Madow bias correction
``+ (occupied levels - 1) / (2 n ln 2)`` (capped at ``B``). Neither the rule nor the grid depends on the
tensor's size: 1,000 and 1,000,000 weights drawn from one distribution get the same figure.

For additive Gaussian noise (``addnorm``) the capacity of a Gaussian channel,
``0.5 * log2(1 + var(w) / (sigma * a)^2)``, is offered as a separate, labelled estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..distortions import Distortion
from ..distortions.base import rows_of
from .counting import exact_counts, grid_counts, grid_entropy, group_entropy
from .defaults import DEFAULT_MAX_DISTINCT, DEFAULT_RESOLUTION

REPEAT = 2  # exact only when each value is used at least this often on average


@dataclass(frozen=True)
class TensorBits:
    """The code entropy of one tensor: ``bits`` per weight (count-weighted over its ``groups`` scale groups);
    ``weights`` counts the values (NaNs left out); ``distinct`` is the most values (occupied levels on a grid)
    in one group; ``resolution`` is None where the values were counted exactly, else the grid they were
    measured on."""

    weights: int
    distinct: int
    bits: float
    resolution: int | None = None
    groups: int = 1


def tensor_bits(w: torch.Tensor, resolution: int = DEFAULT_RESOLUTION, max_distinct: int = DEFAULT_MAX_DISTINCT,
                *, granularity: str = "tensor", exact: bool = False) -> TensorBits:
    """The code entropy of ``w`` per scale group (``granularity`` ``tensor`` or ``channel``), count-weighted:
    counted exactly when ``exact`` (a discrete distortion's output) or when its values repeat (see the module
    docstring), else measured on ``2^resolution`` levels."""
    rows = _rows(w, granularity)
    counted = exact_counts(rows, math.inf if exact else max_distinct)
    if counted is not None:
        h, n, k = group_entropy(*counted, rows.shape[0])
        if exact or int(k.sum()) * REPEAT <= int(n.sum()):
            return TensorBits(int(n.sum()), int(k.max()), _weighted(h, n), None, rows.shape[0])
    h, n, k = grid_entropy(grid_counts(rows, resolution), resolution)
    return TensorBits(int(n.sum()), int(k.max()), _weighted(h, n), resolution, rows.shape[0])


def _rows(w: torch.Tensor, granularity: str) -> torch.Tensor:
    """The scale groups of ``w`` as rows, in a dtype every kernel supports (half types widen exactly)."""
    x = rows_of(w.detach(), granularity)
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _weighted(h: torch.Tensor, n: torch.Tensor) -> float:
    total = float(n.sum())
    return float((h * n).sum()) / total if total else 0.0


def model_bits(layers: Iterable[TensorBits]) -> float:
    """The model figure: ``sum n_k H_k / sum n_k`` (total bits / total weights)."""
    layers = list(layers)
    total = sum(t.weights for t in layers)
    return sum(t.bits * t.weights for t in layers) / total if total else math.nan


def scale_bits(t: TensorBits, storage_bits: int) -> float:
    """Side information per weight: one stored scale of ``storage_bits`` per scale group."""
    return t.groups * storage_bits / t.weights if t.weights else math.nan


def sweep_bits(tensors: Iterable[torch.Tensor], dist: Distortion, strength: float) -> dict:
    """The sweep's columns at a point: ``eff_bits`` (code entropy, total bits / total weights) and
    ``scale_bits`` (the scales' side information per weight), where the distortion is discrete at this
    strength; nothing elsewhere (a continuous point's figure would measure the grid, not the weights)."""
    if not dist.is_discrete_at(strength):
        return {}
    figures, scales = [], 0
    for t in tensors:  # one at a time: a layer-at-a-time sweep restores each tensor when the next is taken
        figures.append(tensor_bits(t, granularity=dist.granularity, exact=True))
        scales += figures[-1].groups * t.element_size() * 8
    n = sum(f.weights for f in figures)
    return {"eff_bits": model_bits(figures), "scale_bits": scales / n if n else math.nan}


def gaussian_channel_bits(w: torch.Tensor, a: torch.Tensor, sigma: float) -> float:
    """Gaussian channel estimate ``0.5 * log2(1 + var(w) / (sigma * a)^2)`` per scale group (rows of ``a``),
    averaged over the groups; infinite at ``sigma = 0``. An estimate, not an entropy."""
    rows = w.detach().double().reshape(a.shape[0], -1)
    noise = (sigma * a.double().reshape(-1)) ** 2
    ratio = rows.var(dim=1, unbiased=False) / noise
    return float((0.5 * torch.log2(1 + ratio)).mean())


# Channel estimates by distortion name: (pristine tensor, its scale, strength) -> bits per weight.
CHANNEL_ESTIMATES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], float]] = {"addnorm": gaussian_channel_bits}
CHANNEL_COLUMN = "channel_estimate_bits"
