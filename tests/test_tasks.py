"""Any model, any task: the Python API with keyword inputs and dict outputs, regression, output selection,
default metrics by task, and the errors of choosing a metric."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import robustbench_w as rw
from robustbench_w.datasets.base import EvalSet
from robustbench_w.datasets.batches import from_batches
from robustbench_w.errors import InvalidValueError, UnknownNameError

pytestmark = pytest.mark.filterwarnings("ignore:the clean model is at chance level")  # random tiny models


class KeywordModel(nn.Module):
    """Takes keyword tensors, returns a dict: an embedding per token and a score per input."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(20, 8)
        self.proj = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask):
        h = torch.tanh(self.proj(self.embed(input_ids))) * attention_mask.unsqueeze(-1)
        return {"hidden": h, "scores": self.head(h.sum(1)), "note": "not a tensor"}


def keyword_batches(n_batches: int = 3, size: int = 5) -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    out = []
    for i in range(n_batches):
        length = 4 + i  # each batch its own padding, as a DataLoader with dynamic padding gives them
        ids = torch.randint(1, 20, (size, length), generator=gen)
        mask = torch.ones(size, length, dtype=torch.long)
        mask[0, -2:] = 0
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def test_python_api_sweeps_a_keyword_model_returning_a_dict_with_a_custom_metric():
    seen = []

    def closeness(outputs, clean_outputs, batch):
        seen.append(sorted(batch))
        return -(outputs - clean_outputs).abs().flatten(1).mean(dim=1)

    rows = rw.sweep(KeywordModel(), keyword_batches(), ["noise"], [0.0, 0.5], trials=2, metric=closeness,
                    output_key="scores", device="cpu")
    assert rows.attrs["meta"]["metrics"][0]["name"] == "closeness" and rows.attrs["meta"]["output_key"] == "scores"
    assert rows["n"].iloc[0] == 15 and seen[0] == ["attention_mask", "input_ids"]
    clean, zero, noisy = rows.closeness.iloc[0], rows[rows.strength == 0.0].closeness.iloc[0], rows.closeness.iloc[-1]
    assert clean == zero == 0.0 and noisy < 0
    summary = rw.summarize(rows)
    assert {"closeness_mean", "closeness_ci_low", "closeness_ci_high"} <= set(summary.columns)


def test_python_api_registered_metrics_on_keyword_batches_and_pooling():
    rows = rw.sweep(KeywordModel(), keyword_batches(), ["noise"], [0.3], trials=1, metric=["cosine", "snr-db"],
                    output_key="hidden", pool="mean", device="cpu")
    clean, noisy = rows.iloc[0], rows.iloc[1]
    assert clean.cosine == pytest.approx(1.0) and clean.snr_db == math.inf
    assert noisy.cosine < 1 and 0 < noisy.snr_db < math.inf
    default = rw.sweep(KeywordModel(), keyword_batches(), ["sign"], device="cpu")  # logits absent: "hidden", pooled
    assert default.attrs["meta"]["output_key"] == "hidden" and default.attrs["meta"]["pool"] == "mean"
    assert default.attrs["meta"]["task"] == "outputs" and "relative_l2" in default.columns


def test_batches_as_tuples_a_dataloader_or_dicts_with_labels_give_the_same_numbers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x, y = torch.randn(24, 4), torch.randint(0, 3, (24,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    forms = {"set": EvalSet("s", x, y, 3), "loader": loader,
             "tuples": [(x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8)]}
    results = {k: rw.sweep(model, v, ["noise"], [0.2], trials=2, batch_size=8, device="cpu") for k, v in forms.items()}
    for k in ("loader", "tuples"):
        assert results[k][["error", "loss", "agreement"]].equals(results["set"][["error", "loss", "agreement"]])


def test_batches_that_are_not_batches_are_refused():
    with pytest.raises(InvalidValueError, match="batch 1: a batch must be"):
        from_batches([torch.zeros(2, 3), "text"])
    with pytest.raises(InvalidValueError, match="some batches have labels and some do not"):
        from_batches([(torch.zeros(2, 3), torch.zeros(2)), torch.zeros(2, 3)])
    with pytest.raises(InvalidValueError, match="differ in their first"):
        from_batches([{"a": torch.zeros(2, 3), "b": torch.zeros(3, 3)}])
    with pytest.raises(InvalidValueError, match="empty"):
        from_batches([])
    labelled = from_batches([{"input_ids": torch.zeros(2, 3, dtype=torch.long), "labels": torch.tensor([1, 0])}])
    assert labelled.has_labels and sorted(labelled.batches[0][0]) == ["input_ids"]


# ------------------------------------------------------------------ regression: file.py:callable on tensors:FILE

REGRESSOR = '''
from torch import nn


def build():
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
'''


def fitted_regressor(tmp_path):
    (tmp_path / "reg.py").write_text(REGRESSOR)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    x = torch.randn(200, 4)
    y = x @ torch.tensor([0.5, -1.0, 0.25, 2.0])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(300):
        loss = (model(x).squeeze(1) - y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), tmp_path / "reg.pt")
    torch.save({"x": x[:64], "y": y[:64]}, tmp_path / "data.pt")
    return float(loss.detach())


def test_regression_model_from_user_code_on_float_targets_reports_mse(run_cli, tmp_path):
    train_loss = fitted_regressor(tmp_path)
    out = tmp_path / "r.json"
    code, stdout, err = run_cli("sweep", tmp_path / "reg.pt", "--arch", f"{tmp_path / 'reg.py'}:build",
                                "--dataset", f"tensors:{tmp_path / 'data.pt'}", "-d", "noise", "-s", "0,0.2",
                                "--trials", "2", "-o", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["meta"]["task"] == "regression" and doc["meta"]["report_metrics"] == ["mse", "mae"]
    clean = doc["rows"][0]
    assert clean["mse"] < 0.1 and clean["mse"] == pytest.approx(train_loss, rel=0.5) and math.isnan(clean["error"])
    noisy = [r["mse"] for r in doc["rows"] if r["strength"] == 0.2]
    assert min(noisy) > clean["mse"] and "clean mse" in stdout
    code, _, err = run_cli("sweep", tmp_path / "reg.pt", "--arch", f"{tmp_path / 'reg.py'}:build",
                           "--dataset", f"tensors:{tmp_path / 'data.pt'}", "--metric", "error")
    assert code == 2 and "metric error needs integer class labels" in err


def test_named_inputs_in_a_tensors_file_reach_the_model_as_keywords(run_cli, tmp_path):
    batch = keyword_batches(1, 6)[0]
    torch.save({**batch, "y": torch.randn(6, 3)}, tmp_path / "named.pt")
    rows = rw.sweep(KeywordModel(), f"tensors:{tmp_path / 'named.pt'}", ["noise"], [0.1], trials=1,
                    output_key="scores", device="cpu")
    assert rows.attrs["meta"]["task"] == "regression" and rows.mse.iloc[0] > 0 and rows.n.iloc[0] == 6


# ------------------------------------------------------------------ classifiers, output keys, defaults

def test_cosine_on_a_classifier_measures_its_logits(run_cli, tmp_path):
    out = tmp_path / "r.json"
    code, stdout, err = run_cli("sweep", "builtin:digits-mlp", "-d", "noise", "-s", "0,0.3", "--trials", "2",
                                "--metric", "cosine", "--metric", "error", "--limit", "100", "-o", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["meta"]["report_metrics"] == ["cosine", "error"]
    at = {r["strength"]: r for r in doc["summary"]}
    assert at[0.0]["cosine_mean"] == pytest.approx(1.0) and at[0.3]["cosine_mean"] < 0.999
    assert math.isnan(at[0.3]["agreement_mean"])  # not asked for: not measured
    assert "cosine" in stdout and "error %" in stdout


def test_unknown_metric_exits_2_naming_the_closest(run_cli):
    code, out, err = run_cli("sweep", "builtin:digits-mlp", "--metric", "perplexty", "-d", "sign")
    assert code == 2 and "unknown metric 'perplexty'; did you mean 'perplexity'?" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "--metric", "agreemnt", "-d", "sign")
    assert code == 2 and "did you mean 'agreement'" in err


def test_label_needing_metric_on_unlabelled_data_exits_2(run_cli):
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "--dataset", "synthetic", "--metric", "top5", "-d", "sign")
    assert code == 2 and "metric top5 needs labels, and dataset synthetic has none" in err


def test_token_metric_on_a_classifier_and_pool_on_vectors_are_refused(run_cli):
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "--metric", "perplexity", "-d", "sign")
    assert code == 2 and "perplexity needs next-token scores" in err
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "--pool", "cls", "-d", "sign")
    assert code == 2 and "--pool cls needs token outputs (batch, tokens, features); builtin:digits-mlp's output is (" in err


def test_tuple_outputs_and_output_keys():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 5)

        def forward(self, x):
            return None, self.a(x), self.b(x)

    data = EvalSet("t", torch.randn(10, 4), torch.randint(0, 3, (10,)), 3)
    rows = rw.sweep(Pair(), data, ["sign"], device="cpu")
    assert rows.attrs["meta"]["output_key"] == 1 and rows.attrs["meta"]["task"] == "classifier"
    assert rows.error.notna().all()
    second = rw.sweep(Pair(), data, ["sign"], output_key="2", metric="cosine", device="cpu")
    assert second.attrs["meta"]["output_key"] == 2
    with pytest.raises(InvalidValueError, match="tensors are at positions 1, 2"):
        rw.sweep(Pair(), data, ["sign"], output_key="0", device="cpu")


def test_a_custom_metric_that_fails_or_returns_the_wrong_shape_is_one_clear_error():
    data = EvalSet("t", torch.randn(10, 4), None, None)
    model = nn.Linear(4, 3)
    with pytest.raises(InvalidValueError, match="metric broken fails on the first batch: ZeroDivisionError"):
        rw.sweep(model, data, ["sign"], metric=broken, device="cpu")
    with pytest.raises(InvalidValueError, match=r"one score per input, shape \(2,\), not \(\)"):
        rw.sweep(model, data, ["sign"], metric=lambda o, c, b: o.sum(), device="cpu")
    with pytest.raises(InvalidValueError, match="the name of a registered metric"):
        rw.sweep(model, data, ["sign"], metric=cosine, device="cpu")
    with pytest.raises(UnknownNameError):
        rw.sweep(model, data, ["sign"], metric="nope", device="cpu")


def test_a_custom_metric_may_not_take_the_name_of_a_row_column():
    def n(outputs, clean, batch):
        return outputs.sum(1)

    with pytest.raises(InvalidValueError, match="metric column 'n' is a column of every result row"):
        rw.sweep(nn.Linear(4, 3), EvalSet("t", torch.randn(6, 4), None, None), ["sign"], metric=n, device="cpu")


def broken(outputs, clean, batch):
    return 1 / 0


def cosine(outputs, clean, batch):
    return outputs.sum(1)


def test_target_on_any_metric_reports_the_lowest_bits_point(run_cli, tmp_path):
    code, out, err = run_cli("sweep", "builtin:digits-mlp", "-d", "quantize", "-s", "2,3,4,6", "--metric", "cosine",
                             "--target", "cosine=0.95", "--limit", "100", "-o", tmp_path / "r.json")
    assert code == 0, err
    assert "lowest bits meeting cosine >= 0.95:" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    ok = [r for r in doc["summary"] if r["distortion"] == "quantize" and r["cosine_mean"] >= 0.95]
    best = min(ok, key=lambda r: r["eff_bits"])
    assert f"quantize at bits={best['strength']:g}: {best['eff_bits']:.3f} bits/w, cosine" in out
    assert doc["meta"]["metric_targets"][0]["metric"] == "cosine"
    assert doc["meta"]["targets"] == ["1.weight", "3.weight", "5.weight"]  # the distorted tensors, kept
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "-d", "sign", "--metric", "error", "--target", "cosine=0.9")
    assert code == 2 and "--target cosine: cosine is not measured" in err
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "-d", "sign", "--target", "cosine")
    assert code == 2 and "is not METRIC=VALUE" in err


def test_timm_architecture_by_name(run_cli, tmp_path):
    import timm

    model = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    torch.save(model.state_dict(), tmp_path / "t.pt")
    loaded = rw.load_model(tmp_path / "t.pt", arch="timm:resnet10t", num_classes=10)
    assert type(loaded.module).__name__ == "ResNet" and loaded.input_shape == tuple(model.pretrained_cfg["input_size"])
    code, _, err = run_cli("sweep", tmp_path / "t.pt", "--arch", "timm:resnet10", "-d", "sign")
    assert code == 2 and "unknown timm architecture 'resnet10'; did you mean" in err


def test_a_chance_level_warning_on_given_batches_names_no_normalisation():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    x = torch.randn(40, 4)
    wrong = 1 - model(x).argmax(dim=1)  # every label differs from the prediction: accuracy 0, two classes
    batches = [(x[:20], wrong[:20]), (x[20:], wrong[20:])]
    with pytest.warns(Warning, match="at chance level.*check the inputs and their labels$"):
        rw.sweep(model, batches, ["sign"], device="cpu")
