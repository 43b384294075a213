"""The sweep engine: rows, seeds, trials, restoring, non-finite outputs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_w import summarize, sweep
from robustbench_w.datasets.base import EvalSet
from robustbench_w.distortions import DISTORTIONS, get_distortion, register_distortion
from robustbench_w.distortions.base import Range
from robustbench_w.engine.weights.perturb import WeightPatch
from robustbench_w.engine.runs.sweep import SweepRunner, plan
from robustbench_w.engine.weights.targets import select_targets
from robustbench_w.errors import InvalidValueError
from robustbench_w.load.checkpoints import LoadedModel

# tiny random models: the chance-level warning is expected here (tests/test_normalization.py checks it)
pytestmark = pytest.mark.filterwarnings("ignore:the clean model is at chance level")

SPEC_COLUMNS = ["model", "dataset", "distortion", "spec", "strength", "trial", "seed", "n", "accuracy", "error",
                "loss", "agreement", "weight_change"]


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 3)).eval()


def tiny_data(n: int = 60, labels: bool = True) -> EvalSet:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen) if labels else None
    return EvalSet("tiny", x, y, 3)


def test_rows_have_the_spec_columns_and_a_clean_row_first():
    rows = sweep(tiny_model(), tiny_data(), ["noise"], [0.0, 0.5], trials=2, device="cpu")
    assert list(rows.columns[: len(SPEC_COLUMNS) + 1]) == SPEC_COLUMNS[:4] + ["strength_name"] + SPEC_COLUMNS[4:]
    clean = rows.iloc[0]
    assert clean.distortion == "none" and clean.agreement == 1.0 and clean.weight_change == 0.0
    assert len(rows) == 1 + 1 + 2  # clean, identity point once, two trials at 0.5
    at_zero = rows[(rows.distortion == "addnorm") & (rows.strength == 0.0)]
    assert at_zero.error.tolist() == [clean.error] and at_zero.weight_change.tolist() == [0.0]


def test_identity_points_take_the_clean_pass_instead_of_running_it_again(monkeypatch):
    from robustbench_w.engine.passes.evaluate import Evaluator

    passes = []
    run = Evaluator.run
    monkeypatch.setattr(Evaluator, "run", lambda self: passes.append(1) or run(self))
    rows = sweep(tiny_model(), tiny_data(), ["noise", "multunif", "power"], None, trials=2, device="cpu")
    identity = rows[[get_distortion(s).is_identity(x) for s, x in zip(rows.spec, rows.strength)]]
    assert len(identity) == 3  # sigma 0, gamma 1, beta 1 of the default grids
    assert len(passes) == len(rows) - len(identity)  # the clean pass, then one per point that changes a weight
    metrics = ["n", "accuracy", "error", "loss", "agreement", "nonfinite"]
    clean = rows.iloc[0][metrics].tolist()
    assert all(r == clean for r in identity[metrics].values.tolist())


def test_same_seed_same_numbers_other_seed_other_numbers():
    args = (tiny_model(), tiny_data(), ["noise", "stoch"], [0.3])
    a = sweep(*args, trials=3, seed=1, device="cpu")
    b = sweep(*args, trials=3, seed=1, device="cpu")
    c = sweep(*args, trials=3, seed=2, device="cpu")
    pd.testing.assert_frame_equal(a, b)
    assert not a.weight_change.equals(c.weight_change)


def test_deterministic_points_run_once_whatever_trials():
    rows = sweep(tiny_model(), tiny_data(), ["sign", "power"], None, trials=5, device="cpu")
    counts = rows.groupby(["spec", "strength"], dropna=False).size()
    assert set(counts) == {1}
    assert len(rows[rows.spec == "power"]) == len(get_distortion("power").info.grid)


def test_random_points_run_every_trial_with_different_draws():
    rows = sweep(tiny_model(), tiny_data(), ["multunif"], [0.5], trials=4, device="cpu")
    point = rows[rows.spec == "multunif"]
    assert point.trial.tolist() == [0, 1, 2, 3]
    assert point.weight_change.nunique() == 4


def test_summary_gives_t_interval_over_trials():
    rows = sweep(tiny_model(), tiny_data(), ["noise"], [1.0], trials=4, device="cpu")
    summary = summarize(rows)
    s = summary[summary.spec == "addnorm"].iloc[0]
    errs = rows[rows.spec == "addnorm"].error
    assert s.trials == 4 and s.error_mean == pytest.approx(errs.mean()) and s.error_std == pytest.approx(errs.std())
    half = 3.182446305284263 * errs.std() / 2  # t_{0.975, 3} * s / sqrt(4)
    assert s.error_ci_low == pytest.approx(max(0.0, errs.mean() - half))
    assert s.error_ci_high == pytest.approx(min(1.0, errs.mean() + half))
    clean = summary[summary.distortion == "none"].iloc[0]
    assert clean.error_ci_low == clean.error_ci_high == clean.error_mean


def test_model_is_restored_and_never_copied():
    model = tiny_model()
    before = {k: (v.data_ptr(), v.clone()) for k, v in model.state_dict().items()}
    sweep(model, tiny_data(), ["noise", "sign", "bitflip"], None, trials=2, device="cpu")
    for k, v in model.state_dict().items():
        assert v.data_ptr() == before[k][0] and torch.equal(v, before[k][1])


def test_weights_are_restored_when_evaluation_raises():
    model = tiny_model()
    saved = model[1].weight.detach().clone()
    patch = WeightPatch(select_targets(model))
    with pytest.raises(RuntimeError, match="boom"):
        with patch.applied(get_distortion("sign"), math.nan):
            assert not torch.equal(model[1].weight, saved)
            raise RuntimeError("boom")
    assert torch.equal(model[1].weight, saved)


def test_noise_is_not_correlated_across_layers():
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(model[0].weight)
    patch = WeightPatch(select_targets(model))
    out = dict(patch.distorted(get_distortion("noise"), 0.5, seed=0, trial=0))
    assert not torch.equal(out["0.weight"], out["1.weight"])


def test_default_targets_are_conv_and_linear_weights_only():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))
    assert [n for n, _ in select_targets(model)] == ["0.weight", "3.weight"]
    assert [n for n, _ in select_targets(model, include=["*.bias"])] == ["0.bias", "1.bias", "3.bias"]
    assert [n for n, _ in select_targets(model, exclude=["3.*"])] == ["0.weight"]
    with pytest.raises(InvalidValueError, match="no parameters selected"):
        select_targets(model, include=["nothing*"])


def test_non_finite_outputs_count_as_errors_not_crashes():
    with DISTORTIONS.isolated():
        @register_distortion("poison", formula="nan", values="nan", reference="test", strength="p",
                             valid=Range(0, 1), grid=(1.0,))
        def poison(w, p, a, gen):
            return torch.full_like(w, math.nan)

        rows = sweep(tiny_model(), tiny_data(), ["poison"], None, device="cpu")
    bad = rows[rows.distortion == "poison"].iloc[0]
    assert bad.error == 1.0 and bad.nonfinite == bad.n and bad.agreement == 0.0 and math.isnan(bad.loss)


def test_unlabelled_data_reports_agreement_only():
    rows = sweep(tiny_model(), tiny_data(labels=False), ["noise"], [0.5], trials=2, device="cpu")
    assert rows.error.isna().all() and rows.agreement.notna().all()
    summarize(rows)  # no crash on NaN errors


def test_plan_rejects_zero_trials_and_bad_strengths():
    with pytest.raises(InvalidValueError, match="trials"):
        plan([get_distortion("noise")], None, 0)
    with pytest.raises(InvalidValueError, match="valid range"):
        plan([get_distortion("noise")], [-0.1], 1)


def test_runner_row_for_a_loaded_model_names_model_and_dataset():
    runner = SweepRunner(LoadedModel(tiny_model(), "m.pt"), tiny_data(), device="cpu")
    row = runner.clean_row(seed=3)
    assert (row["model"], row["dataset"], row["seed"], row["spec"]) == ("m.pt", "tiny", 3, "none")


def test_the_probe_batch_runs_the_model_once_per_sweep():
    """``load_inputs`` probes that model and data fit; the evaluator plans its task from that same probe."""
    model = tiny_model()
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda m, args: sizes.append(int(args[0].shape[0])))
    sweep(model, tiny_data(60), ["sign"], None, trials=1, batch_size=30, device="cpu")
    assert sizes.count(2) == 1  # the probe: two inputs; every pass runs batches of 30
    assert sizes.count(30) == 4  # the clean pass and the sign point, two batches each
