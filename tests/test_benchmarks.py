"""The sweep benchmark runs (in a tiny mode) and writes its JSON schema; its speed is measured in benchmarks/."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_sweep.py"


@pytest.mark.slow
def test_bench_sweep_tiny_mode_writes_the_json_schema(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(BENCH), "--cases", "tiny", "--repeats", "1", "--min-time", "0", "--device", "cpu",
                           "--steady-malloc", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert {"device", "torch", "cases"} <= set(result) and result["device"] == "cpu"
    assert result["steady_malloc"] is True and "steady malloc" in done.stdout  # it started again with the thresholds
    (case,) = result["cases"]
    assert {"name", "plain_s", "wrobust_s", "ratio", "peak_mb_1", "peak_mb_100"} <= set(case)
    assert case["plain_s"] > 0 and case["wrobust_s"] > 0
    assert case["ratio"] == pytest.approx(case["wrobust_s"] / case["plain_s"], rel=1e-2)
    assert all(math.isfinite(case[k]) and case[k] >= 0 for k in ("peak_mb_1", "peak_mb_100"))
    assert case["same_results"] is True  # the plain loop drew the same noise and got the same errors
    assert "| tiny-mlp" in done.stdout


@pytest.mark.slow
def test_bench_sweep_hardware_modes_match_their_plain_loops(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(BENCH), "--cases", "tiny", "--hardware", "redraw,converters",
                           "--repeats", "1", "--min-time", "0", "--device", "cpu", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    cases = json.loads(out.read_text())["cases"]
    assert [c["name"] for c in cases] == ["tiny-mlp (test mode), redraw", "tiny-mlp (test mode), converters"]
    assert all(c["same_results"] is True and c["plain_s"] > 0 for c in cases)  # same draws, same hooks, same errors
