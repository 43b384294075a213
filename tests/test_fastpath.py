"""The fast paths of a pass (issue 14): precision, channels-last, torch.compile, the batch size and its halving on
out-of-memory. Everything runs on the CPU with tiny models; the CUDA-only parts (TF32 flags, the measured batch
size) are checked with stand-ins for the GPU."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_w import sweep
from robustbench_w.datasets.base import EvalSet
from robustbench_w.engine.passes.batches import Batches
from robustbench_w.engine.passes.batchsize import (
    AUTO_CAP,
    CPU_BATCH,
    auto_batch_size,
    check_batch_size,
    fitting_batch,
    is_out_of_memory,
)
from robustbench_w.engine.passes.evaluate import Evaluator
from robustbench_w.engine.passes.fastpath import FastPath
from robustbench_w.engine.passes.precision import precision_context
from robustbench_w.errors import InvalidValueError
from robustbench_w.load.checkpoints import LoadedModel

# tiny random models: the chance-level warning is expected here (tests/test_normalization.py checks it)
pytestmark = pytest.mark.filterwarnings("ignore:the clean model is at chance level")

ROWS = ["error", "loss", "agreement", "weight_change"]


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 3 * 3, 5)).eval()


def tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


def images(n: int = 48) -> EvalSet:
    gen = torch.Generator().manual_seed(1)
    return EvalSet("img", torch.randn(n, 3, 8, 8, generator=gen), torch.randint(0, 5, (n,), generator=gen), 5)


def vectors(n: int = 100) -> EvalSet:
    gen = torch.Generator().manual_seed(1)
    return EvalSet("vec", torch.randn(n, 6, generator=gen), torch.randint(0, 3, (n,), generator=gen), 3)


def run(model, data, **kw) -> pd.DataFrame:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random tiny models are at chance level
        return sweep(model, data, ["noise"], [0.1, 0.3], trials=2, device="cpu", **kw)


# ------------------------------------------------------------------ precision

def test_bf16_autocasts_the_forward_pass_and_reads_outputs_as_float32():
    model, seen = tiny_cnn(), []
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    rows = run(model, images(), precision="bf16")
    assert torch.bfloat16 in seen  # the convolution ran in bfloat16
    plain = run(tiny_cnn(), images())
    assert rows.attrs["meta"]["precision"] == "bf16" and plain.attrs["meta"]["precision"] == "fp32"
    # the same points, close but not bit-equal (bf16 has an 8-bit mantissa)
    assert (rows["agreement"] - plain["agreement"]).abs().max() <= 0.15
    assert (rows["loss"] - plain["loss"]).abs().max() < 0.05
    pd.testing.assert_series_equal(rows["weight_change"], plain["weight_change"])  # weights stay float32


def test_fp32_is_the_default_and_is_exact():
    a, b = run(tiny_cnn(), images()), run(tiny_cnn(), images(), precision="fp32")
    pd.testing.assert_frame_equal(a[ROWS], b[ROWS])


def test_tf32_on_the_cpu_runs_fp32_and_says_so():
    with pytest.warns(Warning, match="tf32 has no effect on cpu"):
        rows = sweep(tiny_cnn(), images(), ["noise"], [0.1], trials=2, device="cpu", precision="tf32")
    meta = rows.attrs["meta"]
    assert meta["precision"] == "tf32" and meta["precision_effective"] == "fp32"
    assert any("no effect" in n for n in meta["notes"])
    pd.testing.assert_frame_equal(rows[ROWS], sweep(tiny_cnn(), images(), ["noise"], [0.1], trials=2,
                                                    device="cpu")[ROWS])


@pytest.mark.parametrize("precision, allowed", [("tf32", True), ("fp32", False)])
def test_tf32_flags_are_set_for_the_pass_and_restored(precision, allowed):
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    with precision_context(precision, torch.device("cuda")):
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (allowed, allowed)
    assert (matmul.allow_tf32, cudnn.allow_tf32) == before
    with pytest.raises(RuntimeError), precision_context(precision, torch.device("cuda")):
        raise RuntimeError("boom")
    assert (matmul.allow_tf32, cudnn.allow_tf32) == before


def test_unknown_precision_is_a_usage_error(run_cli):
    with pytest.raises(InvalidValueError, match="--precision must be one of fp32, tf32, bf16"):
        FastPath("fp16")
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "--precision", "fp16", "-q")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "fp16" in err


# ------------------------------------------------------------------ channels-last

def test_channels_last_gives_the_same_rows_and_converts_model_and_batches():
    model, layouts = tiny_cnn(), []
    model.register_forward_pre_hook(
        lambda m, i: layouts.append((len(i[0]), i[0].is_contiguous(memory_format=torch.channels_last))))
    rows = run(model, images(), channels_last=True)
    plain = run(tiny_cnn(), images())
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    passes = [last for n, last in layouts if n > 2]  # the probes (two inputs) check shapes only
    assert len(passes) == 5 and all(passes)  # the clean pass and 2 strengths x 2 trials, all channels-last
    assert rows.attrs["meta"]["channels_last"] is True
    pd.testing.assert_series_equal(rows["weight_change"], plain["weight_change"], rtol=1e-6)  # the same noise
    pd.testing.assert_frame_equal(rows[["error", "agreement"]], plain[["error", "agreement"]])
    assert (rows["loss"] - plain["loss"]).abs().max() < 1e-5


def test_channels_last_on_a_model_without_convolutions_warns_and_changes_nothing():
    with pytest.warns(Warning, match="no 2-D convolutions"):
        rows = sweep(tiny_mlp(), vectors(), ["noise"], [0.1], trials=2, device="cpu", channels_last=True)
    assert len(rows) == 3


# ------------------------------------------------------------------ torch.compile

class CountingBackend:
    """A torch.compile backend that counts compilations and runs the captured graph as it is."""

    __name__ = "counting"

    def __init__(self):
        self.compiles = 0

    def __call__(self, gm, example_inputs):
        self.compiles += 1
        return gm.forward


def test_compile_once_per_sweep_and_weights_written_in_place_stay_visible():
    torch._dynamo.reset()
    backend = CountingBackend()
    data = vectors(100)  # batches of 64 and 36: a graph per batch shape
    model = LoadedModel(module=tiny_mlp(), name="mlp")
    from robustbench_w.distortions import get_distortion
    from robustbench_w.engine.runs.sweep import SweepRunner, plan

    runner = SweepRunner(model, data, batch_size=64, fast=FastPath(compile=backend))
    after_clean = backend.compiles
    assert 1 <= after_clean <= 2
    points = plan([get_distortion("noise")], [0.2, 0.5, 1.0], 3)
    compiled = runner.run(points)
    assert backend.compiles == after_clean  # nine points, no recompilation
    eager = SweepRunner(LoadedModel(module=tiny_mlp(), name="mlp"), data, batch_size=64).run(points)
    for c, e in zip(compiled, eager):  # every distorted point's numbers: the graph read the written weights
        assert c["error"] == e["error"] and math.isclose(c["loss"], e["loss"], rel_tol=1e-6)
    assert len({r["error"] for r in compiled[1:]}) > 1


def test_compile_meta_and_aot_eager_backend():
    torch._dynamo.reset()
    rows = run(tiny_mlp(), vectors(), compile="aot_eager")
    plain = run(tiny_mlp(), vectors())
    assert rows.attrs["meta"]["compile"] == "aot_eager" and plain.attrs["meta"]["compile"] is None
    pd.testing.assert_frame_equal(rows[["error", "agreement"]], plain[["error", "agreement"]])


# ------------------------------------------------------------------ batch size

@pytest.mark.parametrize("value, expected", [("auto", "auto"), (None, "auto"), ("AUTO", "auto"), (7, 7), ("12", 12)])
def test_batch_size_values(value, expected):
    assert check_batch_size(value) == expected


@pytest.mark.parametrize("value", [0, -3, "big", 2.5])
def test_bad_batch_size_is_a_usage_error(value):
    with pytest.raises(InvalidValueError, match="--batch-size must be a positive number"):
        check_batch_size(value)


def test_bad_batch_size_on_the_command_line(run_cli):
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "--batch-size", "0", "-q")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--batch-size" in err


@pytest.mark.parametrize("per_input, free, n, expected", [
    (1e6, 80e9, 10_000, AUTO_CAP),  # lots of room: the cap
    (1e6, 1e9, 10_000, 256),  # 0.5 GB / 1 MB = 500 -> 256
    (1e6, 1e9, 100, 100),  # the whole set
    (1e9, 1e9, 100, 1),  # not even one fits half: one (halving says the rest)
    (0.0, 1e9, 50, 50),
])
def test_fitting_batch_is_the_largest_power_of_two_in_half_the_free_memory(per_input, free, n, expected):
    assert fitting_batch(per_input, free, n) == expected


def test_auto_batch_size_measures_on_a_gpu_and_is_1024_on_the_cpu():
    asked = []

    def peak(k):
        asked.append(k)
        return k * 2_000_000  # 2 MB per input

    assert auto_batch_size(torch.device("cpu"), 5000, peak) == CPU_BATCH and not asked
    assert auto_batch_size(torch.device("cpu"), 300, peak) == 300
    size = auto_batch_size(torch.device("cuda"), 10_000, peak, free_bytes=lambda: 4_000_000_000)
    assert asked == [16] and size == 512  # 2 GB / 2 MB = 1000 -> 512


class OutOfMemoryAbove(nn.Module):
    """A model that runs out of memory on batches larger than ``limit`` (once ``armed``)."""

    def __init__(self, inner: nn.Module, limit: int):
        super().__init__()
        self.inner, self.limit, self.armed = inner, limit, True

    def forward(self, x):
        if self.armed and len(x) > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} MiB")
        return self.inner(x)


def test_out_of_memory_halves_the_batches_and_says_so_once_per_halving():
    model = OutOfMemoryAbove(tiny_mlp(), limit=30)
    with pytest.warns(Warning) as caught:
        ev = Evaluator(model, vectors(100), batch_size=100)
        result = ev.run()
    lines = [str(w.message) for w in caught if "out of memory" in str(w.message)]
    assert lines == ["out of memory at batch size 100 on cpu: halved to 50 and retried",
                     "out of memory at batch size 50 on cpu: halved to 25 and retried"]
    assert ev.batch_size == 25 and ev.halvings == lines
    reference = Evaluator(tiny_mlp(), vectors(100), batch_size=25).run()
    assert result.values == pytest.approx(reference.values, rel=1e-6)


def test_out_of_memory_after_the_clean_pass_splits_the_kept_references():
    """Agreement and cosine compare with the clean pass's references, kept per batch: a later halving splits
    them with the batches, so the numbers equal a run that never ran out of memory."""
    model = OutOfMemoryAbove(tiny_mlp(), limit=30)
    model.armed = False
    ev = Evaluator(model, vectors(100), batch_size=64, metric=["agreement", "cosine"])
    ev.run()
    with torch.no_grad():
        model.inner[0].weight.mul_(1.5)
    model.armed = True
    with pytest.warns(Warning) as record:
        halved = ev.run()
    assert [str(w.message) for w in record] == ["out of memory at batch size 64 on cpu: halved to 32 and retried",
                                                "out of memory at batch size 32 on cpu: halved to 16 and retried"]
    reference_model = tiny_mlp()
    ref = Evaluator(reference_model, vectors(100), batch_size=16, metric=["agreement", "cosine"])
    ref.run()
    with torch.no_grad():
        reference_model[0].weight.mul_(1.5)
    expected = ref.run()
    assert halved.values == pytest.approx(expected.values, rel=1e-6) and halved.values["agreement"] < 1


def test_out_of_memory_with_one_input_per_batch_is_one_clear_error():
    model = OutOfMemoryAbove(tiny_mlp(), limit=0)
    model.armed = False  # the probe (two inputs) runs
    ev = Evaluator(model, vectors(4), batch_size=4)
    model.armed = True
    with pytest.raises(InvalidValueError, match="even with one input per batch"), pytest.warns(Warning):
        ev.run()


def test_only_out_of_memory_errors_are_retried():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_auto_batch_size_on_the_cpu_is_today_s_1024_and_is_recorded():
    rows = run(tiny_mlp(), vectors(100))
    assert rows.attrs["meta"]["batch_size"] == 100 and rows.attrs["meta"]["batch_halvings"] == []
    assert run(tiny_mlp(), vectors(100), batch_size=32).attrs["meta"]["batch_size"] == 32


def test_measured_batch_size_halves_the_first_batches(monkeypatch):
    """On a GPU ``auto`` measures a size and reaches it by halving the first cut (the cap); stand in for it."""
    import robustbench_w.engine.passes.evaluate as evaluate

    monkeypatch.setattr(evaluate, "auto_batch_size", lambda device, n, peak: 16)
    ev = Evaluator(tiny_mlp(), vectors(100), batch_size="auto")
    assert ev.batch_size == 13 and len(ev.batches) == 8  # 100 -> 50 -> 25 -> 13 (at most 16): 13s and 12s


def test_halving_keeps_every_input_once_and_in_order():
    data = vectors(11)
    batches = Batches(data, 5, torch.device("cpu"))
    cuts = batches.halve()
    assert cuts == [3, 3, None]
    assert [len(x) for x, _ in batches] == [3, 2, 3, 2, 1]
    assert torch.equal(torch.cat([x for x, _ in batches]), data.x)
    assert torch.equal(torch.cat([y for _, y in batches]), data.y)
