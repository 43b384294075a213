"""Effective bits of a 25 M-weight model: how long the model figure takes.

    python benchmarks/bench_bits.py [--weights 25e6] [--threads N] [--repeats 5] [--device cpu|cuda]

Builds a model of a few large float32 tensors (about ``--weights`` weights in all, Gaussian values) and times:

* ``continuous``: the model figure of the raw weights (their values barely repeat, so each tensor is measured on
  2^8 levels spanning mean +- 4 std, counted with ``bincount``);
* ``sign``: the model figure of sign-distorted weights (two values per tensor, exact);
* ``ternarize``: the same for ternarized weights (three values, exact);
* ``quantize``: 8-bit quantized weights (255 values, exact: counted by binary search against a sample's values);
* ``effective_bits -d sign``: the whole API call, distortion included (copy of the pristine weights, distorting
  each tensor, counting).

The target is under 2 s for each of the first two on a 2-core CPU. Best and median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch import nn

from robustbench_w.bits.model import effective_bits
from robustbench_w.bits.tensor import model_bits, tensor_bits
from robustbench_w.distortions import get_distortion

SHAPES = [(4096, 4096), (1000, 4096), (512, 512, 3, 3), (256, 256, 3, 3), (2048, 1024)]  # ~25.3 M weights


def build(weights: float, device: str) -> nn.Module:
    """Linear and conv layers with Gaussian weights, scaled so that they hold about ``weights`` weights."""
    scale = (weights / sum(torch.Size(s).numel() for s in SHAPES)) ** 0.5
    gen = torch.Generator().manual_seed(0)
    layers = []
    for shape in SHAPES:
        out, inp = max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))
        layer = nn.Linear(inp, out, bias=False) if len(shape) == 2 else nn.Conv2d(inp, out, shape[2], bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.05)
        layers.append(layer)
    return nn.Sequential(*layers).to(device)


def timed(fn, repeats: int, device: str) -> tuple[float, float, float]:
    """(best s, median s, result) of ``fn()`` over ``repeats`` runs."""
    times, result = [], None
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=float, default=25e6)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build(args.weights, args.device)
    raw = [m.weight.detach() for m in model]
    n = sum(w.numel() for w in raw)
    sign, tern, quant = get_distortion("sign"), get_distortion("ternarize"), get_distortion("quantize")
    signed = [sign(w) for w in raw]
    ternary = [tern(w, 0.5) for w in raw]
    quantized = [quant(w, 8) for w in raw]

    def figure(tensors):
        return lambda: model_bits(tensor_bits(w) for w in tensors)

    cases = [
        ("continuous (8-bit grid)", figure(raw)),
        ("sign (exact)", figure(signed)),
        ("ternarize t=0.5 (exact)", figure(ternary)),
        ("quantize bits=8 (exact, 255 values)", figure(quantized)),
        ("effective_bits -d sign (API, incl. distortion)", lambda: effective_bits(model, "sign").attrs["total"]["bits_per_weight"]),
    ]
    cpu = platform.processor() or platform.machine()
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{cpu}, {os.cpu_count()} CPUs"
    print(f"machine: {platform.system()} {where}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"model: {len(raw)} tensors, {n:,} float32 weights on {args.device}\n")
    print(f"{'case':<48} {'bits/w':>7} {'best s':>8} {'median s':>9} {'Mweights/s':>11}")
    for label, fn in cases:
        fn()  # warm-up
        best, median, bits = timed(fn, args.repeats, args.device)
        print(f"{label:<48} {bits:>7.3f} {best:>8.3f} {median:>9.3f} {n / best / 1e6:>11.1f}")


if __name__ == "__main__":
    main()
