"""Random draws shaped like a tensor, from an explicit generator."""

from __future__ import annotations

from ..registry import LazyModule

torch = LazyModule("torch")  # imported at the first tensor operation, not at registration



def uniform(like: torch.Tensor, generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return u if (low, high) == (0.0, 1.0) else low + (high - low) * u


def normal(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
