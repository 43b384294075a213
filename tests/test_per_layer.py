"""Per-layer sweeps (issue 15): units and groups, seeds shared with the whole-model sweep, activation reuse on
chains of modules (the same rows as the naive path), the ranking in every output, resume and shards."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

import robustbench_w as rw
from robustbench_w.distortions import get_distortion
from robustbench_w.engine.passes.activations import ChainCache, chain_of
from robustbench_w.engine.weights.layers import Unit, parse_groups, plan_units
from robustbench_w.engine.weights.perturb import WeightPatch
from robustbench_w.engine.runs.points import group_of, key_of
from robustbench_w.engine.runs.sweep import SweepRunner, plan
from robustbench_w.engine.weights.targets import select_targets
from robustbench_w.errors import InputFileError, InvalidValueError

MODEL = "builtin:digits-mlp"
TARGETS = ["1.weight", "3.weight", "5.weight"]


# ------------------------------------------------------------------ units and groups

@pytest.mark.parametrize(("groups", "units"), [
    ((), [Unit("1.weight", ("1.weight",)), Unit("3.weight", ("3.weight",)), Unit("5.weight", ("5.weight",))]),
    ((("[13].weight", "hidden"),), [Unit("hidden", ("1.weight", "3.weight")), Unit("5.weight", ("5.weight",))]),
    ((("5.*", "out"), ("1.*", "out")), [Unit("out", ("1.weight", "5.weight")), Unit("3.weight", ("3.weight",))]),
    ((("*", "all"),), [Unit("all", tuple(TARGETS))]),
])
def test_units_are_tensors_or_groups_in_model_order(groups, units):
    assert plan_units(TARGETS, groups) == units


@pytest.mark.parametrize(("groups", "words"), [
    ((("[13].weight", "a"), ("3.*", "b")), "3.weight is in two groups, a and b"),
    ((("conv*", "convs"),), "'conv*' matches no targeted tensor"),
    ((("1.*", "5.weight"),), "group name 5.weight is also an ungrouped tensor's"),
])
def test_bad_groups_are_usage_errors(groups, words):
    with pytest.raises(InvalidValueError, match=words.replace("[", r"\[").replace("*", r"\*")):
        plan_units(TARGETS, groups)


@pytest.mark.parametrize("text", ["layer1.*", "=name", "glob=", " = "])
def test_groups_are_glob_equals_name(text):
    with pytest.raises(InvalidValueError, match="give GLOB=NAME"):
        parse_groups([text])


def test_groups_come_as_strings_or_a_mapping():
    assert parse_groups(["a.*=A", "b.*=B"]) == parse_groups({"a.*": "A", "b.*": "B"}) == (("a.*", "A"), ("b.*", "B"))
    assert parse_groups("x=y") == (("x", "y"),) and parse_groups(None) == ()


# ------------------------------------------------------------------ rows and seeds

@pytest.fixture(scope="module")
def per_layer() -> pd.DataFrame:
    return rw.sweep(MODEL, distortions=["noise", "sign"], strengths=[0.3, 0.8], trials=2, per_layer=True, device="cpu")


def test_one_group_of_rows_per_targeted_tensor(per_layer):
    assert list(per_layer.columns[:3]) == ["model", "dataset", "layer"]
    clean, rest = per_layer.iloc[0], per_layer.iloc[1:]
    assert clean["distortion"] == "none" and clean["layer"] == ""
    blocks = [layer for layer, _ in rest.groupby((rest["layer"] != rest["layer"].shift()).cumsum())]
    assert len(blocks) == 3 and list(dict.fromkeys(rest["layer"])) == TARGETS  # contiguous, in model order
    for _, g in rest.groupby("layer"):
        assert list(g["spec"]) == ["addnorm"] * 4 + ["sign"] and list(g["trial"]) == [0, 1, 0, 1, 0]
    meta = per_layer.attrs["meta"]
    assert meta["per_layer"] and meta["units"] == TARGETS
    assert meta["unit_weights"] == {"1.weight": 8192, "3.weight": 16384, "5.weight": 1280}


def test_a_unit_gets_the_noise_it_gets_in_the_whole_model_sweep():
    model = rw.load_model(MODEL)
    patch = WeightPatch(select_targets(model.module))
    dist = get_distortion("noise")
    whole = dict(patch.distorted(dist, 0.3, 7, 1))
    for name in TARGETS:
        (got_name, got), = patch.subset([name]).distorted(dist, 0.3, 7, 1)
        assert got_name == name and torch.equal(got, whole[name])
    assert not torch.equal(whole["1.weight"][:10, :10] - patch.pristine["1.weight"][:10, :10],
                           whole["3.weight"][:10, :10] - patch.pristine["3.weight"][:10, :10])


@pytest.mark.parametrize("layer", TARGETS)
def test_per_layer_rows_equal_a_whole_model_sweep_of_that_tensor_alone(per_layer, layer):
    alone = rw.sweep(MODEL, distortions=["noise", "sign"], strengths=[0.3, 0.8], trials=2, include=[layer],
                     device="cpu")
    mine = per_layer[per_layer["layer"] == layer].drop(columns="layer").reset_index(drop=True)
    columns = ["spec", "strength", "trial", "error", "loss", "agreement", "weight_change"]
    pd.testing.assert_frame_equal(mine[columns], alone.iloc[1:][columns].reset_index(drop=True))


def test_points_of_a_unit_have_their_own_key_and_shard_group():
    point = plan([get_distortion("noise")], [0.1], 1)[0]
    from dataclasses import replace

    one, two = replace(point, layer="1.weight"), replace(point, layer="3.weight")
    assert len({key_of(point), key_of(one), key_of(two)}) == 3 and group_of(one) != group_of(two)
    assert one.label == "1.weight: addnorm sigma=0.1 trial 0"


def test_the_summary_has_one_row_per_layer_and_point(per_layer):
    from robustbench_w.engine.runs.stats import summarize

    summary = summarize(per_layer)
    assert len(summary) == 1 + 3 * 3 and list(summary["layer"][:4]) == ["", "1.weight", "1.weight", "1.weight"]


# ------------------------------------------------------------------ activation reuse

class Chain(nn.Sequential):
    """A chain whose prefix modules count the inputs they see."""


def chain_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16),
                         nn.ReLU(), nn.Linear(16, 5))


def batches(n: int = 70, size: int = 32):
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 3, 4, generator=gen), torch.randint(0, 5, (n,), generator=gen)
    return [(x[i:i + size], y[i:i + size]) for i in range(0, n, size)]


def counted(model: nn.Module) -> list[int]:
    """Count the inputs module 1 sees (it runs once per batch of every pass that does not reuse activations)."""
    seen = [0]
    model[1].register_forward_hook(lambda m, i, o: seen.__setitem__(0, seen[0] + len(i[0])))
    return seen


KW = dict(distortions=["noise", "sign", "round"], strengths=[0.2, 0.6], trials=2, device="cpu", per_layer=True,
          metric=["error", "loss", "agreement", "kl"])


@pytest.mark.parametrize("groups", [None, ["[35].weight=middle"], ["[17].weight=ends"]])
def test_reused_activations_give_the_rows_of_the_naive_path_exactly(groups):
    naive_model, reuse_model = chain_model(), chain_model()
    naive_seen, reuse_seen = counted(naive_model), counted(reuse_model)
    naive = rw.sweep(naive_model, batches(), groups=groups, reuse_activations=False, **KW)
    reused = rw.sweep(reuse_model, batches(), groups=groups, **KW)
    pd.testing.assert_frame_equal(reused, naive, check_exact=True)
    reuse = reused.attrs["meta"]["activation_reuse"]
    units = [u.split("=")[0] for u in reused.attrs["meta"]["units"]]
    assert set(reuse["reused"]) == set(units) and reuse["naive"] == {}  # module 0 (Flatten) holds no tensor
    assert reuse_seen[0] < naive_seen[0]  # module 1 only ran for the units that start at it


def test_a_unit_in_the_first_module_of_the_chain_runs_the_whole_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 5))
    data = [(x.flatten(1), y) for x, y in batches()]
    rows = rw.sweep(model, data, **KW)
    reuse = rows.attrs["meta"]["activation_reuse"]
    assert reuse["naive"] == {"0.weight": "first module of the chain"} and reuse["reused"] == {"2.weight": 2}
    pd.testing.assert_frame_equal(rows, rw.sweep(model, data, reuse_activations=False, **KW), check_exact=True)


def test_reuse_is_exact_where_a_unit_holds_modules_apart():
    model = chain_model()
    rows = {}
    for reuse in (False, True):
        rows[reuse] = rw.sweep(model, batches(), groups=["[57].weight=late"], reuse_activations=reuse, **KW)
    pd.testing.assert_frame_equal(rows[True], rows[False], check_exact=True)
    assert rows[True].attrs["meta"]["activation_reuse"]["reused"] == {"1.weight": 1, "3.weight": 3, "late": 5}


@pytest.mark.parametrize(("budget", "reused", "why"), [
    (0, set(), "exceed the budget of 0"),
    (70 * 16 * 4, {"1.weight", "3.weight", "5.weight", "7.weight"}, None),  # not two at once: from the inputs
])
def test_the_activation_budget_bounds_the_cache(budget, reused, why):
    model = chain_model()
    naive = rw.sweep(model, batches(), reuse_activations=False, **KW)
    rows = rw.sweep(model, batches(), activation_budget=budget, **KW)
    pd.testing.assert_frame_equal(rows, naive, check_exact=True)
    reuse = rows.attrs["meta"]["activation_reuse"]
    assert set(reuse["reused"]) == reused and reuse["budget_bytes"] == budget
    if why:
        assert all(why in text for name, text in reuse["naive"].items() if name != "1.weight")


class NotAChain(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = chain_model()

    def forward(self, x):
        return self.body(x) + 0.0


@pytest.mark.parametrize("model", [NotAChain, type("OwnForward", (nn.Sequential,), {"forward": lambda s, x: x})])
def test_models_that_are_not_chains_run_the_naive_path(model):
    assert chain_of(model() if model is NotAChain else model(nn.Linear(2, 2), nn.ReLU())) is None
    rows = rw.sweep(NotAChain(), batches(), **KW) if model is NotAChain else None
    if rows is not None:
        reuse = rows.attrs["meta"]["activation_reuse"]
        assert reuse["reused"] == {} and set(reuse["naive"].values()) == {"not a chain of modules"}


def test_the_cache_falls_back_to_the_whole_model_when_batches_change():
    model = chain_model()
    data = batches()
    cache = ChainCache(model, data, torch.device("cpu"), 70)
    assert cache.start_of(["3.weight", "5.weight"]) == 3 and cache.start_of(["nope.weight"]) is None
    assert cache.prepare(5) is True and cache.at == 5
    assert cache.prepare(3) is True and cache.at == 3  # back: from the inputs
    with torch.inference_mode():
        assert torch.equal(cache.forward(1, data[1][0]), model(data[1][0]))
        other = data[0][0][:5]  # a batch of another size: the kept activations do not match it
        assert torch.equal(cache.forward(0, other), model(other))


def test_the_cache_drops_its_activations_when_a_pass_halves_the_batches():
    from robustbench_w.datasets.base import EvalSet
    from robustbench_w.engine.passes.batches import Batches

    model = chain_model()
    gen = torch.Generator().manual_seed(2)
    data = EvalSet("x", torch.randn(96, 3, 4, generator=gen), None, None)
    loaded = Batches(data, 64, torch.device("cpu"))  # batches of 64 and 32
    cache = ChainCache(model, loaded, torch.device("cpu"), 96)
    assert cache.prepare(3) is True
    loaded.halve()  # out of memory: 32, 32, 16, 16; batch 1 has the old batch 1's length, not its inputs
    x1 = list(loaded)[1][0]
    with torch.inference_mode():
        assert torch.equal(cache.forward(1, x1), model(x1))
    assert cache.at is None and cache.prepare(3) is True and len(cache.kept) == len(loaded) == 4  # anew
    with torch.inference_mode():
        assert torch.equal(cache.forward(1, x1), model(x1))


def test_reused_activations_are_exact_in_bf16_too():
    kw = {**KW, "distortions": ["noise", "sign"], "precision": "bf16"}
    naive = rw.sweep(chain_model(), batches(), reuse_activations=False, **kw)
    reused = rw.sweep(chain_model(), batches(), **kw)
    assert reused.attrs["meta"]["activation_reuse"]["reused"]  # the suffix path ran
    pd.testing.assert_frame_equal(reused, naive, check_exact=True)  # the prefix ran in bf16 as the naive pass does


def test_per_layer_sweep_of_the_builtin_mlp_reuses_activations(per_layer):
    reuse = per_layer.attrs["meta"]["activation_reuse"]
    assert reuse["chain"] and reuse["reused"] == {"1.weight": 1, "3.weight": 3, "5.weight": 5}


# ------------------------------------------------------------------ API and CLI errors, outputs

def test_groups_need_per_layer():
    with pytest.raises(InvalidValueError, match="--groups needs --per-layer"):
        rw.sweep(MODEL, distortions=["sign"], groups=["1.*=first"], device="cpu")
    with pytest.raises(InvalidValueError, match="activation_budget need --per-layer"):
        rw.sweep(MODEL, distortions=["sign"], activation_budget=1 << 20, device="cpu")


@pytest.mark.parametrize(("args", "words"), [
    (["--groups", "1.*=first"], "--groups needs --per-layer"),
    (["--no-activation-reuse"], "--no-activation-reuse and activation_budget need --per-layer"),
    (["--per-layer", "--groups", "1.*"], "give GLOB=NAME"),
    (["--per-layer", "--groups", "*=all", "--groups", "1.*=first"], "in two groups"),
    (["--per-layer", "--groups", "conv*=c"], "matches no targeted tensor"),
    (["--per-layer", "--target", "error=10%"], "does not apply to --per-layer"),
])
def test_cli_usage_errors_exit_2_with_one_line(run_cli, args, words):
    code, out, err = run_cli("sweep", MODEL, "-d", "sign", "--device", "cpu", "-q", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


def test_cli_per_layer_ranks_layers_on_the_terminal_and_in_every_file(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    outs = [tmp_path / f"r.{s}" for s in ("json", "md", "csv")]
    code, out, err = run_cli("sweep", MODEL, "--per-layer", "-d", "noise", "-d", "round", "-s", "0.5", "--trials",
                             "2", "--device", "cpu", *[a for o in outs for a in ("-o", o)])
    assert code == 0, err
    assert "3 layers, one at a time" in out and "distorted 3 tensors, 25,856 of 26,122 parameters (98.98%)" in out
    assert "addnorm: change in error (pp) over the clean model, most fragile first" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    doc = json.loads(outs[0].read_text())
    ranking = doc["ranking"]
    assert ranking["metric"] == "error" and not ranking["higher_is_better"]
    assert math.isclose(ranking["clean"], doc["rows"][0]["error"])
    for point in ranking["points"]:
        changes = [e["change"] for e in point["layers"]]
        assert changes == sorted(changes, reverse=True) and sorted(e["layer"] for e in point["layers"]) == TARGETS
        assert point["layers"][0]["rank"] == 1
    first = ranking["points"][0]["layers"][0]
    assert f"{first['layer']} {100 * first['change']:+.2f}" in out
    md = outs[1].read_text()
    assert "| layer | sigma=0.5 |" in md and "(1) |" in md
    assert set(pd.read_csv(outs[2])["layer"].fillna("")) == {"", *TARGETS}


def test_per_layer_resume_and_shards_give_the_full_run(tmp_path, per_layer):
    kw = dict(distortions=["noise", "sign"], strengths=[0.3, 0.8], trials=2, per_layer=True, device="cpu")
    log = tmp_path / "run.jsonl"
    first = rw.sweep(MODEL, log=log, shard="1/2", **kw)
    assert 1 < len(first) < len(per_layer)
    resumed = rw.sweep(MODEL, log=log, resume=True, **kw)
    pd.testing.assert_frame_equal(resumed, per_layer)
    assert resumed.attrs["meta"]["points_resumed"] == len(first) - 1


def test_a_log_of_other_units_is_refused_on_resume(tmp_path):
    kw = dict(distortions=["sign"], per_layer=True, device="cpu")
    log = tmp_path / "run.jsonl"
    rw.sweep(MODEL, log=log, groups=["[13].weight=hidden"], **kw)
    with pytest.raises(InputFileError, match=r"units \[2: hidden=1.weight\+3.weight,5.weight\] vs \[2: hidden=1.weight\+5"):
        rw.sweep(MODEL, log=log, resume=True, groups=["[15].weight=hidden"], **kw)


def test_the_runner_without_per_layer_has_no_layer_column():
    model = rw.load_model(MODEL)
    from robustbench_w.load.inputs import load_inputs

    inputs = load_inputs(model, None, device="cpu", limit=50)
    runner = SweepRunner(inputs.model, inputs.data)
    assert "layer" not in runner.clean_row(0) and runner.layer_meta() == {}


def test_per_layer_shards_merged_rank_like_the_full_run(tmp_path, run_cli, per_layer):
    grid = ["-d", "noise", "-d", "sign", "-s", "0.3,0.8", "--trials", "2", "--per-layer", "--device", "cpu", "-q"]
    for i in (1, 2):
        code, _, err = run_cli("sweep", MODEL, *grid, "--shard", f"{i}/2", "--log", tmp_path / f"s{i}.jsonl")
        assert code == 0, err
    code, out, err = run_cli("merge", tmp_path / "s1.jsonl", tmp_path / "s2.jsonl", "-o", tmp_path / "m.json",
                             "-o", tmp_path / "m.md")
    assert code == 0 and "15 of 15 points" in out, err
    doc = json.loads((tmp_path / "m.json").read_text())
    merged = pd.DataFrame(doc["rows"])
    pd.testing.assert_frame_equal(merged[per_layer.columns[:13]], per_layer[per_layer.columns[:13]])
    assert doc["ranking"]["points"][0]["strength_name"] == "sigma"
    assert "3 layers, one at a time; distorted 3 tensors, " in (tmp_path / "m.md").read_text()  # the coverage kept


def test_groups_auto_on_a_model_without_a_stack_of_blocks_says_so(run_cli):
    code, out, err = run_cli("sweep", "builtin:digits-mlp", "--per-layer", "--groups", "auto", "-d", "sign",
                             "--limit", "50", "--device", "cpu")
    assert code == 0, err
    assert "--groups auto: builtin:digits-mlp has no stack of blocks" in err and "own unit" in err
    code, out, err = run_cli("sweep", "builtin:digits-mlp", "--per-layer", "-d", "sign", "--limit", "50",
                             "--device", "cpu")
    assert code == 0 and "--groups auto" not in err


def test_the_groups_help_names_auto(run_cli):
    code, out, _ = run_cli("sweep", "--help")
    assert code == 0 and "--groups auto" in " ".join(out.split())
