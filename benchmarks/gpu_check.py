"""The GPU check (SPEC section 6): CIFAR ResNet-18 over 10,000 random 32x32 images per pass, on one GPU.

    bash benchmarks/gpu_check.sh                  # on a machine with a CUDA GPU, from the repository root
    python benchmarks/gpu_check.py --device cpu --n 4 --points 2 --repeats 1 --compile-backend eager   # smoke

Nothing is downloaded: the model is the built-in ``resnet18-cifar`` architecture with seeded random weights and
the data random tensors of CIFAR-10's shape (a pass costs the same whatever the pixels are). It prints a
Markdown table to paste into ``benchmarks/RESULTS.md``:

1. **one pass** over the set per configuration (fp32, tf32, bf16, bf16 + channels-last, bf16 + channels-last +
   ``torch.compile``): wrobust's evaluator (``--precision``, ``--channels-last``, ``--compile``; predictions,
   loss, correct count and agreement on the device) against a plain PyTorch loop doing the same with the same
   settings, best of ``--repeats`` each, taking turns;
2. **a sweep**: ``rw.sweep`` over ``--points`` points of additive noise (written in place, evaluated, restored)
   against a hand-written loop over the same points, in fp32 and in the fastest configuration without
   ``torch.compile`` (each ``rw.sweep`` call compiles anew, which a comparison of a few points would only time);
3. **the automatic batch size** (``--batch-size auto``): what it chose on this GPU and a pass at it, fp32;
4. **perturb + restore**: drawing the noise for all 11.2 M weights, writing it and restoring them (median).

Passes use batches of ``--batch-size`` (default 1,000: ten equal batches, so a compiled model has one graph).

On one H100 the whole check takes about 2 minutes (compiling the model is most of it); ``--quick`` halves the
set and the points. The reference numbers of SPEC section 6 (one H100, PyTorch 2.11): fp32 490 ms, tf32 141 ms,
bf16 92 ms, bf16 + channels-last 55 ms, + compile 39 ms per pass; perturb + restore 1.4 ms.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import robustbench_w as rw
from robustbench_w.datasets.base import EvalSet
from robustbench_w.distortions import get_distortion
from robustbench_w.engine.passes.fastpath import FastPath
from robustbench_w.engine.runs.sweep import SweepRunner
from robustbench_w.load.architectures import resnet18_cifar
from robustbench_w.load.checkpoints import LoadedModel


@dataclass(frozen=True)
class Config:
    name: str
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False


CONFIGS = [Config("fp32"), Config("tf32", "tf32"), Config("bf16", "bf16"),
           Config("bf16 + channels-last", "bf16", True), Config("bf16 + channels-last + compile", "bf16", True, True)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def fresh_model(device: torch.device, config: Config) -> nn.Module:
    torch.manual_seed(0)
    model = resnet18_cifar().to(device).eval()
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def random_cifar(n: int, device: torch.device) -> EvalSet:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    return EvalSet("random-cifar", x, y, 10)


# ------------------------------------------------------------------ the plain loop: what a user writes by hand

@contextmanager
def plain_settings(config: Config, device: torch.device):
    """TF32 flags and bf16 autocast as a user would set them, restored afterwards."""
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = config.precision == "tf32" and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        with torch.autocast(device.type, torch.bfloat16) if config.precision == "bf16" else nullcontext():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


class PlainLoop:
    """One model on tensors already on the device: a pass gives predictions, correct count, loss, agreement."""

    def __init__(self, config: Config, data: EvalSet, batch: int, device: torch.device, backend: str):
        self.config, self.device = config, device
        self.model = fresh_model(device, config)
        self.forward = torch.compile(self.model, backend=backend) if config.compile else self.model
        fmt = torch.channels_last if config.channels_last else torch.contiguous_format
        self.x = [c.to(device).contiguous(memory_format=fmt) for c in data.x.split(batch)]
        self.y = [c.to(device) for c in data.y.split(batch)]
        self.weights = [m.weight for m in self.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.pristine = [w.detach().clone() for w in self.weights]
        self.scales = [w.abs().max() for w in self.pristine]
        self.clean = None
        self.clean = self.run()[0]

    @torch.inference_mode()
    def run(self) -> tuple[torch.Tensor, tuple[float, float, float]]:
        preds, correct, loss, agree = [], 0, 0.0, 0
        with plain_settings(self.config, self.device):
            for i, (x, y) in enumerate(zip(self.x, self.y)):
                logits = self.forward(x).float()
                pred = logits.argmax(1)
                correct += (pred == y).sum()
                loss += F.cross_entropy(logits, y, reduction="sum")
                agree += (pred == (self.clean[i] if self.clean is not None else pred)).sum()
                preds.append(pred)
        return preds, (float(correct), float(loss), float(agree))

    @torch.no_grad()
    def point(self, sigma: float, seed: int) -> None:
        gen = torch.Generator(device=self.device).manual_seed(seed)
        for w, p, a in zip(self.weights, self.pristine, self.scales):
            w.normal_(generator=gen).mul_(a * sigma).add_(p)
        self.run()
        for w, p in zip(self.weights, self.pristine):
            w.copy_(p)


# ------------------------------------------------------------------ measurements

def engine_runner(config: Config, data: EvalSet, device: torch.device, backend: str, batch) -> SweepRunner:
    fast = FastPath(config.precision, config.channels_last, backend if config.compile else False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a random model on random data is at chance level
        return SweepRunner(LoadedModel(module=fresh_model(device, Config("plain")), name="resnet18-cifar"), data,
                           batch_size=batch, device=device, fast=fast)


def pass_row(config: Config, data: EvalSet, device: torch.device, args) -> dict:
    """Best time of one pass, wrobust's evaluator and the plain loop taking turns; compile time apart."""
    started = time.perf_counter()
    runner = engine_runner(config, data, device, args.compile_backend, args.batch_size)
    batch = runner.evaluator.batch_size
    plain = PlainLoop(config, data, batch, device, args.compile_backend)
    setup = time.perf_counter() - started
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(timed(runner.evaluator.run, device))
        theirs.append(timed(plain.run, device))
    return {"config": config.name, "batch": batch, "plain_ms": 1e3 * min(theirs), "wrobust_ms": 1e3 * min(ours),
            "ratio": min(ours) / min(theirs), "setup_s": setup}


def sweep_row(config: Config, data: EvalSet, device: torch.device, args) -> dict:
    """``rw.sweep`` over the points against the plain loop over the same points (best of the repeats)."""
    sigmas = [0.02 * (k + 1) for k in range(args.points)]
    plain = PlainLoop(config, data, int(args.batch_size), device, args.compile_backend)

    def ours():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rw.sweep(fresh_model(device, Config("plain")), data, ["noise"], sigmas, trials=1, device=device,
                     precision=config.precision, channels_last=config.channels_last, batch_size=args.batch_size)

    def theirs():
        plain.run()
        for k, s in enumerate(sigmas):
            plain.point(s, k)

    ours()  # warm: allocator, cuDNN's algorithm choice, compiled graphs
    a, b = [], []
    for _ in range(args.repeats):
        a.append(timed(ours, device))
        b.append(timed(theirs, device))
    return {"config": f"sweep, {config.name}", "points": len(sigmas), "plain_s": min(b), "wrobust_s": min(a),
            "ratio": min(a) / min(b)}


def auto_row(data: EvalSet, device: torch.device, args) -> dict:
    """The batch size ``auto`` chooses here, and the best fp32 pass at it."""
    runner = engine_runner(Config("fp32"), data, device, args.compile_backend, "auto")
    best = min(timed(runner.evaluator.run, device) for _ in range(args.repeats))
    return {"batch": runner.evaluator.batch_size, "wrobust_ms": 1e3 * best, "halvings": runner.evaluator.halvings}


def perturb_row(data: EvalSet, device: torch.device, args) -> dict:
    runner = engine_runner(Config("fp32"), data, device, args.compile_backend, args.batch_size)
    dist, times = get_distortion("noise"), []
    for k in range(args.perturb_repeats):
        def once():
            with runner.patch.applied(dist, 0.1, 0, k):
                pass

        times.append(timed(once, device))
    return {"weights": runner.patch.numel, "median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times)}


# ------------------------------------------------------------------ the table

def table(device: torch.device, args, passes: list[dict], sweeps: list[dict], auto: dict, perturb: dict) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [f"GPU check, {time.strftime('%Y-%m-%d')}: {name} ({device}), torch {torch.__version__}, "
             f"CIFAR ResNet-18 over {args.n:,} random 32x32 images per pass, best of {args.repeats}", "",
             "| configuration | batch | plain ms/pass | wrobust ms/pass | ratio | set-up s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['batch']} | {r['plain_ms']:.1f} | {r['wrobust_ms']:.1f} | {r['ratio']:.3f} | "
              f"{r['setup_s']:.1f} |" for r in passes]
    lines += ["", "| sweep | points | plain s | wrobust s (rw.sweep) | ratio |", "|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['points']} | {r['plain_s']:.2f} | {r['wrobust_s']:.2f} | {r['ratio']:.3f} |"
              for r in sweeps]
    lines += ["", f"--batch-size auto chose {auto['batch']} on this device (fp32 pass {auto['wrobust_ms']:.1f} ms"
                  f"{'; ' + '; '.join(auto['halvings']) if auto['halvings'] else ''})"]
    lines += ["", f"perturb + restore of {perturb['weights']:,} weights (additive noise drawn on the device): "
                  f"median {perturb['median_ms']:.2f} ms, best {perturb['min_ms']:.2f} ms"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (a smoke test)")
    p.add_argument("--n", type=int, default=10_000, help="images per pass (default 10,000, as SPEC section 6)")
    p.add_argument("--points", type=int, default=10, help="points of the sweep comparison")
    p.add_argument("--repeats", type=int, default=3, help="best of this many timings of each")
    p.add_argument("--perturb-repeats", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=1000, help="inputs per batch of every pass (default 1000)")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager for a smoke test)")
    p.add_argument("--quick", action="store_true", help="half the images and points")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the measurements as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.points = args.n // 2, max(2, args.points // 2)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA device here: run on a GPU machine, or pass --device cpu for a smoke test")
    data = random_cifar(args.n, device)
    passes = [pass_row(c, data, device, args) for c in CONFIGS]
    eager = [c for c in CONFIGS if not c.compile]
    fastest = min(eager, key=lambda c: next(r["wrobust_ms"] for r in passes if r["config"] == c.name))
    sweeps = [sweep_row(c, data, device, args) for c in dict.fromkeys([CONFIGS[0], fastest])]
    auto, perturb = auto_row(data, device, args), perturb_row(data, device, args)
    print(table(device, args, passes, sweeps, auto, perturb))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "torch": torch.__version__, "n": args.n, "passes": passes,
                       "sweeps": sweeps, "auto_batch": auto, "perturb": perturb}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
