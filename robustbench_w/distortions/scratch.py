"""Reusable work buffers for the in-place forms of distortions.

An in-place form writes a distorted tensor straight into its destination (the live parameter during a
sweep); where its arithmetic needs room for an intermediate (a mask, a probability), it takes it from a
:class:`Scratch`: one flat buffer per (slot, dtype, device), grown to the largest tensor asked for and then
reused, so a sweep allocates nothing per point and holds at most a few tensors' worth of extra memory (the
largest target's size per buffer), never a copy of the model.
"""

from __future__ import annotations

from ..registry import LazyModule

torch = LazyModule("torch")  # imported at the first buffer, not at registration


class Scratch:
    """Flat work buffers, handed out as views shaped like the tensor they work on."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def like(self, t: torch.Tensor, dtype: torch.dtype | None = None, slot: int = 0) -> torch.Tensor:
        """A buffer of ``t``'s shape and device (and ``dtype``, default ``t``'s); its contents are undefined.

        Two calls with the same ``slot`` and dtype share memory: an in-place form that needs two
        buffers of one dtype at once asks for two slots.
        """
        dtype = t.dtype if dtype is None else dtype
        key = (slot, dtype, t.device)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < t.numel():
            self._buffers.pop(key, None)  # free the smaller buffer before allocating the larger one
            buf = self._buffers[key] = torch.empty(t.numel(), dtype=dtype, device=t.device)
        return buf[: t.numel()].view(t.shape)

    @property
    def nbytes(self) -> int:
        """Bytes held by all buffers."""
        return sum(b.numel() * b.element_size() for b in self._buffers.values())
