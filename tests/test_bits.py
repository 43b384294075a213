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
    t = bits.tensor_bits(w)
    assert (t.bits, t.distinct, t.resolution) == (pytest.approx(1.0, abs=1e-12), 2, None)


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
    assert bits.tensor_bits(w).bits == pytest.approx(k, abs=1e-9)


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
        nan = torch.isnan(v)
        expected = torch.cat([c[~nan], c[nan].sum().reshape(1)]) if nan.any() else c
        assert sorted(counts.tolist()) == sorted(expected.tolist())
        assert bits.tensor_bits(w).bits == pytest.approx(bits.entropy(expected), abs=1e-12)


def test_signed_zeros_are_one_value_and_nans_are_one_value():
    t = bits.tensor_bits(torch.tensor([-0.0, 0.0, 1.0, 1.0, math.nan, math.nan]))
    assert t.distinct == 3 and t.bits == pytest.approx(math.log2(3))


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
    assert total["weights"] == 20 and total["resolution"] is None
    assert total["kib_entropy"] == pytest.approx(32 / 8 / 1024) and total["kib_float32"] == pytest.approx(80 / 1024)


def test_the_frame_keeps_its_contract():
    frame = rw.effective_bits(two_layer_model())
    assert list(frame.columns) == ["name", "shape", "weights", "distinct", "bits_per_weight", "resolution",
                                   "storage_bits", "compression"]
    assert frame["shape"].tolist() == [(2, 4), (6, 2)] and frame["resolution"].tolist() == [None, None]
    assert frame["storage_bits"].tolist() == [32, 32] and frame["compression"].tolist() == pytest.approx([32, 16])
    assert set(frame.attrs["total"]) == {"weights", "bits_per_weight", "resolution", "kib_entropy", "kib_float32"}


@pytest.mark.parametrize("resolution", [1, 4, 8])
def test_a_float_tensor_is_reported_at_the_stated_resolution_and_labelled(resolution):
    w = torch.randn(100_000, generator=torch.Generator().manual_seed(1))
    t = bits.tensor_bits(w, resolution=resolution)
    assert t.resolution == resolution and t.distinct <= 2 ** resolution
    assert 0 < t.bits <= resolution
    model = nn.Linear(400, 250, bias=False)
    frame = rw.effective_bits(model, resolution=resolution)
    assert frame["resolution"].tolist() == [resolution] and frame.attrs["total"]["resolution"] == resolution


def test_the_grid_is_round_to_nearest_of_2_to_the_b_levels_over_plus_minus_max():
    w = torch.randn(10_000, generator=torch.Generator().manual_seed(2))
    a, levels = float(w.abs().max()), 16
    codes = torch.round((w.double() / a + 1) * (levels - 1) / 2).long()
    assert bits.grid_counts(w, 4)[:levels].tolist() == torch.bincount(codes, minlength=levels).tolist()


def test_the_grid_survives_infinities_and_nans():
    w = torch.linspace(-1, 1, 1000)
    w[0], w[1], w[2] = math.inf, -math.inf, math.nan
    counts = bits.grid_counts(w, 3)
    assert int(counts.sum()) == 1000 and int(counts[-1]) == 1 and int(counts[7]) >= 2
    w[0], w[1] = 0.0, 0.0  # NaN alone
    assert int(bits.grid_counts(w, 3)[-1]) == 1 and int(bits.grid_counts(w, 3)[:-1].sum()) == 999


def test_dense_small_tensors_stay_exact_below_the_limit_and_go_to_the_grid_above_it():
    w = torch.randn(5000, generator=torch.Generator().manual_seed(3))
    assert bits.tensor_bits(w).resolution is None  # 5000 distinct values <= 2^16: exact (and about log2 5000)
    assert bits.tensor_bits(w, max_distinct=1000).resolution == 8


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
    assert [set(layer) for layer in doc["layers"]] == [{"name", "shape", "weights", "distinct", "bits_per_weight",
                                                       "resolution"}] * 3
    assert all(layer["bits_per_weight"] <= 1.0 and layer["resolution"] is None for layer in doc["layers"])
    assert doc["total"]["weights"] == 25_856 and doc["meta"]["distortion"] == "sign"


def test_cli_ternarize_0_7_is_below_one_bit_in_total(run_cli, tmp_path):
    doc = bits_json(run_cli, tmp_path, "-d", "ternarize", "--strength", "0.7")
    assert doc["total"]["bits_per_weight"] < 1.0


def test_cli_labels_continuous_tensors_in_every_output(run_cli, tmp_path):
    doc = bits_json(run_cli, tmp_path, "--max-distinct", "1000", "--resolution", "6")
    assert {layer["resolution"] for layer in doc["layers"]} == {6} and doc["total"]["resolution"] == 6
    code, out, _ = run_cli("bits", MODEL, "--max-distinct", "1000", "--resolution", "6", "-o", tmp_path / "b.csv")
    assert code == 0 and "6-bit grid" in out and "quantised to 2^6" in out
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
