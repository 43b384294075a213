"""``synthetic``: seeded random inputs of the model's input shape, without labels.

Only ``agreement`` (with the clean model's predictions) is measured on them: it needs no labels, so a
model can be swept without any data. The inputs are drawn so that, after the normalisation the model
expects (the checkpoint's, if it records one), each value is standard normal: what standardised images
look like to a network. The shape comes from ``--input-shape C,H,W`` or from the checkpoint; the number of
inputs is ``--limit`` (default 1,024); the draw depends only on the run seed and the split.
"""

from __future__ import annotations

import torch

from ..errors import InvalidValueError, MissingValueError
from .base import EvalSet, Normalization, register_dataset

DEFAULT_SIZE = 1024


@register_dataset("synthetic", "seeded random inputs of the model's input shape (--input-shape C,H,W "
                  "unless the checkpoint records it), no labels: agreement only")
def load_synthetic(split: str = "test", input_shape: tuple[int, ...] | None = None, limit: int | None = None,
                   seed: int = 0, model_normalization: Normalization | None = None, **_: object) -> EvalSet:
    if not input_shape:
        raise MissingValueError("dataset synthetic needs the model's input shape", "input_shape",
                                ["--input-shape (for example 3,32,32)"], "the checkpoint does not record it")
    shape = tuple(int(d) for d in input_shape)
    if any(d < 1 for d in shape):
        raise InvalidValueError(f"--input-shape must be positive sizes, not {shape}")
    gen = torch.Generator().manual_seed(2 * int(seed) + (split == "train"))
    z = torch.randn((limit or DEFAULT_SIZE, *shape), generator=gen)
    norm = model_normalization or Normalization()
    return EvalSet("synthetic", raw_from_standard(z, norm), None, None, norm, split, "the synthetic inputs")


def raw_from_standard(z: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """The raw values that ``norm`` maps to ``z``: ``(z * std + mean) * divisor``, per channel."""
    if z.dim() >= 2:
        norm.check_channels(int(z.shape[1]), "dataset synthetic")
    view = (1, -1) + (1,) * (z.dim() - 2)
    std = torch.tensor(norm.std).reshape(view) if z.dim() >= 2 else torch.tensor(norm.std[0])
    mean = torch.tensor(norm.mean).reshape(view) if z.dim() >= 2 else torch.tensor(norm.mean[0])
    return (z * std + mean) * norm.divisor
