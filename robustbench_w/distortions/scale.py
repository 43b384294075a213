"""Scale rules: the per-layer (or per-channel) ``alpha`` that distortions are relative to.

``max`` is the paper's choice (each layer normalised into [-1, 1] by ``max|w|``); ``mean`` is mean ``|w|``
and ``std`` the standard deviation. A zero ``mean`` or ``std`` scale (a single weight, all weights equal)
falls back to ``max|w|``, and a zero ``max`` (an all-zero tensor or channel) to 1, so that no distortion
divides by zero.
"""

from __future__ import annotations

from ..registry import LazyModule

torch = LazyModule("torch")  # imported at the first tensor operation, not at registration


SCALE_RULES = ("max", "mean", "std")
GRANULARITIES = ("tensor", "channel")


def scale_of(rows: torch.Tensor, rule: str) -> torch.Tensor:
    """Scale of each row of a 2-D tensor, shape ``(rows, 1)``, in float32 or float64."""
    x = rows if rows.dtype == torch.float64 else rows.float()
    if rule == "max":
        a = x.abs().amax(dim=1, keepdim=True)
    elif rule == "mean":
        a = x.abs().mean(dim=1, keepdim=True)
    elif rule == "std":
        a = x.std(dim=1, keepdim=True, unbiased=False)
    else:
        raise ValueError(f"unknown scale rule {rule!r}")
    a = a.nan_to_num(0.0)
    if rule != "max":  # a degenerate scale (one weight, all equal) falls back to max|w|
        a = torch.where(a > 0, a, x.abs().amax(dim=1, keepdim=True).nan_to_num(0.0))
    return torch.where(a > 0, a, torch.ones_like(a))
