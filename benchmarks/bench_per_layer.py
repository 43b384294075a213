"""Activation reuse in per-layer sweeps: FLOPs and wall time against the naive per-layer sweep.

    python benchmarks/bench_per_layer.py [--repeats 3] [--images 256] [--threads 2] [--only cnn|vgg|mlp ...] [--quick]

Three chains of 8 weight layers (``nn.Sequential``, random weights, seed 0), each swept per layer with
``-d noise -s 0.1,0.3 --trials 2``: 4 points per layer, 32 points, plus the clean model:

- ``cnn``: a small convolutional net of constant width on 3x32x32 images: 3x3 convolutions 64, 64, pool, 64,
  64, pool, 64, 64, pool (ReLU after each), then Linear 1024->256 and 256->10. Its early layers cost the most
  (they run at the highest resolution), as in most convolutional nets, and that is where the reuse saves.
- ``vgg``: the same with the channels doubling as the resolution halves (32, 32, 64, 64, 128, 128; Linear
  2048->256, 256->10): each stage costs about the same, a harder case.
- ``mlp``: 8 equal Linear 512->512 layers (ReLU between; the last one's outputs read as class scores): every
  layer costs the same. Reusing the prefix runs,
  per point, the suffix from the distorted layer on: on average (n + 1) / 2 of n layers, so no prefix reuse
  can save more than 2n / (n + 1) = 1.78x on it. It is here to show that bound.

For each chain, both sweeps (``reuse_activations=False`` and ``True``) run through ``rw.sweep`` on the same
batches (``--images`` inputs; 8x as many for the MLP), and the benchmark checks that they give the same rows (exactly). It reports:

- FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` over the whole ``rw.sweep`` call (probe, clean
  pass, every point, and for the reuse the prefixes);
- FLOPs by the layer shapes (2 x multiply-adds of every conv and linear layer, from their output shapes): the
  same work computed from the plan, as a check of the count;
- wall time of the whole ``rw.sweep`` call, best of ``--repeats``, the two sweeps taking turns;
- the machine, its thread count and its load average before and after (the 2-core machine of this project is
  shared, and other work inflates both times).

Targets (issue 15): at least 2x fewer FLOPs and at least 1.5x less wall time than the naive per-layer sweep on
a chain of 8 layers.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import robustbench_w as rw
from robustbench_w.engine.passes.activations import chain_of

SWEEP = dict(distortions=["noise"], strengths=[0.1, 0.3], trials=2, per_layer=True, device="cpu", seed=0)
WEIGHTED = (nn.Conv2d, nn.Linear)


def conv_chain(widths: tuple[int, int, int]) -> tuple[nn.Sequential, tuple[int, ...]]:
    """Two 3x3 convolutions per stage (ReLU after each, then a 2x2 max-pool), three stages, then two Linear."""
    layers: list[nn.Module] = []
    c_in = 3
    for c in widths:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                   nn.MaxPool2d(2)]
        c_in = c
    layers += [nn.Flatten(), nn.Linear(c_in * 4 * 4, 256), nn.ReLU(), nn.Linear(256, 10)]
    return nn.Sequential(*layers), (3, 32, 32)


def mlp(width: int = 512) -> tuple[nn.Sequential, tuple[int, ...]]:
    """8 equal layers; the last one's 512 outputs are read as class scores (the labels are below 10)."""
    layers: list[nn.Module] = []
    for i in range(8):
        layers += [nn.Linear(width, width)] + ([nn.ReLU()] if i < 7 else [])
    return nn.Sequential(*layers), (width,)


CHAINS = {"cnn": lambda: conv_chain((64, 64, 64)), "vgg": lambda: conv_chain((32, 64, 128)), "mlp": mlp}
INPUTS = {"cnn": 1, "vgg": 1, "mlp": 8}  # inputs per --images: the MLP's pass is cheap, so it gets 8x more


def batches(shape: tuple[int, ...], n: int, size: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    return [(x[i:i + size], y[i:i + size]) for i in range(0, n, size)]


def layer_flops(model: nn.Sequential, shape: tuple[int, ...]) -> list[int]:
    """FLOPs per input of each top-level module (2 x multiply-adds of its conv or linear layer, else 0)."""
    flops = [0] * len(model)
    hooks = []
    for i, module in enumerate(model):
        if isinstance(module, WEIGHTED):
            hooks.append(module.register_forward_hook(lambda m, a, out, i=i: flops.__setitem__(i, _flops(m, out))))
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return flops


def _flops(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return 2 * module.in_features * module.out_features
    k = module.kernel_size[0] * module.kernel_size[1]
    return 2 * (module.in_channels // module.groups) * k * module.out_channels * out.shape[2] * out.shape[3]


def planned_flops(model: nn.Sequential, shape: tuple[int, ...], n: int, points: int, reuse: bool) -> int:
    """The sweep's FLOPs by the layer shapes: the clean pass, then per unit its points (the whole model, or with
    reuse the suffix from the unit's module) and, with reuse, the prefix moved forward once over the sweep."""
    per = layer_flops(model, shape)
    whole = sum(per)
    starts = [i for i, m in enumerate(model) if isinstance(m, WEIGHTED)]
    if not reuse:
        return n * (whole + points * len(starts) * whole)
    suffixes = sum(sum(per[s:]) if s > 0 else whole for s in starts)
    prefix = sum(per[:starts[-1]])  # boundaries move forward from one unit to the next: each module once
    return n * (whole + points * suffixes + prefix)


def run(model: nn.Module, data: list, reuse: bool) -> tuple[pd.DataFrame, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: the clean model is at chance level
        started = time.perf_counter()
        rows = rw.sweep(model, data, reuse_activations=reuse, **SWEEP)
        return rows, time.perf_counter() - started


def counted(model: nn.Module, data: list, reuse: bool) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        run(model, data, reuse)
    return counter.get_total_flops()


def bench(name: str, images: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model, shape = CHAINS[name]()
    model.eval()
    data = batches(shape, images)
    assert chain_of(model) is not None
    naive, _ = run(model, data, False)
    reused, _ = run(model, data, True)
    pd.testing.assert_frame_equal(reused, naive, check_exact=True)  # the same rows, exactly
    points = len(naive[naive["layer"] == naive["layer"].iloc[1]])
    flops = {r: counted(model, data, r) for r in (False, True)}
    planned = {r: planned_flops(model, shape, images, points, r) for r in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for r in (False, True):
            times[r].append(run(model, data, r)[1])
    return {"chain": name, "images": images, "units": naive["layer"].nunique() - 1, "points": points,
            "flops": flops, "planned": planned, "seconds": {r: min(t) for r, t in times.items()},
            "reused": reused.attrs["meta"]["activation_reuse"]["reused"]}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__} (CPU)"


def report(result: dict) -> str:
    f, p, s = result["flops"], result["planned"], result["seconds"]
    return (f"{result['chain']}: {result['units']} layers x {result['points']} points, {result['images']} inputs\n"
            f"  FLOPs counted  naive {f[False] / 1e9:9.2f} G  reuse {f[True] / 1e9:9.2f} G  "
            f"ratio {f[False] / f[True]:.2f}x\n"
            f"  FLOPs planned  naive {p[False] / 1e9:9.2f} G  reuse {p[True] / 1e9:9.2f} G  "
            f"ratio {p[False] / p[True]:.2f}x\n"
            f"  wall time      naive {s[False]:9.2f} s  reuse {s[True]:9.2f} s  ratio {s[False] / s[True]:.2f}x\n"
            f"  suffix from module, per layer: {result['reused']}")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=sorted(CHAINS), action="append", default=None)
    parser.add_argument("--quick", action="store_true", help="a few inputs, one repeat (a smoke test)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images, repeats = (16, 1) if args.quick else (args.images, args.repeats)
    print(machine())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = []
    for name in args.only or list(CHAINS):
        results.append(bench(name, images * INPUTS[name], repeats))
        print(report(results[-1]), flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return results


if __name__ == "__main__":
    main()
