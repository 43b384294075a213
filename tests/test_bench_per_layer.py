"""The per-layer benchmark runs, its two FLOP counts agree, and the reuse saves on the CNN chain."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_per_layer.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_per_layer", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_counts_what_the_layer_shapes_predict_and_saves_on_a_cnn(bench, capsys):
    (result,) = bench.main(["--quick", "--only", "cnn", "--threads", "1"])  # also checks the rows are equal
    flops, planned = result["flops"], result["planned"]
    for reuse in (False, True):  # the counter sees the probe and a few small ops besides the layers
        assert planned[reuse] <= flops[reuse] <= 1.02 * planned[reuse]
    assert flops[False] / flops[True] >= 2.0 and result["units"] == 8 and len(result["reused"]) == 7
    assert "FLOPs counted" in capsys.readouterr().out


def test_an_mlp_of_equal_layers_cannot_save_more_than_2n_over_n_plus_1(bench):
    model, shape = bench.mlp(64)
    points = 4
    naive = bench.planned_flops(model, shape, 10, points, False)
    reused = bench.planned_flops(model, shape, 10, points, True)
    assert naive / reused < 2 * 8 / 9
