"""Effective bits per weight (issue 4): exact entropies, the model figure, labelling, the CLI and the frontier."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import robustbench_w as rw
from robustbench_w import bits
from robustbench_w.errors import InvalidValueError

MODEL = "builtin:digits-mlp"
SCALES = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
FAST = settings(max_examples=25, deadline=None)


def shuffled(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))]


# ------------------------------------------------------------------ exact answers

@FAST
@given(a=SCALES, n=st.integers(1, 3000), seed=st.integers(0, 100))
def test_balanced_plus_minus_a_has_one_bit(a, n, seed):
    w = shuffled(torch.tensor([a, -a]).repeat(n), seed)
    t = bits.tensor_bits(w, exact=True)
    assert (t.bits, t.distinct, t.resolution) == (pytest.approx(1.0, abs=1e-12), 2, None)
    if n >= 2:  # the values repeat: exact by the data alone
        assert bits.tensor_bits(w) == t


@FAST
@given(a=SCALES, n=st.integers(1, 200))
def test_ternary_with_point_one_point_eight_point_one_has_0_9219_bits(a, n):
    w = shuffled(torch.tensor([-a] * n + [0.0] * (8 * n) + [a] * n))
    assert bits.tensor_bits(w).bits == pytest.approx(0.9219, abs=5e-5)
    assert bits.tensor_bits(w).bits == pytest.approx(-0.2 * math.log2(0.1) - 0.8 * math.log2(0.8), rel=1e-12)


@FAST
@given(k=st.integers(0, 12), repeat=st.integers(1, 4), seed=st.integers(0, 100))
def test_two_to_the_k_equiprobable_values_have_k_bits(k, repeat, seed):
    values = torch.randn(1 << k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w = shuffled(values.repeat(repeat), seed)
    assert bits.tensor_bits(w, exact=True).bits == pytest.approx(k, abs=1e-9)
    if repeat >= 2 and k <= 8:  # at most 256 values, each used twice: exact without being told
        assert bits.tensor_bits(w).resolution is None


@FAST
@given(value=st.floats(allow_nan=False, width=32), n=st.integers(1, 100_000))
def test_a_constant_tensor_has_zero_bits(value, n):
    t = bits.tensor_bits(torch.full((n,), value))
    assert (t.bits, t.distinct) == (0.0, 1)


def test_large_tensors_take_the_sampled_path_and_agree_with_a_full_sort():
    gen = torch.Generator().manual_seed(0)
    common = torch.tensor([-0.5, 0.0, 0.25, 0.5, 1.0])[torch.randint(0, 5, (300_000,), generator=gen)]
    rare = common.clone()
    rare[torch.randint(0, len(rare), (40,), generator=gen)] = torch.randn(40, generator=gen)  # unseen by the sample
    rare[7], rare[11] = math.nan, math.nan
    for w in (common, rare, common[:3].repeat(100_000), torch.where(common > 0, 1.0, -1.0)):
        counts = bits.value_counts(w, 1 << 16)
        v, c = torch.unique(w, return_counts=True)
        expected = c[~torch.isnan(v)]
        assert sorted(counts.tolist()) == sorted(expected.tolist())
        assert bits.tensor_bits(w).bits == pytest.approx(bits.entropy(expected), abs=1e-12)


def test_signed_zeros_are_one_value_and_nan_is_never_a_value():
    t = bits.tensor_bits(torch.tensor([-0.0, 0.0, 1.0, 1.0, math.nan, math.nan]))
    assert (t.distinct, t.resolution) == (2, None) and t.bits == pytest.approx(1.0)
    assert bits.tensor_bits(torch.tensor([1.0, -1.0] * 4 + [math.nan] * 100), exact=True).bits == pytest.approx(1.0)
    assert bits.tensor_bits(torch.full((10,), math.nan), exact=True).distinct == 0
    rows = torch.tensor([[1.0, 1.0, -1.0, -1.0, math.nan], [2.0, 2.0, 2.0, math.nan, math.nan]])
    t = bits.tensor_bits(rows, granularity="channel", exact=True)
    assert (t.groups, t.distinct) == (2, 2) and t.bits == pytest.approx((4 * 1.0 + 3 * 0.0) / 7)


def two_layer_model() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 2, bias=False), nn.ReLU(), nn.Linear(2, 6, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]]))  # 8 weights, 1 bit
        model[2].weight.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]).repeat(3).reshape(6, 2))  # 12 weights, 2 bits
    return model


def test_a_model_of_two_layers_gives_the_count_weighted_mean():
    frame = rw.effective_bits(two_layer_model())
    assert frame["bits_per_weight"].tolist() == pytest.approx([1.0, 2.0])
    assert frame["weights"].tolist() == [8, 12]
    total = frame.attrs["total"]
    assert total["bits_per_weight"] == pytest.approx((8 * 1 + 12 * 2) / 20)
    assert total["weights"] == 20 and total["resolution"] is None and total["kind"] == "exact"
    assert total["kib_entropy"] == pytest.approx(32 / 8 / 1024) and total["kib_float32"] == pytest.approx(80 / 1024)


def test_the_frame_keeps_its_contract():
    frame = rw.effective_bits(two_layer_model())
    assert list(frame.columns) == ["name", "shape", "weights", "groups", "distinct", "bits_per_weight", "scale_bits",
                                   "resolution", "storage_bits", "compression"]
    assert frame["shape"].tolist() == [(2, 4), (6, 2)] and frame["resolution"].tolist() == [None, None]
    assert frame["storage_bits"].tolist() == [32, 32] and frame["compression"].tolist() == pytest.approx([32, 16])
    assert frame["scale_bits"].isna().all() and frame["groups"].tolist() == [1, 1]  # no distortion: no scales
    assert set(frame.attrs["total"]) == {"weights", "bits_per_weight", "kind", "exact_weights", "resolution",
                                         "scale_bits", "kib_entropy", "kib_float32"}


@pytest.mark.parametrize("resolution", [1, 4, 8])
def test_a_float_tensor_is_reported_at_the_stated_resolution_and_labelled(resolution):
    w = torch.randn(100_000, generator=torch.Generator().manual_seed(1))
    t = bits.tensor_bits(w, resolution=resolution)
    assert t.resolution == resolution and t.distinct <= 2 ** resolution
    assert 0 < t.bits <= resolution
    model = nn.Linear(400, 250, bias=False)
    frame = rw.effective_bits(model, resolution=resolution)
    assert frame["resolution"].tolist() == [resolution] and frame.attrs["total"]["resolution"] == resolution
    assert frame.attrs["total"]["kind"] == "grid"


def test_the_grid_has_2_to_the_b_levels_spanning_mean_plus_minus_4_std():
    w = torch.randn(10_000, generator=torch.Generator().manual_seed(2)) * 3 + 5
    mean, std, levels = w.double().mean(), w.double().std(unbiased=False), 16
    codes = torch.floor((w.double() - mean) / (8 * std) * levels + levels / 2).clamp(0, levels - 1).long()
    counts = bits.grid_counts(w.reshape(1, -1), 4)[0]
    assert torch.equal(counts, torch.bincount(codes, minlength=levels))
    assert int(counts.sum()) == 10_000


def test_the_grid_survives_infinities_and_nans():
    w = torch.linspace(-1, 1, 1000)
    w[0], w[1], w[2] = math.inf, -math.inf, math.nan
    counts = bits.grid_counts(w.reshape(1, -1), 3)[0]
    assert int(counts.sum()) == 999 and len(counts) == 8  # the NaN is not counted
    assert int(counts[0]) >= 1 and int(counts[-1]) >= 1  # the infinities fall in the end levels
    t = bits.tensor_bits(w)
    assert t.resolution == 8 and math.isfinite(t.bits)


@pytest.mark.parametrize("draw", [
    lambda n, g: torch.randn(n, generator=g),
    lambda n, g: torch.rand(n, generator=g) * 2 - 1,
    lambda n, g: torch.randn(n, generator=g) ** 3 * 0.01 + 0.2,
], ids=["normal", "uniform", "heavy-tailed, shifted"])
def test_a_thousand_and_a_million_weights_from_one_distribution_get_the_same_bits(draw):
    small = bits.tensor_bits(draw(1_000, torch.Generator().manual_seed(3)))
    large = bits.tensor_bits(draw(1_000_000, torch.Generator().manual_seed(4)))
    assert small.resolution == large.resolution == 8  # both continuous: the rule does not depend on the size
    assert abs(small.bits - large.bits) < 0.2


def test_values_that_repeat_are_exact_at_any_size_and_values_that_barely_repeat_are_not():
    gen = torch.Generator().manual_seed(5)
    levels = torch.linspace(-1, 1, 15)
    for n in (60, 600, 600_000):  # a 4-bit quantised tensor: exact whatever its size
        t = bits.tensor_bits(levels[torch.randint(0, 15, (n,), generator=gen)])
        assert t.resolution is None and t.bits <= math.log2(15) + 1e-9
    assert bits.tensor_bits(torch.randn(100, generator=gen)).resolution == 8  # 100 distinct values: continuous
    assert bits.tensor_bits(levels[torch.randint(0, 15, (20,), generator=gen)]).resolution == 8  # barely repeat
    many = torch.randn(1000, generator=gen).repeat(4)  # 1,000 values used 4 times each: more than 256
    assert bits.tensor_bits(many).resolution == 8 and bits.tensor_bits(many, max_distinct=1000).resolution is None


def test_gaussian_channel_estimate_follows_its_formula():
    w = torch.tensor([[-2.0, 2.0, -2.0, 2.0]])  # var 4
    assert bits.gaussian_channel_bits(w, torch.tensor([[2.0]]), 0.5) == pytest.approx(0.5 * math.log2(1 + 4 / 1.0))
    assert bits.gaussian_channel_bits(w, torch.tensor([[2.0]]), 0.0) == math.inf


def test_addnorm_gets_a_separate_labelled_channel_estimate():
    frame = rw.effective_bits(two_layer_model(), "noise", 0.5, max_distinct=4)
    assert bits.CHANNEL_COLUMN in frame and bits.CHANNEL_COLUMN in frame.attrs["total"]
    assert frame["resolution"].tolist() == [8, 8]
    assert bits.CHANNEL_COLUMN not in rw.effective_bits(two_layer_model(), "sign")


# ------------------------------------------------------------------ distortions and the model

def test_distorted_figures_leave_the_model_unchanged_and_follow_the_sweep_seeding():
    model = nn.Linear(64, 32)
    before = model.weight.detach().clone()
    frame = rw.effective_bits(model, "stoch", seed=5)
    assert torch.equal(model.weight, before)
    assert frame["bits_per_weight"].iloc[0] <= 1.0
    again = rw.effective_bits(model, "stoch", seed=5)
    assert again["bits_per_weight"].tolist() == frame["bits_per_weight"].tolist()


def test_sweep_rows_of_discrete_distortions_carry_eff_bits_and_others_nan():
    rows = rw.sweep(MODEL, distortions=["sign", "noise"], strengths=None, trials=1, limit=60, seed=5)
    sign = rows[rows["distortion"] == "sign"]
    direct = rw.effective_bits(MODEL, "sign", seed=5).attrs["total"]["bits_per_weight"]
    assert sign["eff_bits"].tolist() == pytest.approx([direct])
    assert rows[rows["distortion"] != "sign"]["eff_bits"].isna().all()
    summary = rw.summarize(rows)
    assert summary[summary["distortion"] == "sign"]["eff_bits"].tolist() == pytest.approx([direct])


@pytest.mark.parametrize(("dist", "strength", "match"), [
    ("ternarize", None, "needs a strength"),
    ("ternarize", 1.5, "outside its valid range"),
    ("sign", 0.5, "takes no strength"),
    (None, 0.5, "needs a distortion"),
])
def test_bad_strengths_raise_one_clear_error(dist, strength, match):
    with pytest.raises(InvalidValueError, match=match):
        rw.effective_bits(two_layer_model(), dist, strength)


def test_a_spec_strength_is_enough_and_resolution_is_checked():
    assert rw.effective_bits(two_layer_model(), "power:beta=0.5").attrs["meta"]["strength"] == 0.5
    with pytest.raises(InvalidValueError, match="resolution"):
        rw.effective_bits(two_layer_model(), resolution=0)


# ------------------------------------------------------------------ error vs. bits

def summary_of(points: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"spec": s, "distortion": s, "strength_name": "t", "strength": x, "eff_bits": b,
                          "error_mean": e} for s, x, b, e in points])


def test_lowest_bits_meeting_the_error_and_the_frontier():
    summary = summary_of([("none", math.nan, math.nan, 0.02), ("tern", 0.1, 1.5, 0.03), ("tern", 0.3, 0.9, 0.05),
                          ("tern", 0.5, 0.2, 0.40), ("sign", math.nan, 1.0, 0.08), ("addnorm", 0.1, math.nan, 0.01)])
    table = bits.lowest_bits(summary, 0.06).set_index("spec")
    assert list(table.index) == ["tern", "sign"]
    assert (table.loc["tern", "strength"], table.loc["tern", "met"]) == (0.3, True)
    assert not table.loc["sign", "met"] and table.loc["sign", "error_mean"] == 0.08
    assert bits.frontier(summary)["eff_bits"].tolist() == [0.2, 0.9, 1.5]
    assert bits.lowest_bits(summary.drop(columns="eff_bits"), 0.1).empty


# ------------------------------------------------------------------ the command line

def bits_json(run_cli, tmp_path, *args: str) -> dict:
    out = tmp_path / "bits.json"
    code, stdout, err = run_cli("bits", MODEL, *args, "-o", out)
    assert code == 0, err
    assert "total" in stdout
    return json.loads(out.read_text())


def test_cli_sign_reports_at_most_one_bit_for_every_layer(run_cli, tmp_path):
    doc = bits_json(run_cli, tmp_path, "-d", "sign")
    assert set(doc) == {"meta", "layers", "total"}
    assert [set(layer) for layer in doc["layers"]] == [{"name", "shape", "weights", "groups", "distinct",
                                                       "bits_per_weight", "scale_bits", "resolution"}] * 3
    assert all(layer["bits_per_weight"] <= 1.0 and layer["resolution"] is None for layer in doc["layers"])
    assert doc["total"]["weights"] == 25_856 and doc["meta"]["distortion"] == "sign"


def test_cli_ternarize_0_7_is_below_one_bit_in_total(run_cli, tmp_path):
    doc = bits_json(run_cli, tmp_path, "-d", "ternarize", "--strength", "0.7")
    assert doc["total"]["bits_per_weight"] < 1.0


def test_cli_labels_continuous_tensors_in_every_output(run_cli, tmp_path):
    doc = bits_json(run_cli, tmp_path, "--max-distinct", "1000", "--resolution", "6")
    assert {layer["resolution"] for layer in doc["layers"]} == {6} and doc["total"]["resolution"] == 6
    code, out, _ = run_cli("bits", MODEL, "--max-distinct", "1000", "--resolution", "6", "-o", tmp_path / "b.csv")
    assert code == 0 and "grid: 3 of 3 tensors are continuous" in out and "2^6 levels" in out
    assert set(pd.read_csv(tmp_path / "b.csv")["resolution"]) == {6}


@pytest.mark.parametrize(("args", "needle"), [
    (["-d", "ternarize"], "needs a strength"),
    (["-d", "ternarize", "--strength", "1.5"], "outside its valid range"),
    (["-d", "sign", "--strength", "1"], "takes no strength"),
    (["--strength", "1"], "needs a distortion"),
    (["-o", "bits.txt"], "unknown output format"),
    (["--resolution", "0"], "resolution"),
])
def test_cli_usage_errors_exit_2_with_one_line(run_cli, args, needle):
    code, out, err = run_cli("bits", MODEL, *args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_spec_strength_needs_no_flag(run_cli):
    code, out, err = run_cli("bits", MODEL, "-d", "power:beta=0.5")
    assert code == 0, err
    assert "power beta=0.5" in out


def test_cli_sweep_ternarize_with_target_error_prints_the_lowest_bits_point(run_cli, tmp_path):
    out_file = tmp_path / "r.json"
    code, out, err = run_cli("sweep", MODEL, "-d", "ternarize", "-d", "sign", "--target-error", "6%", "-o", out_file)
    assert code == 0, err
    assert "lowest bits meeting error <= 6.00%" in out
    doc = json.loads(out_file.read_text())
    tern = [r for r in doc["summary"] if r["distortion"] == "ternarize"]
    ok = [r for r in tern if r["error_mean"] <= 0.06]
    best = min(ok, key=lambda r: r["eff_bits"])
    assert f"ternarize at t={best['strength']:g}: {best['eff_bits']:.3f} bits/w" in out
    assert len(tern) == 10 and all(r["eff_bits"] is not None for r in tern)
    assert doc["meta"]["target_error"] == 0.06


def test_cli_target_error_says_when_no_point_meets_it(run_cli):
    code, out, err = run_cli("sweep", MODEL, "-d", "round", "--target-error", "0.001", "--limit", "60")
    assert code == 0, err
    assert "round: no point meets it (lowest error" in out
    code, _, err = run_cli("sweep", MODEL, "-d", "round", "--target-error", "2")
    assert code == 2 and "not an error rate" in err


# ------------------------------------------------------------------ the code per scale group (issue 11)

def conv_model(seed: int = 0) -> nn.Module:
    """Two conv layers and a linear one, Gaussian weights of different scales per output channel."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, bias=False), nn.Conv2d(16, 32, 3, bias=False), nn.Flatten(),
                          nn.Linear(32, 10, bias=False))
    with torch.no_grad():
        for layer in (model[0], model[1], model[3]):
            scales = torch.rand(layer.weight.shape[0], generator=gen) * 10 + 0.01  # channels differ a lot
            shape = (-1,) + (1,) * (layer.weight.dim() - 1)
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * scales.reshape(shape))
    return model


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_sign_is_at_most_one_bit_in_every_granularity(granularity):
    frame = rw.effective_bits(conv_model(), f"sign:granularity={granularity}")
    assert (frame["bits_per_weight"] <= 1.0 + 1e-12).all() and frame["resolution"].isna().all()
    assert frame.attrs["total"]["bits_per_weight"] <= 1.0 and frame["distinct"].max() == 2
    groups = [16, 32, 10] if granularity == "channel" else [1, 1, 1]
    assert frame["groups"].tolist() == groups
    assert frame["scale_bits"].tolist() == pytest.approx([g * 32 / n for g, n in zip(groups, frame["weights"])])


@pytest.mark.parametrize("b", [2, 4, 8])
def test_quantize_per_channel_is_at_most_b_bits_with_its_scales_beside_it(b):
    frame = rw.effective_bits(conv_model(), "quantize:granularity=channel", b)
    assert (frame["bits_per_weight"] <= math.log2(2 ** b - 1) + 1e-9).all()
    assert frame.attrs["total"]["bits_per_weight"] <= b
    total = frame.attrs["total"]
    assert total["scale_bits"] == pytest.approx((16 + 32 + 10) * 32 / total["weights"])
    assert total["kind"] == "exact" and (frame["distinct"] <= 2 ** b - 1).all()


def test_per_channel_bits_are_the_entropy_within_each_channel():
    w = torch.tensor([[1.0, 1.0, -1.0, -1.0], [5.0, 5.0, 5.0, 5.0], [0.0, 2.0, 4.0, 6.0]])
    t = bits.tensor_bits(w, granularity="channel", exact=True)
    assert (t.groups, t.distinct, t.bits) == (3, 4, pytest.approx((4 * 1 + 4 * 0 + 4 * 2) / 12))
    assert bits.tensor_bits(w, exact=True).bits == pytest.approx(bits.entropy(torch.tensor([2, 2, 4, 1, 1, 1, 1])))


def test_power_is_discrete_at_beta_zero_only():
    dist = rw.get_distortion("power")
    assert dist.is_discrete_at(0.0) and not dist.is_discrete_at(0.5) and not dist.is_discrete_at(1.0)
    model = conv_model()
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = 0.0  # a zero weight stays zero: three values
    at_zero = rw.effective_bits(model, "power", 0.0)
    assert at_zero["resolution"].isna().all() and (at_zero["distinct"] <= 3).all()
    assert at_zero.attrs["total"]["bits_per_weight"] <= math.log2(3)
    assert rw.effective_bits(model, "power", 0.5).attrs["total"]["kind"] == "grid"


def test_a_total_over_exact_and_grid_tensors_says_so(run_cli, tmp_path):
    model = nn.Sequential(nn.Linear(300, 200, bias=False), nn.Linear(200, 10, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.round(model[0].weight * 40) / 40)  # quantised: few values that repeat
    frame = rw.effective_bits(model)
    assert frame["resolution"].tolist() == [None, 8]
    total = frame.attrs["total"]
    assert (total["kind"], total["exact_weights"], total["resolution"]) == ("mixed", 60_000, 8)
    path = tmp_path / "mixed.pt"
    torch.save(model, path)
    code, out, err = run_cli("bits", path, "--trust-checkpoint")
    assert code == 0, err
    assert "mixed: the total adds exact figures (60,000 weights) and grid figures (2,000 weights)" in out
    total_row = next(line for line in out.splitlines() if line.startswith("total "))
    assert total_row.rstrip().endswith("mixed")


def test_cli_per_channel_sign_and_quantize_report_code_bits_and_scales(run_cli, tmp_path):
    doc = bits_json(run_cli, tmp_path, "-d", "sign:granularity=channel")
    assert all(layer["bits_per_weight"] <= 1.0 and layer["groups"] > 1 for layer in doc["layers"])
    assert doc["total"]["bits_per_weight"] <= 1.0 and doc["total"]["scale_bits"] > 0
    code, out, err = run_cli("bits", MODEL, "-d", "quantize:granularity=channel", "--strength", "8")
    assert code == 0, err
    assert "scales" in out and "side information" in out and "per channel" in out
    total_row = next(line for line in out.splitlines() if line.startswith("total "))
    assert float(total_row.split("│")[4]) <= 8.0


def test_sweep_eff_bits_are_code_bits_per_scale_group_with_scales_beside_them():
    rows = rw.sweep(MODEL, distortions=["sign:granularity=channel", "quantize:granularity=channel,bits=8",
                                        "power"], strengths=None, trials=1, limit=60)
    sign = rows[rows["spec"] == "sign:granularity=channel"].iloc[0]
    assert sign["eff_bits"] <= 1.0 and sign["scale_bits"] > 0
    direct = rw.effective_bits(MODEL, "sign:granularity=channel").attrs["total"]
    assert (sign["eff_bits"], sign["scale_bits"]) == pytest.approx((direct["bits_per_weight"], direct["scale_bits"]))
    assert rows[rows["distortion"] == "quantize"]["eff_bits"].iloc[0] <= 8.0
    power = rows[rows["distortion"] == "power"].set_index("strength")["eff_bits"]
    assert power[0.0] <= math.log2(3) and power.drop(index=0.0).isna().all()


def test_target_error_takes_per_channel_points_by_their_code_bits(run_cli):
    code, out, err = run_cli("sweep", MODEL, "-d", "quantize:granularity=channel", "-s", "8,4,2", "--target-error",
                             "50%", "--limit", "100")
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.strip().startswith("quantize:granularity=channel at bits="))
    assert float(line.split(":")[2].split("bits/w")[0]) <= int(line.split("bits=")[1].split(":")[0])


# ------------------------------------------------------------------ the table at 80 columns

def long_named_model() -> nn.Module:
    """Names as deep as a ResNet's and a transformer's, with their distinguishing parts in the middle."""
    gen = torch.Generator().manual_seed(7)
    root = nn.Module()
    for stage in ("layer3", "layer4"):
        blocks = nn.ModuleList()
        for _ in range(2):
            block = nn.Module()
            block.conv1, block.downsample = nn.Conv2d(4, 4, 3, bias=False), nn.Sequential(nn.Conv2d(4, 4, 1, bias=False))
            blocks.append(block)
        setattr(root, stage, blocks)
    root.encoder = nn.Module()
    root.encoder.attention_output_dense = nn.Linear(8, 8, bias=False)
    with torch.no_grad():
        for p in root.parameters():
            p.copy_(torch.round(torch.randn(p.shape, generator=gen) * 4) / 4)
    return root


def test_bits_table_snapshot_at_80_columns(snapshot):
    from rich.console import Console

    from robustbench_w.report.bits import render_bits

    frame = rw.effective_bits(long_named_model(), "quantize:granularity=channel", 4)
    frame.attrs["meta"].update(model="model.pt", elapsed_s=0.0)
    console = Console(record=True, width=80, force_terminal=False, color_system=None)
    render_bits(frame, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    names = [line.split("│")[0].strip() for line in text.splitlines() if "│" in line][:-1]
    assert len(set(names)) == len(names) == 9  # every layer can be told from the others
    snapshot("bits_table_80.txt", text)
