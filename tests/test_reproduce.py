"""The reproduce grid: one model per rule, swept; the table, the statements, the files and the CLI."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from robustbench_w import load_model
from robustbench_w.cli.reproduce import SpecList
from robustbench_w.errors import InvalidValueError, WrobustError
from robustbench_w.paper.report import compare, findings, grid_markdown, grid_table, write_grid
from robustbench_w.paper.reproduce import DEFAULT_RULES, GridConfig, GridResult, check_grid, representative, reproduce

SMALL = dict(epochs=2, device="cpu", trials=2)


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[GridResult, object]:
    out = tmp_path_factory.mktemp("grid")
    config = GridConfig(rules=("none", "clip", "sign"), distortions=("sign", "round", "addnorm"), **SMALL)
    return reproduce(config, out), out


def test_rows_summary_and_checkpoints(grid):
    result, out = grid
    assert list(result.rows["rule"].unique()) == ["none", "clip", "sign"]
    assert set(result.rows["distortion"]) == {"none", "sign", "round", "addnorm"}
    assert set(result.summary["rule"]) == {"none", "clip", "sign"}
    assert result.meta["trials"] == 2 and result.meta["epochs"] == 2
    for rule in ("none", "clip", "sign"):
        loaded = load_model(out / "models" / f"{rule}.pt")
        assert loaded.extra["train"]["rule"] == rule
        clean = result.summary.query("rule == @rule and distortion == 'none'")["error_mean"].iloc[0]
        assert clean == pytest.approx(result.training[rule]["test_error"])


def test_table_has_one_row_per_rule_and_round_bits(grid):
    result, _ = grid
    heads, body = grid_table(result)
    assert heads[0] == "rule" and heads[-1] == "round bits/w"
    assert "addnorm sigma=0.5 err %" in heads
    assert [r[0] for r in body] == ["none", "clip", "sign"]
    assert all(0 < float(r[-1]) <= math.log2(3) + 1e-9 for r in body)


def test_files_and_markdown(grid):
    result, out = grid
    written = {p.name for p in write_grid(result, out)}
    assert {"results.csv", "summary.csv", "report.md"} <= written
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == len(result.rows) and "rule" in rows.columns
    text = (out / "report.md").read_text()
    assert "## What the grid shows" in text
    for rule in ("none", "clip", "sign"):
        assert f"\n| {rule} |" in text
    assert text == grid_markdown(result, "figure.png" if "figure.png" in written else None)


def test_representative_strength_is_the_middle_of_the_grid():
    assert representative([0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0], identity=0.0) == 0.5
    assert representative([1.0, 0.75, 0.5, 0.25, 0.1, 0.05, 0.0], identity=1.0) == 0.1
    assert math.isnan(representative([1.0], identity=1.0))


# ------------------------------------------------------------------ statements from the numbers


def fake(errors: dict[str, dict[str, float]], n: int = 1000) -> GridResult:
    """A grid with exact (deterministic) errors: {rule: {distortion: error}}."""
    rows = []
    for rule, by_dist in errors.items():
        for dist, err in by_dist.items():
            rows.append({"rule": rule, "model": rule, "dataset": "toy", "distortion": dist, "spec": dist,
                         "strength_name": "", "strength": math.nan, "trials": 1, "error_mean": err, "error_std": 0.0,
                         "error_ci_low": err, "error_ci_high": err})
    meta = {"rules": list(errors), "dataset": "toy", "n_test": n}
    return GridResult(pd.DataFrame(rows), pd.DataFrame(rows), {}, GridConfig(), meta)


def test_compare_uses_the_test_set_margin():
    s = fake({"a": {"sign": 0.10}, "b": {"sign": 0.20}, "c": {"sign": 0.11}}).summary
    a, b, c = (s.iloc[i] for i in range(3))
    assert compare(a, b, 1000) == -1 and compare(b, a, 1000) == 1
    assert compare(a, c, 1000) == 0  # 1 point apart on 1,000 images: no clear difference
    assert compare(a, b, 20) == 0  # 10 points apart on 20 images: no clear difference either


def test_findings_say_plainly_when_the_claims_do_not_show():
    same = {"none": 0.05, "sign": 0.30, "round": 0.40}
    text = "\n".join(findings(fake({"none": same, "sign": dict(same), "clip": dict(same)})))
    assert "the paper's claims do not show" in text
    assert "The claim that clipping alone gives robustness does not show here." in text


def test_findings_when_the_claims_show():
    text = "\n".join(findings(fake({"none": {"none": 0.05, "sign": 0.5, "round": 0.6},
                                    "sign": {"none": 0.05, "sign": 0.06, "round": 0.07}})))
    assert "every rule has a clearly lower error" in text and "`sign` vs `none`" in text
    assert "under sign, round: the paper's claims show" in text  # names only what was swept


def test_findings_note_a_robust_baseline_and_a_missing_one():
    text = "\n".join(findings(fake({"none": {"none": 0.05, "sign": 0.05, "round": 0.5},
                                    "sign": {"none": 0.05, "sign": 0.05, "round": 0.06}})))
    assert "shows in part" in text and "already robust to sign" in text
    assert "not trained" in findings(fake({"sign": {"none": 0.1, "sign": 0.1}}))[0]


# ------------------------------------------------------------------ validation and CLI


def test_grid_is_checked_before_any_training():
    with pytest.raises(InvalidValueError, match="needs its strength"):
        check_grid(GridConfig(rules=("none", "power")))
    with pytest.raises(InvalidValueError, match="given twice"):
        check_grid(GridConfig(rules=("sign", "binarize")))
    with pytest.raises(WrobustError, match="unknown distortion"):
        check_grid(GridConfig(distortions=("sgn",)))


def test_spec_list_keeps_options_with_their_spec():
    assert SpecList().convert("none, power:beta=0.5,scale=max,stoch", None, None) == (
        "none", "power:beta=0.5,scale=max", "stoch")


def test_cli_reproduce_default_rules(tmp_path, run_cli):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("reproduce", "--quick", "--epochs", "1", "--trials", "1",
                                   "--distortions", "sign,round", "-o", out)
    assert code == 0, stderr
    report = (out / "report.md").read_text()
    for rule in DEFAULT_RULES:
        assert f"\n| {rule} |" in report
        assert rule in stdout
    assert "wrote" in stdout and (out / "results.csv").is_file()


def test_cli_reproduce_usage_errors(tmp_path, run_cli):
    code, _, stderr = run_cli("reproduce", "--rules", "none,power", "-o", tmp_path / "o")
    assert code == 2 and "needs its strength" in stderr
    (tmp_path / "file").write_text("")
    code, _, stderr = run_cli("reproduce", "--rules", "none", "-o", tmp_path / "file")
    assert code == 2 and "is a file" in stderr
    with pytest.raises(WrobustError, match="not a directory"):
        write_grid(None, tmp_path / "file")
