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
from robustbench_w.paper.bands import Measure, seed_terms
from robustbench_w.paper.cells import Interval, summarize_cells
from robustbench_w.paper.claims import judge_claims
from robustbench_w.paper.fewest import is_own_projection
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
# Small grids, two seeds each: each tests the claims it can and says which data it lacks for the others.
TINY_GRIDS = {
    "fragile": dict(rules=("none", "clip"), distortions=("round",), at=("sign", "round", "addnorm:sigma=0.3")),
    "bits": dict(rules=("none", "sign", "stoch"), distortions=("ternarize",), at=("sign", "ternarize:t=0.5")),
}
FIELDS = {"id", "statement", "effect", "threshold", "interval", "n_seeds", "n_test", "verdict", "reason"}
Z = 1.959963984540054


@pytest.fixture(scope="module", params=sorted(TINY_GRIDS))
def tiny(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"grid-{request.param}")
    result = reproduce(GridConfig(**TINY_GRIDS[request.param], **TINY), out)
    write_grid(result, out)
    return request.param, result, out


# ------------------------------------------------------------------ claims.json against results.csv
# Everything below re-derives the claims from results.csv with the documented rules, without the library.


def pick(rows, rule, spec, strength):
    sel = (rows["rule"] == rule) & (rows["spec"] == spec)
    return rows[sel & (rows["strength"].isna() if strength is None else np.isclose(rows["strength"], strength))]


def error_terms(found: pd.DataFrame) -> tuple[float, float]:
    """A seed's error at one point (mean over trials) and its variance: Agresti-Coull plus the trials'."""
    e, n = found["error"].mean(), found["n"].mean()
    p = (n * e + 2) / (n + 4)
    trials = found["error"].var(ddof=1) / len(found) if len(found) > 1 else 0.0
    return e, p * (1 - p) / (n + 4) + trials


def band_ends(values, sds) -> tuple[float, float]:
    return min(v - Z * s for v, s in zip(values, sds)), max(v + Z * s for v, s in zip(values, sds))


def recompute_input(q: dict, rows: pd.DataFrame) -> tuple[list[float], list[float]]:
    """A per-seed input (a sum of errors, or a spread over columns): its values and standard deviations."""
    values, sds = [], []
    for seed in sorted(rows["train_seed"].unique()):
        mine = rows[rows["train_seed"] == seed]
        got = [error_terms(pick(mine, q["rule"], t["spec"], t["strength"])) for t in q["terms"]]
        if q["kind"] == "sum":
            values.append(sum(t["coef"] * e for t, (e, _) in zip(q["terms"], got)))
            sds.append(math.sqrt(sum(t["coef"] ** 2 * v for t, (_, v) in zip(q["terms"], got))))
        else:
            hi, lo = max(got, key=lambda g: g[0]), min(got, key=lambda g: g[0])
            values.append(hi[0] - lo[0])
            sds.append(math.sqrt(hi[1] + lo[1]))
    return [q["scale"] * v for v in values], [q["scale"] * s for s in sds]


def own_points(rule: str) -> set[tuple[str, float]]:
    """What the docs say a rule's own projection is among the bits points (ternarize t = 0 is sign)."""
    return {"sign": {("ternarize", 0.0)}, "round": {("ternarize", 0.5), ("quantize", 2.0)}}.get(rule, set())


def recompute_bits(rule: str, rows: pd.DataFrame, within: float) -> dict:
    clean = [error_terms(pick(rows[rows["train_seed"] == s], "none", "none", None))
             for s in sorted(rows["train_seed"].unique())]
    b = np.mean([e for e, _ in clean])
    sd_b2 = np.var([e for e, _ in clean], ddof=1) / len(clean) + sum(v for _, v in clean) / len(clean) ** 2
    mine = rows[(rows["rule"] == rule) & rows["distortion"].isin(["ternarize", "quantize"])]
    out = {"central": [], "optimistic": [], "pessimistic": []}
    for _, g in mine.groupby("train_seed"):
        points = [(key, *error_terms(p), p["eff_bits"].mean()) for key, p in g.groupby(["spec", "strength"])
                  if (key[0], float(key[1])) not in own_points(rule)]
        for kind, side in (("central", 0), ("optimistic", -1), ("pessimistic", 1)):
            ok = [bits for _, e, v, bits in points if e - b + side * Z * math.sqrt(v + sd_b2) <= within / 100 + 1e-12]
            out[kind].append(min(ok) if ok else math.inf)
    return out


def span_of(kind: str, inputs: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(mean, low, high) of a claim's effect from its inputs' (mean, low, high), by interval arithmetic."""
    if kind in ("fragile", "sign"):
        return inputs[0]
    a, b = inputs
    if kind == "bits":
        return a[0] - b[0], a[1] - b[2], a[2] - b[1]
    corners = [x / y for x in a[1:] for y in b[1:]] if b[1] > 0 else [math.nan]
    r = (a[0] / b[0], min(corners), max(corners))
    return (1 - r[0], 1 - r[2], 1 - r[1]) if kind == "clipping" else r


def expected_verdict(low: float, high: float, threshold: dict) -> str:
    t = threshold["value"]
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if threshold["relation"] == "more than":
        return "shown" if low > t else "not shown" if high <= t else "inconclusive"
    return "shown" if high < t else "not shown" if low >= t else "inconclusive"


def check_part(key: str, part: dict, threshold: dict, rows: pd.DataFrame, within: float) -> None:
    spans = []
    for q in part["inputs"].values():
        if "kind" in q:
            values, sds = recompute_input(q, rows)
            assert q["values"] == pytest.approx(values) and q["sds"] == pytest.approx(sds)
            spans.append((float(np.mean(values)), *band_ends(values, sds)))
        else:
            bits = recompute_bits(q["rule"], rows, within)
            for kind, found in bits.items():
                assert [math.inf if v is None else v for v in q[kind]] == pytest.approx(found)
            spans.append((float(np.mean(bits["central"])), min(bits["optimistic"]), max(bits["pessimistic"])))
    mean, low, high = span_of(key, spans)
    for cited, x in zip((part[k] for k in ("value", "low", "high")), (mean, low, high)):
        assert (cited is None and not math.isfinite(x)) or cited == pytest.approx(x)
    assert part["verdict"] == expected_verdict(low, high, threshold)


def test_every_verdict_follows_from_results_csv(tiny):
    name, result, out = tiny
    rows = pd.read_csv(out / "results.csv")
    claims = json.loads((out / "claims.json").read_text())["claims"]
    assert [c["id"] for c in claims] == ["a", "b", "c", "d", "e"]
    tested = []
    for claim in claims:
        assert FIELDS <= set(claim) and claim["n_seeds"] == 2 and claim["n_test"] == 355
        if not claim["parts"]:
            assert claim["verdict"] == "inconclusive" and claim["reason"].startswith("missing data: the grid has no")
            assert claim["effect"] is None and claim["interval"]["low"] is None
            continue
        tested.append(claim["key"])
        for part in claim["parts"]:
            check_part(claim["key"], part, claim["threshold"], rows, result.config.within)
        verdicts = [p["verdict"] for p in claim["parts"]]
        order = ["not shown", "inconclusive", "shown"]
        best = (min if claim["quantifier"] == "each" else max)(verdicts, key=order.index)
        assert claim["verdict"] == best
        deciding = next(p for p in claim["parts"] if p["name"] == claim["effect"]["part"])
        assert deciding["verdict"] == best and claim["reason"].startswith(deciding["reason"])
        assert [claim["interval"]["low"], claim["interval"]["high"]] == [deciding["low"], deciding["high"]]
    assert tested == {"fragile": ["fragile", "clipping"], "bits": ["stochastic", "sign", "bits"]}[name]
    if name == "bits":  # the sign-trained network's ternarize t = 0 is sign itself: not counted
        bits = {b["rule"]: b for b in claims[4]["bits"]}
        assert bits["sign"]["excluded"] == ["ternarize t=0"] and bits["none"]["excluded"] == []
        assert "ternarize t=0" not in bits["sign"]["points"]


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
    assert "| claim | statement | effect | threshold | interval | seeds | test images | verdict | reason |" in text
    assert text == grid_markdown(result, "figure.png" if (out / "figure.png").exists() else None)


# ------------------------------------------------------------------ verdicts from exact numbers

STRENGTH_NAMES = {"ternarize": "t", "quantize": "bits", "addnorm": "sigma"}


def fake_rows(errors: dict[tuple[str, str], list[float]], bits: dict | None = None, n: int = 355) -> pd.DataFrame:
    """Rows with given per-seed errors: {(rule, spec or 'spec=strength'): [error of seed 0, seed 1, ...]}."""
    rows = []
    for (rule, column), per_seed in errors.items():
        spec, _, strength = column.partition("=")
        for seed, err in enumerate(per_seed):
            rows.append({"rule": rule, "train_seed": seed, "distortion": spec.split(":")[0], "spec": spec,
                         "strength_name": STRENGTH_NAMES.get(spec, "x") if strength else "",
                         "strength": float(strength) if strength else math.nan, "trial": 0, "n": n, "error": err,
                         "agreement": 1.0, "eff_bits": (bits or {}).get((rule, column), [math.nan] * 9)[seed]})
    return pd.DataFrame(rows)


AT = ("sign", "round", "addnorm:sigma=0.1", "addnorm:sigma=0.3")
RULES = ["none", "clip", "sign", "stoch"]
# Every claim holds by far, on a test set large enough (n = 100,000) that its sampling error is small.
GOOD = {
    ("none", "none"): [0.02, 0.02, 0.021], ("none", "sign"): [0.5, 0.55, 0.6], ("none", "round"): [0.4, 0.45, 0.5],
    ("none", "addnorm=0.1"): [0.03] * 3, ("none", "addnorm=0.3"): [0.4, 0.45, 0.42],
    ("clip", "none"): [0.02] * 3, ("clip", "sign"): [0.3] * 3, ("clip", "round"): [0.05, 0.06, 0.07],
    ("clip", "addnorm=0.1"): [0.03] * 3, ("clip", "addnorm=0.3"): [0.08] * 3,
    ("stoch", "none"): [0.03] * 3, ("stoch", "sign"): [0.05] * 3, ("stoch", "round"): [0.04] * 3,
    ("stoch", "addnorm=0.1"): [0.03] * 3, ("stoch", "addnorm=0.3"): [0.045] * 3,
    ("sign", "none"): [0.4, 0.45, 0.5], ("sign", "sign"): [0.02] * 3, ("sign", "round"): [0.3] * 3,
    ("sign", "addnorm=0.1"): [0.4] * 3, ("sign", "addnorm=0.3"): [0.5] * 3,
    # the bits sweeps: sign's ternarize t = 0 is sign itself; t = 0.2 is within 2 points of sign's own clean
    # error (40-50%), not of none's (2%)
    ("none", "quantize=3"): [0.025] * 3, ("none", "quantize=2"): [0.3] * 3,
    ("sign", "ternarize=0"): [0.02] * 3, ("sign", "ternarize=0.1"): [0.025] * 3, ("sign", "ternarize=0.2"): [0.3] * 3,
    ("stoch", "ternarize=0.1"): [0.03] * 3, ("stoch", "quantize=3"): [0.03] * 3,
}
GOOD_BITS = {("none", "quantize=3"): [2.5] * 3, ("none", "quantize=2"): [1.2] * 3, ("sign", "ternarize=0"): [1.0] * 3,
             ("sign", "ternarize=0.1"): [1.1] * 3, ("sign", "ternarize=0.2"): [1.05] * 3,
             ("stoch", "ternarize=0.1"): [1.1] * 3, ("stoch", "quantize=3"): [2.5] * 3}


def judged(errors: dict, bits: dict = GOOD_BITS, rules: list[str] = RULES, n: int = 100_000, at=AT):
    return {c.key: c for c in judge_claims(fake_rows(errors, bits, n), rules, parse_columns(at), within=2.0)}


def verdicts(errors: dict, **kw) -> dict[str, str]:
    return {k: c.verdict for k, c in judged(errors, **kw).items()}


def swapped(errors: dict, a: str, b: str) -> dict:
    """The same rows with rules ``a`` and ``b`` (or, for one rule, columns ``a`` and ``b``) exchanged."""
    other = {a: b, b: a}
    return {(other.get(r, r), c): v for (r, c), v in errors.items()}


def test_every_claim_is_shown_when_its_effect_is_large():
    claims = judged(GOOD)
    assert {k: c.verdict for k, c in claims.items()} == dict.fromkeys(claims, "shown")
    assert claims["fragile"].deciding.effect.span.mean == pytest.approx(100 * (0.45 - 0.0203333), abs=1e-3)
    assert claims["fragile"].reason.startswith("round: 43.0 points [")


def test_claim_bits_leaves_out_the_rules_own_projection_and_uses_nones_clean_error():
    bits = {b.rule: b for b in judged(GOOD)["bits"].bits}
    assert bits["sign"].excluded == ("ternarize t=0",)  # sign at t = 0 (1.0 bits) is sign-trained's native code
    assert bits["sign"].central == (1.1,) * 3  # not 1.05: 30% is within 2 points of sign's clean error, not none's
    assert bits["none"].central == (2.5,) * 3 and bits["none"].excluded == ()
    assert bits["stoch"].central == (1.1,) * 3
    only_native = {**GOOD, ("sign", "ternarize=0.1"): [0.3] * 3}  # then nothing but its own code stays within
    found = {b.rule: b for b in judged(only_native)["bits"].bits}["sign"]
    assert found.central == (math.inf,) * 3 and found.points == ("-",) * 3


@pytest.mark.parametrize("key, a, b", [
    ("fragile", "none", "sign"),  # none's clean error exchanged with its error under sign (and round)
    ("clipping", "none", "clip"),
    ("stochastic", "none", "stoch"),
    ("sign", "none", "sign"),  # sign's hidden-weight error exchanged with its error under sign
    ("bits", "none", "sign"),
])
def test_contradicting_rows_are_not_shown(key, a, b):
    if key in ("fragile", "sign"):
        rule = "none" if key == "fragile" else "sign"
        rows = {**GOOD, (rule, "none"): GOOD[(rule, "sign")], (rule, "sign"): GOOD[(rule, "none")]}
        if key == "fragile":
            rows[("none", "round")] = [0.01] * 3
    else:
        rows = swapped(GOOD, a, b)
    bits = swapped(GOOD_BITS, a, b) if key == "bits" else GOOD_BITS
    assert verdicts(rows, bits=bits)[key] == "not shown"


@pytest.mark.parametrize("key, change, verdict", [
    ("fragile", {("none", "sign"): [0.08, 0.09, 0.10]}, "not shown"),  # a clear loss of 6-8 points: below 10
    ("fragile", {("none", "sign"): [0.11, 0.12, 0.13]}, "inconclusive"),  # 9-11 points: across the threshold
    ("clipping", {("clip", "round"): [0.25, 0.26, 0.27]}, "inconclusive"),  # removes 38-52% of the loss
    ("clipping", {("clip", "round"): [0.33] * 3}, "not shown"),  # removes a clear 25-35%: less than half
    ("stochastic", {("stoch", "sign"): [0.38] * 3}, "not shown"),  # spread 35 points: 60% of none's
    ("sign", {("sign", "none"): [0.07, 0.08, 0.09]}, "not shown"),  # hidden weights 5-7 points worse
    ("bits", {("sign", "ternarize=0.1"): [0.3] * 3, ("stoch", "ternarize=0.1"): [0.3] * 3}, "not shown"),  # 2.5 bits
])
def test_an_effect_below_its_threshold_is_never_shown(key, change, verdict):
    assert verdicts({**GOOD, **change})[key] == verdict


def test_the_test_set_size_enters_the_interval():
    # the same errors on 100,000 test images are shown, on 20 they are not: a loss of 12 points on 20 images
    rows = {**GOOD, ("none", "sign"): [0.14] * 3, ("none", "round"): [0.14] * 3, ("none", "none"): [0.02] * 3}
    assert verdicts(rows)["fragile"] == "shown"
    small = judged(rows, n=20)["fragile"]
    assert small.verdict == "inconclusive" and small.deciding.effect.span.low < 10


def test_bands_are_the_seeds_ends_with_the_binomial_term():
    m = Measure((1.0, 2.0), (0.1, 0.2))
    assert (m.mean, m.low, m.high) == pytest.approx((1.5, 1 - Z * 0.1, 2 + Z * 0.2))
    assert math.isnan(Measure((1.0,), (0.1,)).low)  # one seed: no interval
    rows = fake_rows({("none", "none"): [0.0, 0.0]}, n=96)  # no mistakes on 96 images: still a term, (2/100)
    terms = seed_terms(rows, "none", parse_columns(())[0])
    assert terms["var"].tolist() == pytest.approx([0.02 * 0.98 / 100] * 2)


@pytest.mark.parametrize("rule, spec, strength, own", [
    ("sign", "ternarize", 0.0, True), ("sign", "ternarize", 0.1, False), ("round", "ternarize", 0.5, True),
    ("round", "quantize", 2.0, True), ("sign", "quantize", 2.0, False), ("stoch", "ternarize", 0.0, False),
    ("none", "ternarize", 0.0, False), ("power:beta=0.5", "quantize", 3.0, False),
])
def test_own_projection(rule, spec, strength, own):
    assert is_own_projection(rule, spec, strength) is own


def test_one_seed_gives_no_interval_and_no_verdict():
    claims = judged({k: v[:1] for k, v in GOOD.items()}, bits={k: v[:1] for k, v in GOOD_BITS.items()})
    assert {c.verdict for c in claims.values()} == {"inconclusive"}
    assert "one training seed" in claims["fragile"].reason
    assert not Interval.of([0.9], seeds=1).defined


def test_missing_data_is_inconclusive_with_its_reason():
    rows = fake_rows({("none", "none"): [0.02, 0.03], ("none", "sign"): [0.5, 0.6]})
    claims = judge_claims(rows, ["none"], parse_columns(("sign",)), within=2.0)
    assert [c.verdict for c in claims] == ["inconclusive"] * 5
    assert all(c.reason.startswith("missing data: the grid has no") for c in claims)
    assert "`round` column" in claims[0].reason and "rule `clip`" in claims[1].reason
    assert "0.68" in claims[4].note  # the paper's number stands beside claim (e) even without data


def test_interval_is_the_central_95_percent_of_the_values():
    iv = Interval.of([0.1, 0.2, 0.3, 0.4], seeds=2)
    assert iv.mean == pytest.approx(0.25)
    assert (iv.low, iv.high) == pytest.approx((0.1075, 0.3925))
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
    code, stdout, stderr = run_cli("reproduce", "--quick", "--epochs", "1", "--trials", "1", "--distortions",
                                   "sign,ternarize", "--at", "sign,round,addnorm:sigma=0.3", "-o", out)
    assert code == 0, stderr
    for rule in DEFAULT_RULES:
        for seed in (0, 1):
            assert (out / "models" / f"{rule.replace(':', '_')}-seed{seed}.pt").is_file()
        assert f"\n| {rule} |" in (out / "report.md").read_text()
    claims = json.loads((out / "claims.json").read_text())
    assert claims["meta"]["seeds"] == [0, 1] and [c["id"] for c in claims["claims"]] == list("abcde")
    for claim in claims["claims"]:  # every claim has data here: each field filled
        assert FIELDS <= set(claim) and claim["verdict"] in ("shown", "not shown", "inconclusive")
        assert (claim["n_seeds"], claim["n_test"]) == (2, 355) and claim["reason"] and claim["statement"]
        assert {"value", "unit", "text"} <= set(claim["effect"]) and {"low", "high"} <= set(claim["interval"])
        assert claim["threshold"]["relation"] in ("more than", "less than") and claim["threshold"]["why"]
        assert f"({claim['id']}) {claim['verdict']}: {claim['statement']}" in stdout
    assert {b["rule"] for b in claims["claims"][4]["bits"]} == set(DEFAULT_RULES)
    assert "wrote" in stdout


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
    assert claims[3]["verdict"] == "inconclusive" and claims[3]["interval"]["low"] is None
    assert "one training seed" in claims[3]["reason"]
    assert "One training seed" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize("count,words", [(1, ["1 trial per random point", "1 epoch,"]),
                                         (3, ["3 trials per random point", "3 epochs,"])])
def test_recipe_line_counts_trials_and_epochs_in_good_grammar(count, words):
    from types import SimpleNamespace

    from robustbench_w.paper.report import recipe_line

    meta = dict(dataset="digits", n_test=10, arch="mlp", optimizer="sgd", lr=0.1, schedule="cosine", epochs=count,
                batch_size=8, init="uniform", clip=1.0, seeds=[0], trials=count, within=1.0, elapsed_s=1.0, quick=False)
    line = recipe_line(SimpleNamespace(meta=meta))
    assert all(w in line for w in words), line
