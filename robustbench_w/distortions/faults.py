"""Pruning and faults: magnitude pruning, DropConnect (random zeroing), stuck-at faults and random bit flips."""

from __future__ import annotations

from ..registry import LazyModule
from ._random import uniform
from .base import Option, Range
from .catalog import register_distortion
from .scratch import Scratch

torch = LazyModule("torch")  # imported at the first tensor operation, not at registration

FRACTION = Range(0.0, 1.0)

_SPARSE_BELOW = 1.0 / 64  # flip probabilities below this draw the flipped positions, not a mask per bit


@register_distortion(
    "prune", family="faults", formula="0 for the round(p*n) smallest |w| of each row, else w",
    values="w or 0", strength="p", valid=FRACTION, grid=(0.0, 0.25, 0.5, 0.75, 0.9, 0.95), identity=0.0,
    reference="Han et al. 2015 (magnitude pruning), arXiv:1506.02626",
)
def prune(w: torch.Tensor, p: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Magnitude pruning: zero the fraction ``p`` of smallest-magnitude weights of each scale group
    (the whole tensor, or each output channel with ``granularity=channel``)."""
    k = int(round(p * w.shape[1]))
    out = w.clone()
    if k > 0:
        idx = torch.topk(w.abs(), k, dim=1, largest=False, sorted=False).indices
        out.scatter_(1, idx, 0.0)
    return out


def _dropconnect_into(out: torch.Tensor, w: torch.Tensor, p: float, a: torch.Tensor,
                      generator: torch.Generator | None, scratch: Scratch) -> None:
    drop = torch.lt(out.uniform_(generator=generator), p, out=scratch.like(w, torch.bool))
    out.copy_(w).masked_fill_(drop, 0.0)


@register_distortion(
    "dropconnect", family="faults", formula="0 with probability p, else w", values="w or 0", strength="p",
    valid=FRACTION, grid=(0.0, 0.1, 0.2, 0.3, 0.5, 0.7), identity=0.0, random=True,
    reference="Wan et al. 2013 (DropConnect), ICML",
    inplace=_dropconnect_into,
)
def dropconnect(w: torch.Tensor, p: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random zeroing of each weight with probability ``p``, without rescaling (a stuck-at-zero fault model)."""
    return torch.where(uniform(w, generator) < p, torch.zeros_like(w), w)


@register_distortion(
    "stuckat", family="faults", formula="with probability p: 0 (zero), a sign(w) (max) or +-a at random (random); "
    "else w", values="w, 0 or +-a", strength="p", valid=FRACTION, grid=(0.0, 0.001, 0.01, 0.05, 0.1, 0.2),
    identity=0.0, random=True,
    reference="stuck-at faults of memory cells and crossbars (Chen et al. 2017, DATE; PyTorchFI, Mahmoud et al. 2020)",
    options=(Option("value", "zero", ("zero", "max", "random"), help="what a stuck weight reads"),),
)
def stuckat(w: torch.Tensor, p: float, a: torch.Tensor, generator: torch.Generator | None,
            value: str = "zero") -> torch.Tensor:
    """Each weight stuck with probability ``p`` (a mask drawn first): at 0 (``value=zero``, a stuck-off cell), at
    ``+a`` or ``-a`` with the weight's sign (``max``, a stuck-on cell; ``+a`` for a zero weight), or at ``+a`` or
    ``-a`` with equal odds (``random``, drawn after the mask)."""
    stuck = uniform(w, generator) < p
    if value == "zero":
        return w.masked_fill(stuck, 0.0)
    sign = w >= 0 if value == "max" else uniform(w, generator) < 0.5
    return torch.where(stuck, torch.where(sign, a, -a).to(w.dtype), w)


@register_distortion(
    "bitflip", family="faults", formula="flip each bit of the float representation with probability p",
    values="any float (NaN and Inf included)", strength="p", valid=FRACTION,
    grid=(0.0, 1e-6, 1e-5, 1e-4, 1e-3), identity=0.0, random=True, native_dtype=True,
    reference="Hong et al. 2019 (Terminal brain damage), arXiv:1906.01017",
)
def bitflip(w: torch.Tensor, p: float, a: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Independent random bit flips in the tensor's own floating-point format (32 bits for float32,
    16 for float16 and bfloat16, 64 for float64). Sign and exponent bits included, so a flip can make a
    weight huge, Inf or NaN: the sweep counts the inputs whose outputs are not finite as errors."""
    ints = w.contiguous().view(_int_of(w.dtype)).reshape(-1)
    nbits = ints.element_size() * 8
    masks = _sparse_masks if p < _SPARSE_BELOW else _dense_masks
    return (ints ^ masks(ints, nbits, p, generator)).view(w.dtype).reshape(w.shape)


def _bit_values(nbits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The value of each bit in a signed integer of ``nbits`` (the top bit is the negative one)."""
    values = [1 << b for b in range(nbits - 1)] + [-(1 << (nbits - 1))]
    return torch.tensor(values, dtype=dtype, device=device)


def _dense_masks(ints: torch.Tensor, nbits: int, p: float, generator: torch.Generator | None) -> torch.Tensor:
    mask = torch.zeros_like(ints)
    zero = torch.zeros((), dtype=ints.dtype, device=ints.device)
    for value in _bit_values(nbits, ints.dtype, ints.device):
        flip = torch.rand(ints.shape, generator=generator, device=ints.device) < p
        mask |= torch.where(flip, value, zero)
    return mask


def _sparse_masks(ints: torch.Tensor, nbits: int, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Draw how many bits flip (binomial), then which (a uniform subset of that size), then build masks."""
    total = ints.numel() * nbits
    count = torch.tensor(float(total), dtype=torch.float64)
    k = int(torch.binomial(count, torch.tensor(p, dtype=torch.float64), generator=_cpu(generator)).item())
    positions = _distinct_positions(total, k, generator, ints.device)
    values = _bit_values(nbits, torch.int64, ints.device)[positions % nbits]
    mask = torch.zeros(ints.numel(), dtype=torch.int64, device=ints.device)
    mask.scatter_add_(0, positions // nbits, values)
    return mask.to(ints.dtype)


def _distinct_positions(total: int, k: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``k`` distinct integers drawn uniformly from ``[0, total)`` (rejection of repeats keeps it uniform)."""
    chosen = torch.empty(0, dtype=torch.int64, device=device)
    while chosen.numel() < k:
        more = torch.randint(0, total, (k - chosen.numel(),), generator=generator, device=device)
        chosen = torch.unique(torch.cat([chosen, more]))
    return chosen


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    """torch.binomial samples on the CPU; reuse the generator there, or derive a CPU one from it."""
    if generator is None or generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item()))


def _int_of(dtype: torch.dtype) -> torch.dtype:
    """The integer type of a float type's width (its bits, to flip)."""
    return {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
            torch.float64: torch.int64}[dtype]
