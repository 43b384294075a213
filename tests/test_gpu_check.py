"""``benchmarks/gpu_check.sh`` runs as it is (here on the CPU at tiny sizes) and prints the table of SPEC 6."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu_and_prints_the_table(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--n", "4",
                           "--points", "2", "--repeats", "1", "--batch-size", "2", "--perturb-repeats", "2",
                           "--compile-backend", "eager", "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    assert "CIFAR ResNet-18 over 4 random 32x32 images per pass" in text
    configs = re.findall(r"^\| (fp32|tf32|bf16[^|]*?) \| 2 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", text, re.M)
    assert configs == ["fp32", "tf32", "bf16", "bf16 + channels-last", "bf16 + channels-last + compile"]
    assert len(re.findall(r"^\| sweep, [^|]+ \| 2 \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", text, re.M)) == 2
    assert re.search(r"perturb \+ restore of 11,1\d\d,\d\d\d weights .*median [\d.]+ ms", text)
    assert "--batch-size auto chose 4" in text
    doc = json.loads(out.read_text())
    assert doc["device"] == "cpu" and len(doc["passes"]) == 5 and all(r["ratio"] > 0 for r in doc["passes"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
def test_gpu_check_refuses_a_missing_gpu_in_one_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "no CUDA device here" in done.stderr


@pytest.mark.slow
def test_gpu_check_large_case_runs_on_the_cpu_at_small_sizes():
    """``gpu_check.sh --large`` (the 1 B bf16 case on a GPU) at tiny sizes on the CPU: every mode, same rows."""
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--large", "--device", "cpu",
                           "--hidden", "64", "--layers", "2", "--vocab", "128", "--windows", "2", "--seq-len", "16"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-2000:]
    for mode in ("plain", "device", "host", "none"):
        assert f"| {mode} |" in done.stdout
    assert done.stdout.count("| True |") == 3  # host and none give device's rows
