"""The reproduce grid: rules x training seeds, cells over seeds and trials, the five claims and their verdicts,
the files (``claims.json`` checked against ``results.csv``), the terminal table and the CLI."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from robustbench_w import load_model
from robustbench_w.cli.reproduce import SpecList
from robustbench_w.errors import InvalidValueError, WrobustError
from robustbench_w.paper.cells import Interval, fewest_bits, summarize_cells
from robustbench_w.paper.claims import combine, judge_claims
from robustbench_w.paper.console import grid_table
from robustbench_w.paper.grid import (
    DEFAULT_RULES,
    GridConfig,
    check_grid,
    parse_columns,
    plan_points,
)
from robustbench_w.paper.report import grid_markdown, write_grid
from robustbench_w.paper.reproduce import GridResult, reproduce

TINY = dict(epochs=2, device="cpu", trials=2, seeds=2)
# Two rules, one distortion, two seeds: each grid tests the claims it can and says "not tested" for the others.
TINY_GRIDS = {
    "sign": dict(rules=("none", "sign"), distortions=("sign",), at=("sign",)),
    "ternarize": dict(rules=("none", "stoch"), distortions=("ternarize",), at=("ternarize:t=0.5",)),
}


@pytest.fixture(scope="module", params=sorted(TINY_GRIDS))
def tiny(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"grid-{request.param}")
    result = reproduce(GridConfig(**TINY_GRIDS[request.param], **TINY), out)
    write_grid(result, out)
    return request.param, result, out


# ------------------------------------------------------------------ claims.json against results.csv


def recompute(q: dict, rows: pd.DataFrame) -> list[float]:
    """The values a cited quantity is over, computed here from ``results.csv`` without the library."""
    def pick(rule, spec, strength):
        sel = (rows["rule"] == rule) & (rows["spec"] == spec)
        return rows[sel & (rows["strength"].isna() if strength is None else np.isclose(rows["strength"], strength))]

    def per_seed(rule, over):
        return pd.concat({i: pick(rule, o["spec"], o["strength"]).groupby("train_seed")["error"].mean()
                          for i, o in enumerate(over)}, axis=1)

    if q["measure"] == "error":
        return list(pick(q["rule"], q["over"][0]["spec"], q["over"][0]["strength"])["error"])
    if q["measure"] == "spread":
        table = per_seed(q["rule"], q["over"])
        return list(table.max(axis=1) - table.min(axis=1))
    if q["measure"] == "mean error":
        return list(per_seed(q["rule"], q["over"]).mean(axis=1))
    assert q["measure"] == "fewest bits"
    mine = rows[rows["rule"] == q["rule"]]
    clean = pick(q["rule"], "none", None).groupby("train_seed")["error"].mean()
    bits = []
    for seed, g in mine[mine["distortion"].isin(["ternarize", "quantize"])].groupby("train_seed"):
        points = g.groupby(["spec", "strength"])[["error", "eff_bits"]].mean()
        ok = points[points["error"] <= clean[seed] + q["within"] / 100 + 1e-12]
        bits.append(ok["eff_bits"].min() if len(ok) else math.nan)
    return bits


def check_quantity(q: dict, rows: pd.DataFrame) -> None:
    values = np.array(recompute(q, rows), dtype=float)
    cited = np.array([math.nan if v is None else v for v in q["values"]], dtype=float)
    assert np.allclose(np.sort(cited), np.sort(values), equal_nan=True)
    assert q["seeds"] == 2
    if np.isnan(values).any():  # a seed that never stayed within: no interval, no verdict from it
        assert q["low"] is None and q["high"] is None
        return
    assert q["mean"] == pytest.approx(np.mean(values))
    assert [q["low"], q["high"]] == pytest.approx(list(np.percentile(values, [2.5, 97.5])))


def expected_outcome(c: dict) -> str:
    lo, hi = (c["left"], c["right"]) if c["relation"] == "below" else (c["right"], c["left"])
    if None in (lo["low"], lo["high"], hi["low"], hi["high"]):
        return "overlap"
    return "holds" if lo["high"] < hi["low"] else "opposite" if lo["low"] > hi["high"] else "overlap"


def expected_part(part: dict) -> str:
    found = [{"holds": 1, "opposite": -1, "overlap": 0}[c["outcome"]] for c in part["comparisons"]]
    if part["quantifier"] == "each":
        return "not shown" if -1 in found else "shown" if all(f == 1 for f in found) else "inconclusive"
    return "shown" if 1 in found else "not shown" if all(f == -1 for f in found) else "inconclusive"


def test_every_verdict_follows_from_the_numbers_it_cites(tiny):
    name, _, out = tiny
    rows = pd.read_csv(out / "results.csv")
    claims = json.loads((out / "claims.json").read_text())["claims"]
    assert [c["number"] for c in claims] == [1, 2, 3, 4, 5]
    tested = []
    for claim in claims:
        if claim["verdict"] == "not tested":
            assert not claim["parts"] and claim["note"].startswith("not tested")
            continue
        tested.append(claim["key"])
        for part in claim["parts"]:
            for comparison in part["comparisons"]:
                check_quantity(comparison["left"], rows)
                check_quantity(comparison["right"], rows)
                assert comparison["outcome"] == expected_outcome(comparison)
            assert part["verdict"] == expected_part(part)
        parts = [p["verdict"] for p in claim["parts"]]
        assert claim["verdict"] == ("not shown" if "not shown" in parts else
                                    "shown" if all(p == "shown" for p in parts) else "inconclusive")
    assert tested == {"sign": ["sign"], "ternarize": ["stochastic", "bits"]}[name]


def test_rows_cells_and_checkpoints(tiny):
    name, result, out = tiny
    rules = TINY_GRIDS[name]["rules"]
    assert list(result.rows["rule"].unique()) == list(rules)
    assert sorted(result.rows["train_seed"].unique()) == [0, 1]
    assert set(result.summary["seeds"]) == {2}
    for rule in rules:
        for seed in (0, 1):
            rec = load_model(out / "models" / f"{rule}-seed{seed}.pt").extra["train"]
            assert (rec["rule"], rec["seed"], rec["epochs"], rec["schedule"]) == (rule, seed, 2, "cosine")
            clean = result.rows.query("rule == @rule and train_seed == @seed and distortion == 'none'")["error"]
            assert clean.iloc[0] == pytest.approx(result.training[rule][seed]["test_error"])
    text = (out / "report.md").read_text()
    assert "## Claims" in text and "Training seeds 0, 1 (2 per rule)" in text and "`cosine` schedule" in text
    assert text == grid_markdown(result, "figure.png" if (out / "figure.png").exists() else None)


# ------------------------------------------------------------------ verdicts from exact numbers


def fake_rows(errors: dict[tuple[str, str], list[float]], bits: dict | None = None) -> pd.DataFrame:
    """Rows with given per-seed errors: {(rule, spec or 'spec=strength'): [error of seed 0, seed 1, ...]}."""
    rows = []
    for (rule, column), per_seed in errors.items():
        spec, _, strength = column.partition("=")
        for seed, err in enumerate(per_seed):
            rows.append({"rule": rule, "train_seed": seed, "distortion": spec.split(":")[0], "spec": spec,
                         "strength_name": "x" if strength else "", "strength": float(strength) if strength else math.nan,
                         "trial": 0, "error": err, "agreement": 1.0,
                         "eff_bits": (bits or {}).get((rule, column), [math.nan] * 9)[seed]})
    return pd.DataFrame(rows)


def verdicts(rows: pd.DataFrame, rules: list[str], at: tuple[str, ...] = ("sign", "round")) -> dict[str, str]:
    return {c.key: c.verdict for c in judge_claims(rows, rules, parse_columns(at), within=2.0)}


@pytest.mark.parametrize("sign, verdict", [
    ([0.40, 0.50, 0.60], "shown"),  # every seed far above the clean error
    ([0.03, 0.20, 0.60], "inconclusive"),  # one seed within the clean errors: the intervals overlap
    ([0.005, 0.006, 0.007], "not shown"),  # below the clean error for every seed
])
def test_claim_fragile(sign, verdict):
    rows = fake_rows({("none", "none"): [0.02, 0.03, 0.04], ("none", "sign"): sign, ("none", "round"): [0.5] * 3})
    assert verdicts(rows, ["none"])["fragile"] == verdict


def test_one_seed_gives_no_interval_and_no_verdict():
    rows = fake_rows({("none", "none"): [0.02], ("none", "sign"): [0.9], ("none", "round"): [0.9]})
    assert verdicts(rows, ["none"])["fragile"] == "inconclusive"
    assert not Interval.of([0.9], seeds=1).defined


def test_claims_not_tested_name_what_is_missing():
    rows = fake_rows({("none", "none"): [0.02, 0.03], ("none", "sign"): [0.5, 0.6]})
    claims = judge_claims(rows, ["none"], parse_columns(("sign",)), within=2.0)
    assert [c.verdict for c in claims] == ["not tested"] * 5
    assert "`round` column" in claims[0].note and "rule `clip`" in claims[1].note
    assert "0.68" in claims[4].note  # the paper's number stands beside claim 5 even untested


def test_claim_clipping_reads_round_and_the_mean_over_noise_columns():
    at = ("round", "addnorm:sigma=0.1", "addnorm:sigma=0.3")
    base = {("none", "none"): [0.02, 0.02], ("clip", "none"): [0.02, 0.02], ("none", "round"): [0.5, 0.6],
            ("clip", "round"): [0.05, 0.06], ("none", "addnorm=0.1"): [0.03, 0.03], ("clip", "addnorm=0.1"): [0.03, 0.03],
            ("none", "addnorm=0.3"): [0.40, 0.45], ("clip", "addnorm=0.3"): [0.10, 0.12]}
    assert verdicts(fake_rows(base), ["none", "clip"], at)["clipping"] == "shown"
    worse = {**base, ("clip", "addnorm=0.3"): [0.8, 0.9]}
    assert verdicts(fake_rows(worse), ["none", "clip"], at)["clipping"] == "not shown"


def test_claim_bits_is_shown_by_some_projection_rule():
    rows = fake_rows(
        {("none", "none"): [0.02, 0.02], ("sign", "none"): [0.02, 0.02], ("stoch", "none"): [0.02, 0.02],
         ("none", "quantize=2"): [0.30, 0.30], ("none", "quantize=3"): [0.03, 0.03],
         ("sign", "quantize=2"): [0.03, 0.035], ("sign", "quantize=3"): [0.02, 0.02],
         ("stoch", "quantize=2"): [0.5, 0.5], ("stoch", "quantize=3"): [0.5, 0.5], ("stoch", "quantize=4"): [0.02, 0.02]},
        bits={("none", "quantize=3"): [2.5, 2.4], ("none", "quantize=2"): [1.2, 1.1],
              ("sign", "quantize=2"): [1.0, 0.9], ("sign", "quantize=3"): [2.0, 2.0],
              ("stoch", "quantize=2"): [1.0, 1.0], ("stoch", "quantize=3"): [2.0, 2.0], ("stoch", "quantize=4"): [3.5, 3.6]})
    found = fewest_bits(rows, "none", within=2.0)
    assert found.interval.values == (2.5, 2.4) and found.points == ("quantize x=3", "quantize x=3")
    assert fewest_bits(rows, "sign", within=2.0).interval.values == (1.0, 0.9)
    claims = judge_claims(rows, ["none", "sign", "stoch"], parse_columns(()), within=2.0)
    bits = claims[4]
    assert bits.verdict == "shown"  # sign needs fewer bits than none; stoch needs more: "some" rule suffices
    assert [c.outcome for c in bits.parts[0].comparisons] == [1, -1]
    strict = fewest_bits(rows, "none", within=0.5)  # quantize 3 is 1 point above the clean error: nothing stays within
    assert strict.points == ("-", "-") and not strict.interval.defined


@pytest.mark.parametrize("outcomes, each, some", [
    ([1, 1], 1, 1), ([1, 0], 0, 1), ([1, -1], -1, 1), ([0, 0], 0, 0), ([-1, -1], -1, -1), ([0, -1], -1, 0),
])
def test_quantifiers(outcomes, each, some):
    assert combine(outcomes, "each") == each and combine(outcomes, "some") == some


def test_interval_is_the_central_95_percent_of_the_values():
    iv = Interval.of([0.1, 0.2, 0.3, 0.4], seeds=2)
    assert iv.mean == pytest.approx(0.25)
    assert (iv.low, iv.high) == pytest.approx((0.1075, 0.3925))
    assert Interval.of([0.1, 0.2], 2).below(Interval.of([0.3, 0.4], 2)) == 1
    assert Interval.of([0.3, 0.4], 2).below(Interval.of([0.1, 0.2], 2)) == -1
    assert Interval.of([0.1, 0.35], 2).below(Interval.of([0.3, 0.4], 2)) == 0
    assert not Interval.of([0.1, math.nan], 2).defined  # a seed that reached nothing: no interval


def test_summary_cells_are_over_seeds_and_trials():
    rows = fake_rows({("none", "addnorm=0.3"): [0.1, 0.3]})
    rows = pd.concat([rows, rows.assign(trial=1, error=rows["error"] + 0.1)])
    cells = summarize_cells(rows)
    assert cells.loc[0, ["seeds", "values"]].tolist() == [2, 4]
    assert cells.loc[0, "error_mean"] == pytest.approx(0.25)
    assert cells.loc[0, "error_low"] == pytest.approx(np.percentile([0.1, 0.3, 0.2, 0.4], 2.5))


# ------------------------------------------------------------------ the grid: columns, points, recipe


def test_columns_at_the_papers_strengths_join_the_curves():
    grid = check_grid(GridConfig(distortions=("multunif",), at=("multunif:gamma=0.5", "sign", "addnorm:sigma=0.3")))
    assert [c.label for c in grid.columns] == ["none", "multunif gamma=0.5", "sign", "addnorm sigma=0.3"]
    points = plan_points(grid, trials=2)
    multunif = [p.strength for p in points if p.dist.name == "multunif" and p.trial == 0]
    assert multunif == [1.0, 0.8, 0.6, 0.5, 0.4, 0.2, 0.1]  # 0.5 added to the default grid, in its order
    assert [p.strength for p in points if p.dist.name == "addnorm"] == [0.3, 0.3]  # a column alone: two trials
    assert sum(p.dist.name == "sign" for p in points) == 1  # deterministic: once


@pytest.mark.parametrize("at, message", [
    (("power",), "give its strength"),
    (("power:beta=-1",), "outside its valid range"),
    (("sgn",), "did you mean"),
])
def test_bad_columns(at, message):
    with pytest.raises(WrobustError, match=message):
        check_grid(GridConfig(at=at))


def test_quick_is_the_full_runs_first_seeds_and_trials_with_the_same_recipe():
    quick, full = GridConfig(quick=True), GridConfig()
    assert (quick.n_seeds, quick.n_trials, full.n_seeds, full.n_trials) == (2, 3, 3, 5)
    assert quick.train_seeds == full.train_seeds[:2]
    assert quick.train_config("stoch", 1) == full.train_config("stoch", 1)
    recipe = full.recipe
    assert (recipe.lr, recipe.schedule, recipe.epochs, recipe.batch_size) == (1e-2, "cosine", 40, 64)
    changed = GridConfig(lr=3e-3, schedule="exp", epochs=7, batch_size=32, seed=5, seeds=2).train_config("none", 6)
    assert (changed.lr, changed.schedule, changed.epochs, changed.batch_size, changed.seed) == (3e-3, "exp", 7, 32, 6)
    assert GridConfig(dataset="cifar10", quick=True).recipe.epochs < GridConfig(dataset="cifar10").recipe.epochs


def test_grid_is_checked_before_any_training():
    with pytest.raises(InvalidValueError, match="needs its strength"):
        check_grid(GridConfig(rules=("none", "power")))
    with pytest.raises(InvalidValueError, match="given twice"):
        check_grid(GridConfig(rules=("sign", "binarize")))
    with pytest.raises(WrobustError, match="unknown distortion"):
        check_grid(GridConfig(distortions=("sgn",)))
    with pytest.raises(InvalidValueError, match="--seeds"):
        check_grid(GridConfig(seeds=0))


def test_spec_list_keeps_options_with_their_spec():
    assert SpecList().convert("none, power:beta=0.5,scale=max,stoch", None, None) == (
        "none", "power:beta=0.5,scale=max", "stoch")


# ------------------------------------------------------------------ terminal and CLI


def test_terminal_table_fits_80_columns_without_cutting_a_header():
    config = GridConfig()
    grid = check_grid(config)
    specs = ["none", "sign", "round", "power=0.5", "power=0.25", "addnorm=0.1", "addnorm=0.3", "multunif=0.5"]
    rows = fake_rows({(rule, spec): [0.289, 0.807, 0.5] for rule in grid.rules for spec in specs})
    meta = {"dataset": "digits", "seeds": [0, 1, 2], "trials": 5}
    result = GridResult(rows, summarize_cells(rows), [], {}, config, grid, meta)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(grid_table(result))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text and "30.0-79.2" in text  # intervals whole, not folded
    for word in ("power:", "beta=0.5", "stochm:", "gamma=0.5", "clip", "stoch", "multunif", "gamma=0.5"):
        assert word in text


def test_cli_reproduce(tmp_path, run_cli):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("reproduce", "--quick", "--epochs", "1", "--trials", "1", "--distortions", "sign",
                                   "--at", "sign,round", "-o", out)
    assert code == 0, stderr
    for rule in DEFAULT_RULES:
        for seed in (0, 1):
            assert (out / "models" / f"{rule.replace(':', '_')}-seed{seed}.pt").is_file()
        assert f"\n| {rule} |" in (out / "report.md").read_text()
    claims = json.loads((out / "claims.json").read_text())
    assert claims["meta"]["seeds"] == [0, 1] and len(claims["claims"]) == 5
    assert "(1) " in stdout and "(5) " in stdout and "wrote" in stdout


@pytest.mark.parametrize("args, message", [
    (["--rules", "none,power"], "needs its strength"),
    (["--at", "addnorm"], "give its strength"),
    (["--seeds", "0"], "--seeds"),
    (["--schedule", "linear"], "--schedule"),
])
def test_cli_reproduce_usage_errors(tmp_path, run_cli, args, message):
    code, _, stderr = run_cli("reproduce", *args, "-o", tmp_path / "o")
    assert code == 2 and message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_output_folder_in_place_of_a_file(tmp_path, run_cli):
    (tmp_path / "file").write_text("")
    code, _, stderr = run_cli("reproduce", "--rules", "none", "-o", tmp_path / "file")
    assert code == 2 and "is a file" in stderr
    with pytest.raises(WrobustError, match="not a directory"):
        write_grid(None, tmp_path / "file")


def test_cli_one_seed_says_why_every_claim_is_inconclusive(tmp_path, run_cli):
    code, stdout, _ = run_cli("reproduce", "--epochs", "1", "--seeds", "1", "--trials", "1", "--rules", "none,sign",
                              "--distortions", "sign", "--at", "sign", "-o", tmp_path / "o")
    assert code == 0 and "One training seed" in stdout
    claims = json.loads((tmp_path / "o" / "claims.json").read_text())["claims"]
    assert claims[3]["verdict"] == "inconclusive" and claims[3]["parts"][0]["comparisons"][0]["left"]["low"] is None
    assert "One training seed" in (tmp_path / "o" / "report.md").read_text()
