"""Sweep overhead: ``wrobust``'s engine against a plain PyTorch loop over the same points, in one run.

    python benchmarks/bench_sweep.py [--device cpu|cuda] [--repeats 5]

Both do the same work per point: draw additive Gaussian noise for every conv/linear weight (sigma * max|w|),
write it in place, one pass over the evaluation tensors computing predictions, correct count, loss and
agreement with the clean predictions, and restore the weights. The ratio (engine time / plain time, best of
``--repeats``) is the number to watch: the target is <= 1.05 on the CPU and <= 1.10 on a GPU (SPEC 6).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_w.datasets.base import EvalSet
from robustbench_w.distortions import get_distortion
from robustbench_w.engine.sweep import SweepRunner, plan
from robustbench_w.load.checkpoints import LoadedModel

SIGMAS = [0.05, 0.1, 0.2, 0.3]
TRIALS = 3


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


def plain_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> None:
    """What a careful user would write by hand."""
    targets = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    pristine = [w.detach().clone() for w in targets]
    scales = [w.abs().max() for w in pristine]

    @torch.inference_mode()
    def evaluate(clean=None):
        preds, loss = [], 0.0
        for i in range(0, len(x), batch):
            logits = model(x[i:i + batch])
            preds.append(logits.argmax(1))
            loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum")
        pred = torch.cat(preds)
        agree = (pred == clean).sum() if clean is not None else len(pred)
        return pred, (pred == y).sum().item(), float(loss), int(agree)

    clean, *_ = evaluate()
    for k, sigma in enumerate(SIGMAS):
        for t in range(TRIALS):
            with torch.no_grad():
                for j, (w, w0, a) in enumerate(zip(targets, pristine, scales)):
                    g = torch.Generator(device=w0.device).manual_seed(1000 * k + 10 * t + j)
                    w.copy_(w0 + sigma * a * torch.randn(w0.shape, generator=g, device=w0.device))
            evaluate(clean)
            with torch.no_grad():
                for w, w0 in zip(targets, pristine):
                    w.copy_(w0)


def engine(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, device: torch.device) -> None:
    data = EvalSet("bench", x, y, 10)
    runner = SweepRunner(LoadedModel(model, "bench"), data, batch_size=batch, device=device)
    runner.run(plan([get_distortion("noise")], SIGMAS, TRIALS), seed=0)


def best_of(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(name: str, model: nn.Module, shape: tuple[int, ...], n: int, batch: int, device: torch.device, repeats: int):
    torch.manual_seed(0)
    model = model.to(device).eval()
    x = torch.randn(n, *shape, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    plain_loop(model, x, y, batch)  # warm-up
    plain = best_of(lambda: plain_loop(model, x, y, batch), repeats, device)
    ours = best_of(lambda: engine(model, x, y, batch, device), repeats, device)
    points = len(SIGMAS) * TRIALS + 1
    print(f"| {name} | {n} | {points} | {1000 * plain / points:.2f} | {1000 * ours / points:.2f} | {ours / plain:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {device} ({where})\n")
    print("| workload | inputs | points | plain ms/point | wrobust ms/point | ratio |")
    print("|---|---|---|---|---|---|")
    bench("digits-size MLP (26k weights)", mlp(), (1, 8, 8), 2000, 1024, device, args.repeats)
    bench("small CNN, 32x32x3 (0.6M weights)", small_cnn(), (3, 32, 32), 2000, 500, device, args.repeats)


if __name__ == "__main__":
    main()
