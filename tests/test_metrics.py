"""The metric registry: metadata, formulas against hand computation, identities on the clean model,
non-finite outputs, shared statistics, and clean references kept or recomputed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_w.datasets.base import EvalSet
from robustbench_w.distortions import DISTORTIONS, get_distortion, register_distortion
from robustbench_w.distortions.base import Range
from robustbench_w.engine.passes.evaluate import Evaluator, Statistics, batch_sums
from robustbench_w.engine.passes.metrics import (
    METRICS,
    Metric,
    MetricInfo,
    get_metric,
    list_metrics,
    register_metric,
)
from robustbench_w.engine.weights.perturb import WeightPatch
from robustbench_w.engine.runs.stats import summarize
from robustbench_w.engine.runs.sweep import sweep
from robustbench_w.engine.weights.targets import select_targets

pytestmark = pytest.mark.filterwarnings("ignore:the clean model is at chance level")  # random tiny models

ALL = ["accuracy", "agreement", "cosine", "error", "kl", "loss", "mae", "mse", "perplexity", "relative-l2", "snr-db",
       "token-agreement", "top5"]


class TinyLM(nn.Module):
    """Next-token logits from keyword inputs, returned as a dict (as a Hugging Face model does)."""

    def __init__(self, vocab: int = 11, dim: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.mix, self.out = nn.Embedding(vocab, dim), nn.Linear(dim, dim), nn.Linear(dim, vocab)

    def forward(self, input_ids, attention_mask=None):
        return {"logits": self.out(torch.tanh(self.mix(self.embed(input_ids))).cumsum(dim=1))}


def classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 7)).eval()


def class_data(n: int = 40) -> EvalSet:
    gen = torch.Generator().manual_seed(0)
    return EvalSet("c", torch.randn(n, 6, generator=gen), torch.randint(0, 7, (n,), generator=gen), 7)


def token_data(n: int = 12, length: int = 9) -> EvalSet:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 11, (n, length), generator=gen)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[::3, -3:] = 0  # padded windows
    return EvalSet("t", {"input_ids": ids, "attention_mask": mask}, None, None)


def regression_data(n: int = 30) -> EvalSet:
    gen = torch.Generator().manual_seed(0)
    return EvalSet("r", torch.randn(n, 6, generator=gen), torch.randn(n, 7, generator=gen), None)


def setup_for(info: MetricInfo) -> tuple[nn.Module, EvalSet]:
    if info.outputs == "tokens":
        return TinyLM(), token_data()
    if info.labels == "targets":
        return classifier(), regression_data()
    return classifier(), class_data()


def test_the_registry_holds_the_metrics_the_issue_names_with_complete_metadata():
    assert METRICS.names() == ALL
    for info in list_metrics():
        assert info.formula and info.description and info.column.isidentifier()
        assert info.kind in ("classification", "fidelity", "regression", "language")
        assert info.bounds[0] <= info.bounds[1]
        assert (info.identity is None) == (not info.clean), info.name  # compared with the clean model: an identity
    assert get_metric("PPL").name == "perplexity" and get_metric(METRICS.get("mse")) is METRICS.get("mse")


@pytest.mark.parametrize("name", [n for n in ALL if METRICS.get(n).info.identity is not None])
def test_every_metric_with_an_identity_takes_it_on_the_clean_model(name):
    info = METRICS.get(name).info
    model, data = setup_for(info)
    value = Evaluator(model, data, batch_size=5, metric=name).run().get(info.column)
    assert value == pytest.approx(info.identity, abs=1e-6) or value == info.identity


@pytest.mark.parametrize("name", ALL)
def test_every_metric_is_reduced_to_a_value_in_its_bounds_and_does_not_depend_on_batching(name):
    info = METRICS.get(name).info
    model, data = setup_for(info)
    values = []
    for batch in (4, 1000):
        evaluator = Evaluator(model, data, batch_size=batch, metric=name)
        evaluator.run()
        with WeightPatch(select_targets(model)).applied(get_distortion("noise"), 0.3, seed=1):
            values.append(evaluator.run().get(info.column))
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    assert info.bounds[0] <= values[0] <= info.bounds[1]


def test_classification_metrics_match_a_hand_computation():
    model, data = classifier(), class_data()
    r = Evaluator(model, data, batch_size=7, metric=["error", "accuracy", "top5", "loss"]).run()
    logits = model(data.x).detach()
    pred = logits.argmax(1)
    assert r.error == pytest.approx(float((pred != data.y).float().mean()))
    assert r.accuracy == pytest.approx(1 - r.error)
    assert r.get("top5") == pytest.approx(float((logits.topk(5, 1).indices == data.y[:, None]).any(1).float().mean()))
    assert r.loss == pytest.approx(float(F.cross_entropy(logits, data.y)), rel=1e-5)


def test_perplexity_and_token_agreement_match_a_hand_computation_with_padding():
    model, data = TinyLM(), token_data()
    r = Evaluator(model, data, batch_size=5, metric=["perplexity", "token-agreement"]).run()
    ids, mask = data.x["input_ids"], data.x["attention_mask"].float()
    logits = model(ids)["logits"].detach()
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1), reduction="none").reshape(12, 8)
    counted = mask[:, 1:] * mask[:, :-1]
    assert r.get("perplexity") == pytest.approx(math.exp(float((nll * counted).sum() / counted.sum())), rel=1e-5)
    assert r.get("token_agreement") == 1.0 and counted.sum() == 12 * 8 - 4 * 3


def test_fidelity_metrics_match_a_hand_computation():
    model, data = classifier(), class_data()
    evaluator = Evaluator(model, data, batch_size=9, metric=["cosine", "relative-l2", "kl", "snr-db"])
    evaluator.run()
    clean = model(data.x).detach()
    with WeightPatch(select_targets(model)).applied(get_distortion("noise"), 0.5, seed=3):
        r = evaluator.run()
        noisy = model(data.x).detach()
    assert r.get("cosine") == pytest.approx(float(F.cosine_similarity(noisy, clean).mean()), rel=1e-5)
    assert r.get("relative_l2") == pytest.approx(float(((noisy - clean).norm(dim=1) / clean.norm(dim=1)).mean()), rel=1e-5)
    kl = (clean.softmax(1) * (clean.log_softmax(1) - noisy.log_softmax(1))).sum(1).mean()
    assert r.get("kl") == pytest.approx(float(kl), rel=1e-4)
    snr = 10 * math.log10(float(clean.square().sum() / (noisy - clean).square().sum()))
    assert r.get("snr_db") == pytest.approx(snr, rel=1e-5)


def test_regression_metrics_match_a_hand_computation():
    model, data = classifier(), regression_data()
    r = Evaluator(model, data, metric=["mse", "mae"]).run()
    out = model(data.x).detach()
    assert r.get("mse") == pytest.approx(float((out - data.y).square().mean()), rel=1e-5)
    assert r.get("mae") == pytest.approx(float((out - data.y).abs().mean()), rel=1e-5)


def test_error_and_accuracy_share_one_statistic():
    stats = Statistics([get_metric(n) for n in ("error", "accuracy", "loss", "agreement")])
    assert len(stats.fns) == 3 and stats.slot["error"] == stats.slot["accuracy"]


def test_one_batch_reduction_equals_the_sums_of_each_statistic_and_never_rounds_an_integer():
    gen = torch.Generator().manual_seed(0)
    flags = torch.rand(64, generator=gen) < 0.5
    losses = torch.rand(64, generator=gen) * 7
    pairs = torch.rand(64, 2, generator=gen, dtype=torch.float64)
    exact = [flags.sum().item(), losses.double().sum().item(), *pairs.sum(0).tolist()]
    fused = batch_sums([flags, losses, pairs])  # booleans and floats: one reduction side by side
    assert fused.dtype == torch.float64 and fused.tolist() == pytest.approx(exact, rel=1e-12, abs=0)
    big = torch.full((4,), 2**25 + 1, dtype=torch.int64)  # float32 would round it to 2**25
    mixed = batch_sums([big, losses[:4]])
    assert mixed[0].item() == 4 * (2**25 + 1) and mixed[1].item() == pytest.approx(losses[:4].double().sum().item())
    assert batch_sums([big, flags[:4]])[0].item() == 4 * (2**25 + 1)  # integers beside booleans: exact too


@pytest.fixture
def poison():
    with DISTORTIONS.isolated():
        @register_distortion("poison", formula="nan", values="nan", reference="test", strength="p",
                             valid=Range(0, 1), grid=(1.0,))
        def poison(w, p, a, gen):
            return torch.full_like(w, math.nan)

        yield


@pytest.mark.parametrize("name, expected", [
    ("error", 1.0), ("accuracy", 0.0), ("top5", 0.0), ("agreement", 0.0), ("loss", math.nan), ("cosine", 0.0),
    ("relative-l2", math.inf), ("kl", math.inf), ("snr-db", -math.inf), ("mse", math.inf), ("mae", math.inf),
    ("perplexity", math.inf), ("token-agreement", 0.0),
])
def test_an_input_with_non_finite_outputs_counts_as_an_error_and_never_as_an_agreement(poison, name, expected):
    info = METRICS.get(name).info
    model, data = setup_for(info)
    rows = sweep(model, data, ["poison"], None, metric=name, device="cpu")
    bad = rows[rows.distortion == "poison"].iloc[0]
    assert bad.nonfinite == bad.n
    value = bad[info.column]
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


def test_kept_and_recomputed_clean_references_give_the_same_numbers():
    names = ["perplexity", "token-agreement", "kl", "cosine", "snr-db"]
    model, data = TinyLM(), token_data()
    patch = WeightPatch(select_targets(model))
    kept = Evaluator(model, data, batch_size=4, metric=names, clean_params=patch.pristine)
    rerun = Evaluator(model, data, batch_size=4, metric=names, clean_params=patch.pristine, reference_budget=0)
    results = []
    for evaluator in (kept, rerun):
        evaluator.run()
        with patch.applied(get_distortion("noise"), 0.4, seed=2):
            results.append(evaluator.run())
    assert not kept.rerun and len(kept.references) == 3 and rerun.rerun and rerun.references == []
    assert results[0] == results[1] and results[0].get("token_agreement") < 1.0


def test_a_rerunning_evaluator_without_a_pristine_copy_snapshots_the_clean_weights():
    model, data = TinyLM(), token_data()
    evaluator = Evaluator(model, data, metric="kl", reference_budget=0)
    evaluator.run()
    with WeightPatch(select_targets(model)).applied(get_distortion("noise"), 0.4, seed=2):
        assert evaluator.run().get("kl") > 0
    assert evaluator.run().get("kl") == 0.0


def test_summary_intervals_are_per_metric_and_clipped_to_its_bounds():
    rows = sweep(classifier(), class_data(), ["noise"], [0.01, 2.0], trials=3, metric=["cosine", "kl"], device="cpu")
    summary = summarize(rows)
    assert {"cosine_mean", "cosine_std", "cosine_ci_low", "cosine_ci_high", "kl_ci_low"} <= set(summary.columns)
    assert (summary.cosine_ci_high <= 1.0).all() and (summary.kl_ci_low.dropna() >= 0.0).all()
    small = summary[summary.strength == 0.01].iloc[0]
    assert not math.isnan(small.cosine_ci_high)


def test_a_registered_plug_in_metric_is_used_by_name_and_names_are_unique():
    with METRICS.isolated():
        @register_metric("max-abs", kind="fidelity", higher_is_better=False, identity=0.0, clean=("vectors",),
                         bad=(math.inf,), formula="mean over inputs of max |y' - y|")
        def max_abs(view, clean):
            """The largest change of an output."""
            return (view.vectors - clean.vectors).abs().amax(dim=1)

        rows = sweep(classifier(), class_data(), ["noise"], [0.5], trials=1, metric="max-abs", device="cpu")
        assert rows.max_abs.iloc[0] == 0.0 and rows.max_abs.iloc[1] > 0
        with pytest.raises(ValueError, match="already registered"):
            register_metric("max-abs", kind="fidelity", higher_is_better=False, formula="x")(max_abs)
    assert "max-abs" not in METRICS
    with pytest.raises(ValueError, match="invalid metadata kind"):
        MetricInfo(name="x", formula="x", kind="magic", higher_is_better=True)
    with pytest.raises(TypeError):
        METRICS.register("thing", object())
    assert isinstance(METRICS.get("cosine"), Metric)


def test_plug_ins_register_through_the_entry_point_group_and_a_broken_one_only_warns(monkeypatch):
    import importlib.metadata

    from robustbench_w.engine.passes.metrics import ENTRY_POINT_GROUP
    from robustbench_w.registry import Registry

    good = Metric(MetricInfo(name="plugged", formula="x", kind="fidelity", higher_is_better=True), lambda v, c: v.pred)

    class EntryPoint:
        def __init__(self, name, obj):
            self.name, self.obj = name, obj

        def load(self):
            if isinstance(self.obj, Exception):
                raise self.obj
            return self.obj

    found = {ENTRY_POINT_GROUP: [EntryPoint("plugged", good), EntryPoint("broken", ImportError("no module"))]}
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: found.get(group, []))
    registry = Registry("metric", Metric)
    registry.load_entry_points(ENTRY_POINT_GROUP)
    with pytest.warns(UserWarning, match="metric plug-in 'broken' failed to load: no module"):
        assert registry.names() == ["plugged"]
