"""Wall time of a 40-point sweep in one process and in N processes under torchrun, one thread each.

    python benchmarks/bench_parallel.py [--procs 2] [--repeats 3] [--device cpu|cuda] [--images 1000]

Writes a small CNN (BinaryConnect layout at width 1/8, random weights) and random 3x32x32 images to a
temporary folder, then times, from the shell's point of view (interpreter start, loading, the sweep,
writing the CSV), ``wrobust sweep -d noise -s 0.05..0.4 (8 strengths) --trials 5`` = 40 points:

- once in one process (``OMP_NUM_THREADS=1``);
- once under ``python -m torch.distributed.run --standalone --nproc-per-node N`` (``OMP_NUM_THREADS=1`` each).

Best of ``--repeats``, alternating the two. It also checks that both give the same rows, and prints the
machine's load average before and after (on a shared machine other work inflates both times). On GPUs
(``--device cuda``) each process takes GPU ``LOCAL_RANK``, so ``--procs`` should not exceed the GPU count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from robustbench_w.load.architectures import binaryconnect
from robustbench_w.load.checkpoints import save_checkpoint

STRENGTHS = "0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4"
TRIALS = 5  # 8 strengths x 5 trials = 40 points


def prepare(folder: Path, images: int) -> tuple[Path, Path]:
    torch.manual_seed(0)
    kwargs = {"width": 0.125, "fc": 256}
    model = binaryconnect(**kwargs).eval()
    ckpt = save_checkpoint(folder / "cnn.pt", model, "binaryconnect", kwargs, num_classes=10, input_shape=(3, 32, 32))
    gen = torch.Generator().manual_seed(0)
    data = {"x": torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=gen),
            "y": torch.randint(0, 10, (images,), generator=gen), "num_classes": 10}
    torch.save(data, folder / "data.pt")
    return ckpt, folder / "data.pt"


def command(procs: int, ckpt: Path, data: Path, out: Path, device: str) -> list[str]:
    sweep = ["sweep", str(ckpt), "--dataset", f"tensors:{data}", "-d", "noise", "-s", STRENGTHS,
             "--trials", str(TRIALS), "--device", device, "-q", "-o", str(out)]  # .json: its meta has elapsed_s
    if procs == 1:
        return [sys.executable, "-m", "robustbench_w", *sweep]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
            "-m", "robustbench_w", "--", *sweep]


def timed(cmd: list[str], out: Path) -> tuple[float, float, float]:
    """(wall s, the run's own elapsed s from its meta: loading + sweep + gather, CPU s of all its processes)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:  # (the random model's chance-level warning is not shown)
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    wall = time.perf_counter() - started
    elapsed = json.loads(out.read_text())["meta"]["elapsed_s"]
    return wall, elapsed, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ckpt, data = prepare(folder, args.images)
        load_before = os.getloadavg()
        times: dict[int, list[tuple[float, float, float]]] = {1: [], args.procs: []}
        for _ in range(args.repeats):
            for procs in times:
                out = folder / f"p{procs}.json"
                times[procs].append(timed(command(procs, ckpt, data, out, args.device), out))
        load_after = os.getloadavg()
        rows = [json.loads((folder / f"p{p}.json").read_text())["rows"] for p in times]
        same = rows[0] == rows[1]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {args.device}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    for procs, runs in times.items():
        wall, elapsed, cpu = min(runs)
        print(f"{procs} process(es), 40 points, {args.images} images: wall {wall:.2f} s, in-run {elapsed:.2f} s, "
              f"CPU {cpu:.2f} s (best of {len(runs)}; all wall: {', '.join(f'{r[0]:.1f}' for r in runs)})")
    best = {p: min(r)[0] for p, r in times.items()}
    print(f"wall ratio {args.procs} / 1 processes: {best[args.procs] / best[1]:.2f}; same rows: {same}")


if __name__ == "__main__":
    main()
