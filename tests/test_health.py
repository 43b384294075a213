"""A broken model never passes (issue 10): non-finite weights and clean passes are reported before any sweep,
a non-finite row never agrees, ``gate`` fails such a model whatever the policy says, ``bits`` does not count
NaN as a value, and a diverging ``train`` writes nothing."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from broken_inputs import BUILTIN, policy_text, write_nonfinite
from torch import nn

from robustbench_w.bits import effective_bits
from robustbench_w.datasets.base import EvalSet
from robustbench_w.engine.passes.evaluate import Evaluator
from robustbench_w.engine.weights.health import (
    Health,
    check_model,
    nonfinite_counts,
    nonfinite_rows,
    weights_text,
)
from robustbench_w.errors import InvalidValueError, WrobustWarning
from robustbench_w.paper.train import train

# The healthy built-in model fails this policy (its error rises by about 0.09 at sigma 0.1); a model with one
# NaN weight used to pass it: its clean error is 100%, so the drop is negative and the "agreement" was 100%.
POLICY = policy_text(max_drop=0.05, min_agreement=0.5)


@pytest.fixture(scope="module", params=["nan", "inf"])
def broken(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("broken") / f"{request.param}.pt"
    return write_nonfinite(path, float(request.param))


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


def test_gate_fails_a_broken_model_with_its_own_verdict(run_cli, broken, policy, tmp_path):
    junit, out = tmp_path / "gate.xml", tmp_path / "gate.json"
    code, stdout, err = run_cli("gate", broken, "--policy", policy, "--device", "cpu", "--junit", junit, "-o", out)
    assert code == 1, err
    assert "FAIL clean model: 1 non-finite weight in 1.weight" in stdout
    assert "gate FAILED: clean model: 1 non-finite weight in 1.weight" in stdout
    assert "PASS" not in stdout  # the error drop from a 100%-error clean model is not judged, so not passed
    assert "error drop: not judged: the clean model is broken" in stdout
    doc = json.loads(out.read_text())
    assert doc["gate"]["passed"] is False and doc["gate"]["clean_model"]["nonfinite_weights"] == {"1.weight": 1}
    assert 'name="clean model"' in junit.read_text() and "BrokenModel" in junit.read_text()


def test_the_healthy_model_fails_the_same_policy_on_its_requirement(run_cli, policy):
    code, stdout, _ = run_cli("gate", BUILTIN, "--policy", policy, "--device", "cpu", "-q")
    assert code == 1 and "clean model" not in stdout and "requirements not met" in stdout


def test_sweep_warns_before_the_sweep_and_records_it(run_cli, broken, tmp_path):
    out = tmp_path / "rows.json"
    code, _, err = run_cli("sweep", broken, "-d", "noise", "-s", "0.1", "--trials", "2", "--device", "cpu", "-o", out)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "wrobust: warning: broken model: 1 non-finite weight in 1.weight; non-finite outputs for ")
    assert lines[0].endswith(" of 355 inputs of the clean pass: its results are not meaningful")
    health = json.loads(out.read_text())["meta"]["health"]
    bad = health["nonfinite_inputs"]
    assert health["ok"] is False and bad > 0 and health["nonfinite_weights"] == {"1.weight": 1}
    rows = pd.DataFrame(json.loads(out.read_text())["rows"])
    assert (rows["agreement"] <= (355 - bad) / 355).all()  # no non-finite clean row agrees with anything
    assert rows["agreement"].iloc[0] == (355 - bad) / 355


def test_the_python_api_warns_too(broken):
    from robustbench_w.engine.runs.sweep import sweep

    with pytest.warns(WrobustWarning, match="broken model"):
        rows = sweep(str(broken), distortions=["sign"], device="cpu")
    assert rows.attrs["meta"]["health"]["nonfinite_weights"] == {"1.weight": 1}


class HalfBroken(nn.Module):
    """Outputs NaN for the inputs whose first feature is negative, whatever its weights."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        out = self.fc(x)
        return torch.where(x[:, :1] < 0, torch.full_like(out, math.nan), out)


def test_a_non_finite_row_never_agrees():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 1.0], [-2.0, 1.0]])
    data = EvalSet("four", x, torch.tensor([0, 1, 2, 0]), 3)
    model = HalfBroken().eval()
    evaluator = Evaluator(model, data, batch_size=2)
    clean = evaluator.run()
    assert clean.nonfinite == 2 and clean.agreement == 0.5  # the clean pass's own non-finite rows do not agree
    again = evaluator.run()  # the same two rows are non-finite again: -1 == -1 must not count
    assert again.agreement == 0.5
    with torch.no_grad():
        model.fc.weight.fill_(math.nan)
    assert evaluator.run().agreement == 0.0


def test_health_names_the_tensors_and_counts_values():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[0, :3] = math.nan
        model[2].bias[1] = math.inf
        model[1].running_var[0] = math.nan
    health = check_model(model)
    assert health.nonfinite_weights == {"0.weight": 3, "2.bias": 1, "1.running_var": 1}
    assert health.problem() == "5 non-finite weights in 3 tensors: 0.weight (3), 2.bias (1), 1.running_var (1)"
    assert check_model(nn.Linear(2, 2)).ok and Health().problem() == ""
    assert weights_text({"fc1.weight": 12}) == "12 non-finite weights in fc1.weight"
    assert nonfinite_counts([("ints", torch.tensor([1, 2]))]) == {}


def test_bits_leaves_non_finite_values_out_of_the_counts(broken):
    with pytest.warns(WrobustWarning, match="1 non-finite weight in 1.weight"):
        frame = effective_bits(str(broken))
    first = frame.set_index("name").loc["1.weight"]
    assert first["nonfinite"] == 1 and first["weights"] == 128 * 64 - 1
    clean = effective_bits(BUILTIN).set_index("name").loc["1.weight"]
    assert first["distinct"] <= clean["distinct"]  # NaN is not one more distinct value
    assert any("left out of the counts" in n for n in frame.attrs["meta"]["notes"])
    assert math.isfinite(frame.attrs["total"]["bits_per_weight"])


def test_training_that_diverges_stops_and_writes_nothing(run_cli, tmp_path):
    with pytest.raises(InvalidValueError, match="training diverged: the loss is nan in epoch 1 of 3"):
        train(epochs=3, lr=1e30, device="cpu")
    out = tmp_path / "model.pt"
    code, _, err = run_cli("train", "--epochs", "3", "--lr", "1e30", "--device", "cpu", "-q", "-o", out)
    assert code == 2 and "training diverged" in err and not out.exists()
    assert not list(tmp_path.iterdir())  # no temporary file either


def test_weights_whose_sum_overflows_are_counted_value_by_value():
    from robustbench_w.engine.weights.health import nonfinite_counts

    huge = torch.full((1000,), 3e38)  # every value finite, the float32 sum is not
    broken = torch.ones(5)
    broken[2] = float("nan")
    assert nonfinite_counts([("huge", huge), ("ok", torch.ones(3)), ("broken", broken)]) == {"broken": 1}


def test_nan_in_the_inputs_is_blamed_on_the_data_not_the_model():
    from robustbench_w.datasets.batches import from_batches
    from robustbench_w.engine.runs.sweep import sweep

    torch.manual_seed(0)
    model = nn.Linear(4, 3).eval()
    x = torch.randn(8, 4)
    x[5, 2] = math.nan
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    with pytest.warns(WrobustWarning) as caught:
        rows = sweep(model, EvalSet("eight", x, y, 3), ["noise"], [0.1], trials=1, device="cpu")
    lines = [str(w.message) for w in caught if "broken" in str(w.message)]
    assert lines == ["broken evaluation data: 1 of 8 inputs of the evaluation set hold NaN or Inf; non-finite "
                     "outputs for 1 of 8 inputs of the clean pass: its results are not meaningful"]
    health = rows.attrs["meta"]["health"]
    assert health["ok"] is False and health["nonfinite_data"] == 1 and health["nonfinite_weights"] == {}
    named = from_batches([{"a": x[:4], "b": torch.ones(4, 2)}, {"a": x[4:], "b": torch.ones(4, 2)}])
    assert nonfinite_rows(named) == 1  # any named floating-point input counts

    finite = EvalSet("four", torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 1.0], [-2.0, 1.0]]),
                     torch.tensor([0, 1, 2, 0]), 3)
    with pytest.warns(WrobustWarning, match="broken model: non-finite outputs for 2 of 4"):  # the model's doing
        rows = sweep(HalfBroken().eval(), finite, ["noise"], [0.1], trials=1, device="cpu")
    assert rows.attrs["meta"]["health"]["nonfinite_data"] == 0
