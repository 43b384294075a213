"""Sweep overhead and memory: the public ``rw.sweep`` against a hand-written plain loop over the same points.

    python benchmarks/bench_sweep.py [--quick] [--device cpu|cuda] [--repeats N] [--min-time S]
                                     [--cases mlp,cnn,resnet18] [--threads N] [--steady-malloc] [--json FILE]
                                     [--hardware redraw,converters]

Both sides do the same points: additive Gaussian noise (``noise``, sigma * max|w|) on every conv/linear
weight at 4 strengths x 3 trials, plus the clean pass. The plain loop is what a careful user writes by hand:
one pristine copy, ``normal_`` into the parameter with the very seeds wrobust uses (so the draws are the
same numbers), an in-place scale and add, one pass computing predictions, correct count, summed loss and
agreement with the clean predictions, and a restoring copy. Its results are compared with wrobust's rows
(``same`` in the table). ``rw.sweep`` is called on the in-memory model and evaluation set, as a user would,
so its time includes everything a call does (checks, targets, pristine copy, clean pass, rows, the frame).

Timing is the best of at least ``--repeats`` rounds, and of as many more as fit ``--min-time`` seconds per side
(cheap cases get more rounds), interleaved (the order alternates each round), after one warm-up of each.
Ratio = wrobust / plain (best against best); the target is <= 1.05 on the CPU and <= 1.10 on a GPU (SPEC
section 6). ``ratio_median_round``, the median of each round's own ratio, shows how much the load of the
machine moved the best times.

``--steady-malloc`` times both sides with glibc's malloc thresholds fixed high (``STEADY_MALLOC``: the process
starts again with them in its environment). By default glibc hands the freed top of its heap back to the
system and page-faults it in again at the next pass, and whether a round does depends on the heap's history:
identical rounds of the MLP case took 31 or 42 ms, and the best-against-best ratio said which side had more
fault-free rounds. With the fixed thresholds neither side faults and the ratio is the engine's own overhead.

Peak memory: a 1-point and a 100-point sweep of the same model (noise, 10 strengths x 10 trials), each in a
fresh process after a warm-up sweep of a tiny model, report the memory the call needed on top of what was in
use before it (CPU: the peak resident set, reset through ``/proc/self/clear_refs`` on Linux, else
``ru_maxrss``, with glibc's malloc thresholds fixed so that the figure is reproducible; GPU:
``torch.cuda.max_memory_allocated``). Without a copy of the model per point the two agree within 10%.

``--hardware redraw,converters`` times the hardware modes instead (docs/hardware.md), in batches of a quarter of
the case's: ``redraw`` is ``--redraw batch`` against a plain loop that writes each batch's noise (the same seeds)
before running it; ``converters`` is ``--dac 8 --adc 8`` against a plain loop with hand-written hooks (a
calibration pass for the ranges, a pre-hook quantizing each layer's input, a hook quantizing its output), the
noise as above, the clean pass behind the converters too. The target is <= 1.10x on the ResNet-18 case.

``--json FILE`` writes ``{"device", "torch", "cases": [{"name", "plain_s", "wrobust_s", "ratio",
"peak_mb_1", "peak_mb_100", ...}]}`` (times in seconds per sweep, best of N).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # measure the package next to this file, whatever is installed

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import robustbench_w as rw  # noqa: E402
from robustbench_w.datasets.base import EvalSet  # noqa: E402
from robustbench_w.engine import point_seed  # noqa: E402

SIGMAS = (0.05, 0.1, 0.2, 0.3)
TRIALS = 3
SEED = 0
SPEC = "noise"
SEED_SPEC = "addnorm"  # the canonical spec that seeds ``noise`` (engine.weights.seeding.seed_spec)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def resnet18() -> nn.Module:
    import torchvision

    return torchvision.models.resnet18(num_classes=10)


def tiny() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 10))


@dataclass(frozen=True)
class Case:
    name: str
    build: object  # () -> nn.Module
    shape: tuple[int, ...]
    n: int
    batch: int


CASES = {
    "mlp": Case("mlp-64-256-256-10 (2,000 inputs)", mlp, (64,), 2000, 1024),
    "cnn": Case("small-cnn-32x32 (2,000 inputs)", small_cnn, (3, 32, 32), 2000, 500),
    "resnet18": Case("resnet18-cifar (torchvision, 32x32, 256 inputs)", resnet18, (3, 32, 32), 256, 256),
    "tiny": Case("tiny-mlp (test mode)", tiny, (8,), 64, 64),
}
DEFAULT_CASES = ("mlp", "cnn", "resnet18")
QUICK_CASES = ("mlp", "resnet18")


def build(case: Case, device: torch.device) -> tuple[nn.Module, EvalSet]:
    torch.manual_seed(0)
    model = case.build().to(device).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(case.n, *case.shape, generator=gen).to(device)
    with torch.no_grad():  # labels: the clean model's predictions, so noise raises the error from 0
        y = torch.cat([model(x[i:i + case.batch]).argmax(1) for i in range(0, case.n, case.batch)]).clone()
    return model, EvalSet("bench", x, y, 10)


# ---- the plain loop ----------------------------------------------------------------------------------------

def weight_names(model: nn.Module) -> list[str]:
    return [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def plain_plan(model: nn.Module) -> list[tuple[float, list[int]]]:
    """Each point's strength and the seed of each target tensor (computed before timing: a hand loop
    would have its own seeds; these make its draws the very numbers wrobust draws)."""
    names = weight_names(model)
    return [(s, [point_seed(SEED, SEED_SPEC, s, t, n) for n in names]) for s in SIGMAS for t in range(TRIALS)]


def plain_evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, clean: torch.Tensor | None):
    preds, loss, correct = [], torch.zeros((), device=x.device), torch.zeros((), device=x.device)
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch])
        pred = logits.argmax(1)
        preds.append(pred)
        loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum")
        correct += (pred == y[i:i + batch]).sum()
    pred = torch.cat(preds)
    agree = (pred == clean).sum() if clean is not None else torch.tensor(len(x), device=x.device)
    loss_v, correct_v, agree_v = torch.stack([loss, correct.float(), agree.float()]).tolist()
    return pred, 1.0 - correct_v / len(x)


def plain_sweep(model: nn.Module, data: EvalSet, batch: int, plan: list[tuple[float, list[int]]]) -> list[float]:
    """What a careful user writes by hand; returns the error of each point."""
    targets = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    pristine = [w.detach().clone() for w in targets]
    scales = [w.abs().amax() for w in pristine]
    gen = torch.Generator(device=data.x.device)
    with torch.inference_mode():
        clean, clean_error = plain_evaluate(model, data.x, data.y, batch, None)
    errors = [clean_error]
    for sigma, seeds in plan:
        with torch.no_grad():
            for w, w0, a, s in zip(targets, pristine, scales, seeds):
                gen.manual_seed(s)
                w.normal_(generator=gen).mul_(sigma * a).add_(w0)
        with torch.inference_mode():
            errors.append(plain_evaluate(model, data.x, data.y, batch, clean)[1])
        with torch.no_grad():
            for w, w0 in zip(targets, pristine):
                w.copy_(w0)
    return errors


def wrobust_sweep(model: nn.Module, data: EvalSet, batch: int, device: torch.device, strengths=SIGMAS,
                  trials: int = TRIALS) -> list[float]:
    rows = rw.sweep(model, data, [SPEC], list(strengths), trials=trials, seed=SEED, batch_size=batch, device=device)
    return rows["error"].tolist()


# ---- the hardware modes (--hardware) ---------------------------------------------------------------------------

def redraw_plan(model: nn.Module, batches: int) -> list[tuple[float, list[list[int]]]]:
    """Each point's strength and, per batch, the seed of each target (batch 0: the point's own seeds)."""
    from robustbench_w.engine.weights.redraw import batch_trial

    names = weight_names(model)
    return [(s, [[point_seed(SEED, SEED_SPEC, s, batch_trial(t, b), n) for n in names] for b in range(batches)])
            for s in SIGMAS for t in range(TRIALS)]


def plain_redraw(model: nn.Module, data: EvalSet, batch: int, plan) -> list[float]:
    """The plain loop of ``--redraw batch``: each batch's noise written from the pristine copy before it runs."""
    targets = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    pristine = [w.detach().clone() for w in targets]
    scales = [w.abs().amax() for w in pristine]
    gen = torch.Generator(device=data.x.device)
    with torch.inference_mode():
        clean = plain_evaluate(model, data.x, data.y, batch, None)
    errors = [clean[1]]
    for sigma, per_batch in plan:
        correct = 0.0
        for b, seeds in enumerate(per_batch):
            with torch.no_grad():
                for w, w0, a, seed in zip(targets, pristine, scales, seeds):
                    gen.manual_seed(seed)
                    w.normal_(generator=gen).mul_(sigma * a).add_(w0)
            with torch.inference_mode():
                x, y = data.x[b * batch:(b + 1) * batch], data.y[b * batch:(b + 1) * batch]
                correct += (model(x).argmax(1) == y).sum().item()
        errors.append(1.0 - correct / len(data.x))
        with torch.no_grad():
            for w, w0 in zip(targets, pristine):
                w.copy_(w0)
    return errors


def plain_converters(model: nn.Module, data: EvalSet, batch: int, plan, bits: int = 8) -> list[float]:
    """The plain loop of ``--dac 8 --adc 8``: hand-written calibration and hooks around the noise loop."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    peaks = {m: [torch.zeros((), device=data.x.device)] * 2 for m in layers}
    record = [m.register_forward_hook(lambda m, a, o: peaks.__setitem__(
        m, [torch.maximum(peaks[m][0], a[0].abs().amax()), torch.maximum(peaks[m][1], o.abs().amax())]))
        for m in layers]
    with torch.inference_mode():
        for i in range(0, len(data.x), batch):
            model(data.x[i:i + batch])
    for h in record:
        h.remove()
    levels = 2 ** (bits - 1) - 1

    def q(x, r):
        return x.div_(r).mul_(levels).round_().clamp_(-levels, levels).mul_(r).div_(levels)
    hooks = [h for m in layers for h in (
        m.register_forward_pre_hook(lambda m, a: (q(a[0].clone(), peaks[m][0]),)),
        m.register_forward_hook(lambda m, a, o: q(o, peaks[m][1])))]
    try:
        return plain_sweep(model, data, batch, plan)
    finally:
        for h in hooks:
            h.remove()


def hardware_sides(mode: str, model: nn.Module, data: EvalSet, batch: int, device: torch.device):
    """(plain, wrobust) of one hardware mode, each returning the errors of every point."""
    from robustbench_w.engine.passes.converters import ConverterSpec

    if mode == "redraw":
        plan = redraw_plan(model, -(-len(data.x) // batch))
        extra = {"redraw": "batch"}
        plain = lambda: plain_redraw(model, data, batch, plan)  # noqa: E731
    else:
        plan = plain_plan(model)
        extra = {"converters": ConverterSpec(dac=8, adc=8)}
        plain = lambda: plain_converters(model, data, batch, plan)  # noqa: E731
    ours = lambda: rw.sweep(model, data, [SPEC], list(SIGMAS), trials=TRIALS, seed=SEED, batch_size=batch,  # noqa: E731
                            device=device, **extra)["error"].tolist()
    return plain, ours


# ---- timing and memory ---------------------------------------------------------------------------------------

def timed(fn, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def compare(case: Case, device: torch.device, repeats: int, min_time: float, mode: str | None = None) -> dict:
    """Best seconds of the plain loop and of ``rw.sweep``, interleaved (the order alternates), over at least
    ``repeats`` rounds and until each side has run ``min_time`` seconds (at most 100 rounds: fast cases get
    more rounds, which steadies their minimum on a busy machine); and whether both got the same errors."""
    model, data = build(case, device)
    plan = plain_plan(model)
    plain = lambda: plain_sweep(model, data, case.batch, plan)  # noqa: E731
    ours = lambda: wrobust_sweep(model, data, case.batch, device)  # noqa: E731
    if mode is not None:
        plain, ours = hardware_sides(mode, model, data, max(1, case.batch // 4), device)
    plain_errors, our_errors = plain(), ours()  # warm-up, and the results to compare
    times: dict[str, list[float]] = {"plain": [], "wrobust": []}
    while len(times["plain"]) < 100 and (len(times["plain"]) < repeats
                                          or min(sum(t) for t in times.values()) < min_time):
        order = [("plain", plain), ("wrobust", ours)]
        for key, fn in order if len(times["plain"]) % 2 == 0 else order[::-1]:
            times[key].append(timed(fn, device)[0])
    plain_s, our_s = min(times["plain"]), min(times["wrobust"])
    paired = sorted(o / p for o, p in zip(times["wrobust"], times["plain"]))  # each round's own ratio
    return {"plain_s": round(plain_s, 5), "wrobust_s": round(our_s, 5), "ratio": round(our_s / plain_s, 4),
            "ratio_median_round": round(paired[len(paired) // 2], 4), "points": len(plan) + 1, "inputs": case.n,
            "rounds": len(times["plain"]), "same_results": plain_errors == our_errors}


# glibc moves its mmap threshold as blocks are freed, so which large blocks return to the system (and the
# peak resident set) varied by tens of MiB between identical runs; fixed thresholds hand every block of
# 128 KiB or more straight back, so the peak follows the memory actually in use (no effect elsewhere).
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
# for timing (--steady-malloc): blocks below 64 MiB come from the heap, whose top is kept (no page faults)
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "67108864", "MALLOC_TRIM_THRESHOLD_": "134217728"}


def rss_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


def peak_child(key: str, points: int, device: torch.device) -> float:
    """Memory (MiB) that one ``rw.sweep`` of ``points`` noise points needs above what was in use before it."""
    warm_model, warm_data = build(CASES["tiny"], device)
    wrobust_sweep(warm_model, warm_data, 64, device)  # imports and first-call set-up, outside the measurement
    case = CASES[key]
    model, data = build(case, device)
    strengths, trials = ([0.1], 1) if points == 1 else ([round(0.01 * (i + 1), 2) for i in range(10)], points // 10)
    run = lambda: wrobust_sweep(model, data, case.batch, device, strengths, trials)  # noqa: E731
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    if Path("/proc/self/clear_refs").exists():
        before = rss_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set (VmHWM) to the current one
        run()
        return (rss_kb("VmHWM") - before) / 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    unit = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * unit / 2**20


def peak_mb(key: str, points: int, device: torch.device) -> float:
    """:func:`peak_child` in a fresh process (so that no earlier work hides or adds memory)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--peak-child", key, "--points", str(points),
           "--device", str(device), "--threads", str(torch.get_num_threads())]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **FIXED_MALLOC}).stdout
    return round(float(out.strip().splitlines()[-1]), 2)


# ---- output ----------------------------------------------------------------------------------------------------

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    if info.exists():
        found = re.search(r"model name\s*:\s*(.+)", info.read_text())
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    keys = args.cases.split(",") if args.cases else (QUICK_CASES if args.quick else DEFAULT_CASES)
    repeats = args.repeats or (3 if args.quick else 5)
    min_time = args.min_time if args.min_time is not None else (3.0 if args.quick else 5.0)
    steady = all(os.environ.get(k) == v for k, v in STEADY_MALLOC.items())
    result = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
              "repeats": repeats, "min_time_s": min_time, "steady_malloc": steady, "load_before": load_average(),
              "cases": []}
    print(f"torch {torch.__version__}, {device} ({result['device_name']}), best of >= {repeats} rounds and "
          f">= {min_time:g} s per side{', steady malloc' if steady else ''}, load average {result['load_before']}\n")
    print("| case | points | rounds | plain s | wrobust s | ratio | median round ratio | same | peak MiB, 1 point "
          "| peak MiB, 100 points |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    modes = args.hardware.split(",") if args.hardware else [None]
    for key, mode in ((k, m) for k in keys for m in modes):
        case = CASES[key]
        row = {"name": case.name + (f", {mode}" if mode else ""), **compare(case, device, repeats, min_time, mode)}
        row["peak_mb_1"], row["peak_mb_100"] = (peak_mb(key, 1, device), peak_mb(key, 100, device)) if mode is None \
            else (math.nan, math.nan)
        result["cases"].append(row)
        print(f"| {row['name']} | {row['points']} | {row['rounds']} | {row['plain_s']:.4f} | {row['wrobust_s']:.4f} | "
              f"{row['ratio']:.3f} | {row['ratio_median_round']:.3f} | {'yes' if row['same_results'] else 'NO'} | "
              f"{row['peak_mb_1']:.1f} | {row['peak_mb_100']:.1f} |", flush=True)
    result["load_after"] = load_average()
    print(f"\nload average after: {result['load_after']}")
    return result


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="the MLP and ResNet-18 cases, best of 3 (CPU: under 2 min)")
    parser.add_argument("--repeats", type=int, default=None, help="at least N rounds (default 5, 3 with --quick)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="and at least this many seconds per side (default 5, 3 with --quick)")
    parser.add_argument("--cases", default=None, help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--steady-malloc", action="store_true",
                        help="time with glibc's malloc thresholds fixed (no page faults from a trimmed heap)")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this file")
    parser.add_argument("--hardware", default=None, help="time the hardware modes instead: redraw, converters")
    parser.add_argument("--peak-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--points", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steady_malloc and argv is None and any(os.environ.get(k) != v for k, v in STEADY_MALLOC.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **STEADY_MALLOC})  # read at start-up
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_child:
        print(peak_child(args.peak_child, args.points, torch.device(args.device)))
        return None
    result = run(args)
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(args.json)
    return result


if __name__ == "__main__":
    main()
