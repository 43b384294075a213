"""Register a distortion of your own and sweep it like a built-in one.

    python examples/custom_distortion.py

A distortion is a pure function of (w, strength, a, generator): ``w`` is a 2-D view of the weight tensor
(one row per scale group), ``a`` the scale of each row (shape (rows, 1)), ``generator`` a seeded
torch.Generator for random distortions. The registry checks strengths, computes scales, seeds and keeps
shapes and dtypes; the function only does the arithmetic.
"""

import torch

import robustbench_w as rw
from robustbench_w.distortions import Range, register_distortion


@register_distortion(
    "signflip", strength="p", valid=Range(0.0, 1.0), grid=(0.0, 0.01, 0.05, 0.1), identity=0.0, random=True,
    formula="-w with probability p, else w", values="real", reference="examples/custom_distortion.py",
)
def signflip(w, p, a, generator):
    flip = torch.rand(w.shape, generator=generator, device=w.device, dtype=w.dtype) < p
    return torch.where(flip, -w, w)


if __name__ == "__main__":
    rows = rw.sweep("builtin:digits-mlp", distortions=["signflip"], trials=3, device="cpu")
    print(rw.summarize(rows)[["spec", "strength", "error_mean", "error_ci_low", "error_ci_high"]].to_string(index=False))
