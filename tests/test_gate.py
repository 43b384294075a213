"""``wrobust gate``: policies, verdicts, exit codes, JUnit/Markdown/JSON files and baselines."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from robustbench_w.errors import InputFileError, InvalidValueError, UnknownNameError
from robustbench_w.gate.policy import load_policy, parse_policy
from robustbench_w.gate.report import gate_markdown, junit_xml
from robustbench_w.gate.verdict import bits_available, load_baseline, run_gate

MODEL = "builtin:digits-mlp"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "ci"

# Measured on builtin:digits-mlp (digits test split, clean error 0.0254): noise 0.1 error ~0.03-0.05,
# noise 0.3 error ~0.30-0.45, sign error 0.0423 (drop 0.0169), power 0.5 agreement 0.9887.
PASSING = """
[gate]
dataset = "digits"
trials = 3
seed = 0

[[gate.require]]
distortion = "noise"
strength = 0.1
max_error = 0.15

[[gate.require]]
distortion = "sign"
max_drop = 0.05

[[gate.require]]
distortion = "power"
strength = 0.5
min_agreement = 0.9
"""

FAILING = PASSING + """
[[gate.require]]
name = "strong noise"
distortion = "noise"
strength = 0.3
max_error = 0.10
"""


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def policy_of(text: str):
    from robustbench_w.gate.policy import tomllib  # tomllib, or tomli on Python 3.10

    return parse_policy(tomllib.loads(text)["gate"])


@pytest.fixture(scope="module")
def failing_result():
    return run_gate(MODEL, policy_of(FAILING), device="cpu")


# ------------------------------------------------------------------ the CLI: exit codes and output

def test_policy_the_model_meets_exits_0(run_cli, tmp_path):
    code, out, err = run_cli("gate", MODEL, "--policy", write(tmp_path, PASSING), "--device", "cpu")
    assert code == 0, err
    assert "gate passed: 3 of 3" in out and "FAIL" not in out


def test_policy_the_model_cannot_meet_exits_1_naming_requirement_and_value(run_cli, tmp_path, failing_result):
    code, out, err = run_cli("gate", MODEL, "--policy", write(tmp_path, FAILING), "--device", "cpu")
    assert code == 1, err
    measured = failing_result.verdicts[3].checks[0].value
    assert f"FAIL strong noise: error {100 * measured:.2f}% (95% CI high) > limit 10.00%" in out
    assert "gate FAILED: 1 of 4" in out


def test_quiet_still_prints_failures_and_verdict(run_cli, tmp_path):
    code, out, _ = run_cli("gate", MODEL, "--policy", write(tmp_path, FAILING), "--device", "cpu", "-q")
    assert code == 1
    assert "FAIL strong noise" in out and "│" not in out  # no table


def test_malformed_policy_exits_2_naming_the_key(run_cli, tmp_path):
    bad = PASSING.replace("strength = 0.5", 'strength = "0.5"')
    policy = write(tmp_path, bad)
    code, out, err = run_cli("gate", MODEL, "--policy", policy)
    assert code == 2 and out == ""
    assert err.strip() == f"wrobust: error: {policy}: gate.require[2].strength: expected a number, not a string '0.5'"


def test_policy_from_pyproject_and_missing_policy(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("gate", MODEL)
    assert code == 2 and "no policy" in err and "--policy" in err
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    code, _, err = run_cli("gate", MODEL)
    assert code == 2 and "[tool.wrobust.gate]" in err
    pyproject = '[project]\nname = "x"\n' + PASSING.replace("[gate]", "[tool.wrobust.gate]").replace(
        "[[gate.require]]", "[[tool.wrobust.gate.require]]")
    (tmp_path / "pyproject.toml").write_text(pyproject)
    code, out, err = run_cli("gate", MODEL, "--device", "cpu")
    assert code == 0, err
    bad = pyproject.replace("max_drop = 0.05", "max_drop = -1")
    (tmp_path / "pyproject.toml").write_text(bad)
    code, _, err = run_cli("gate", MODEL)
    assert code == 2 and "tool.wrobust.gate.require[1].max_drop: -1 is outside [0, 1]" in err


def test_example_ci_policy_passes_for_the_builtin_model(run_cli):
    code, out, err = run_cli("gate", MODEL, "--policy", EXAMPLES / "robustness.toml", "--device", "cpu")
    assert code == 0, out + err
    assert "gate passed: 7 of 7" in out


def test_example_workflow_runs_the_gate_and_publishes_reports():
    text = (EXAMPLES / "wrobust-gate.yml").read_text()
    for needed in ("wrobust gate", "--policy examples/ci/robustness.toml", "--junit reports/wrobust-gate.xml",
                   "--summary reports/wrobust-gate.md", 'GITHUB_STEP_SUMMARY', "report_paths: reports/wrobust-gate.xml"):
        assert needed in text


def test_example_workflow_is_valid_yaml():
    yaml = pytest.importorskip("yaml")
    steps = yaml.safe_load((EXAMPLES / "wrobust-gate.yml").read_text())["jobs"]["gate"]["steps"]
    assert any("junit" in str(s.get("uses", "")) for s in steps)


# ------------------------------------------------------------------ policy validation (library)

@pytest.mark.parametrize(("edit", "message"), [
    (("trials = 3", "trails = 3"), "gate.trails: unknown key; did you mean 'trials'?"),
    (("max_error = 0.15", "max_eror = 0.15"), "gate.require[0].max_eror: unknown key; did you mean 'max_error'?"),
    (('distortion = "sign"', 'distortion = "sigm"'), "gate.require[1].distortion: unknown distortion 'sigm'; did you mean 'sign'"),
    (("strength = 0.5", "strength = -1"), "gate.require[2].strength: power: beta=-1 is outside its valid range [0, inf)"),
    (("strength = 0.1\n", ""), "gate.require[0].strength: missing (addnorm needs its sigma"),
    (('distortion = "sign"', 'distortion = "sign"\nstrength = 0.5'), "gate.require[1].strength: sign takes no strength"),
    (("max_drop = 0.05", ""), "gate.require[1]: no limit"),
    (("max_drop = 0.05", "max_drop = 2"), "gate.require[1].max_drop: 2 is outside [0, 1]"),
    (("min_agreement = 0.9", "min_agreement = true"), "gate.require[2].min_agreement: expected a number, not a boolean"),
    (("seed = 0", "seed = 0.5"), "gate.seed: expected an integer"),
    (("trials = 3", "trials = 0"), "gate.trials: must be at least 1"),
    (("trials = 3", 'judge = "median"'), "gate.judge: expected one of 'mean', 'ci'"),
    (("trials = 3", "trials = 1"), "gate.require[0].judge: 'ci' needs trials >= 2"),
    (('distortion = "power"', 'distortion = "power:beta=0.4"'), "gate.require[2].strength: 0.5 conflicts with beta=0.4"),
    (('distortion = "power"', 'distortion = "power:bta=0.4"'), "gate.require[2].distortion: power: unknown option 'bta'"),
])
def test_malformed_policy_names_the_key(edit, message):
    with pytest.raises((InvalidValueError, UnknownNameError)) as info:
        policy_of(PASSING.replace(*edit))
    assert str(info.value).startswith(message), str(info.value)


def test_policy_defaults_overrides_and_fixed_strength():
    text = PASSING.replace("trials = 3", 'trials = 3\njudge = "mean"\nmax_regression = 0.02').replace(
        'distortion = "power"\nstrength = 0.5', 'distortion = "power:beta=0.5"\njudge = "ci"\nmax_regression = 0')
    p = policy_of(text)
    noise, sign, power = p.requirements
    assert (noise.judge, noise.max_regression, noise.point) == ("mean", 0.02, ("addnorm", 0.1))
    assert math.isnan(sign.strength) and sign.name == "sign"
    assert (power.judge, power.max_regression, power.point, power.name) == ("ci", 0.0, ("power", 0.5), "power beta=0.5")
    assert policy_of("[gate]\n[[gate.require]]\ndistortion='sign'\nmax_error=0.1").judge == "ci"


def test_data_root_is_relative_to_the_policy_file_and_expands_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("WROBUST_TEST_DATA", "/data")
    text = PASSING.replace("trials = 3", 'trials = 3\ndata_root = "cifar"')
    assert load_policy(write(tmp_path, text)).data_root == str(tmp_path / "cifar")
    text = PASSING.replace("trials = 3", 'trials = 3\ndata_root = "$WROBUST_TEST_DATA/cifar"')
    assert load_policy(write(tmp_path, text)).data_root == "/data/cifar"


def test_policy_file_errors(tmp_path):
    with pytest.raises(InputFileError, match="not valid TOML"):
        load_policy(write(tmp_path, "[gate"))
    with pytest.raises(InputFileError, match=r"no \[gate\] table"):
        load_policy(write(tmp_path, "[gaet]\n"))
    with pytest.raises(InvalidValueError, match="gate.require: expected at least one"):
        load_policy(write(tmp_path, "[gate]\ntrials = 2\n"))
    with pytest.raises(InvalidValueError, match="other: unknown key"):
        load_policy(write(tmp_path, PASSING + "\n[other]\nx = 1\n"))


# ------------------------------------------------------------------ verdicts (library)

def test_each_limit_is_judged_and_points_are_evaluated_once(failing_result):
    r = failing_result
    assert [v.passed for v in r.verdicts] == [True, True, True, False]
    # noise 0.1 and 0.3 three trials each, sign and power once, plus the clean row
    assert len(r.rows) == 1 + 3 + 1 + 1 + 3
    sign = r.verdicts[1].checks[0]
    assert sign.judged_on == "exact" and sign.value == pytest.approx(0.0423 - 0.0254, abs=1e-3)


def test_judge_mean_or_conservative_end_of_the_interval():
    base = PASSING.replace("max_error = 0.15", "max_error = 0.9\nmin_agreement = 0.1")
    ci, mean = (run_gate(MODEL, policy_of(base.replace("trials = 3", f"trials = 3\njudge = '{j}'")), device="cpu")
                for j in ("ci", "mean"))
    err_ci, agree_ci = ci.verdicts[0].checks
    err_mean, agree_mean = mean.verdicts[0].checks
    row = ci.verdicts[0].measured
    assert err_ci.value == row["error_ci_high"] > err_mean.value == row["error_mean"]
    assert agree_ci.value == row["agreement_ci_low"] < agree_mean.value == row["agreement_mean"]
    assert (err_ci.judged_on, agree_ci.judged_on, err_mean.judged_on) == ("95% CI high", "95% CI low", "mean")
    # a limit between the mean and the interval's end: passes on the mean, fails on the interval
    limit = (err_ci.value + err_mean.value) / 2
    between = base.replace("max_error = 0.9", f"max_error = {limit}")
    assert run_gate(MODEL, policy_of(between.replace("trials = 3", "trials = 3\njudge = 'mean'")), device="cpu").passed
    assert not run_gate(MODEL, policy_of(between), device="cpu").passed


@pytest.mark.skipif(not bits_available(), reason="robustbench_w.bits is not there yet")
def test_max_bits_uses_effective_bits_of_the_distorted_weights():
    text = "[gate]\n[[gate.require]]\ndistortion='ternarize'\nstrength=0.7\nmax_bits=1.0\n" \
           "[[gate.require]]\ndistortion='sign'\nmax_bits=0.5\n"
    r = run_gate(MODEL, policy_of(text), device="cpu")
    ternary, sign = (v.checks[0] for v in r.verdicts)
    assert ternary.passed and 0 <= ternary.value < 1.0
    assert not sign.passed and 0.9 < sign.value <= 1.0  # two values: at most one bit


# ------------------------------------------------------------------ files

def test_junit_has_one_testcase_per_requirement_with_the_right_failures(run_cli, tmp_path):
    junit, summary = tmp_path / "gate.xml", tmp_path / "summary.md"
    code, _, _ = run_cli("gate", MODEL, "--policy", write(tmp_path, FAILING), "--device", "cpu",
                         "--junit", junit, "--summary", summary)
    assert code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert (suite.get("tests"), suite.get("failures")) == ("4", "1")
    assert [c.get("name") for c in cases] == ["addnorm sigma=0.1", "sign", "power beta=0.5", "strong noise"]
    assert [c.find("failure") is not None for c in cases] == [False, False, False, True]
    assert "% (95% CI high) > limit 10.00%" in cases[3].find("failure").get("message")
    md = summary.read_text()
    assert md.startswith("## wrobust gate: ❌ failed (1 of 4)") and "| ❌ | strong noise | error |" in md


def test_junit_and_markdown_of_a_pass(failing_result):
    root = junit_xml(failing_result).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "1"
    assert "| ✅ | sign | error drop |" in gate_markdown(failing_result)


def test_bad_output_paths_exit_2_before_any_work(run_cli, tmp_path):
    code, _, err = run_cli("gate", MODEL, "--policy", write(tmp_path, PASSING), "--junit", tmp_path / "x.txt")
    assert code == 2 and ".xml" in err
    code, _, err = run_cli("gate", MODEL, "--policy", write(tmp_path, PASSING), "-o", tmp_path / "no" / "x.json")
    assert code == 2 and "does not exist" in err


# ------------------------------------------------------------------ baselines

def test_output_json_serves_as_baseline_and_an_injected_regression_fails(run_cli, tmp_path):
    policy, out = write(tmp_path, PASSING), tmp_path / "gate.json"
    assert run_cli("gate", MODEL, "--policy", policy, "--device", "cpu", "-o", out)[0] == 0
    doc = json.loads(out.read_text())
    assert {"meta", "rows", "summary", "gate"} <= set(doc) and doc["gate"]["passed"] is True
    code, text, err = run_cli("gate", MODEL, "--policy", policy, "--device", "cpu", "--baseline", out)
    assert code == 0, text + err
    for row in doc["summary"]:  # pretend the earlier model did 2 points better at sign
        if row["spec"] == "sign":
            row["error_mean"] -= 0.02
    out.write_text(json.dumps(doc))
    code, text, _ = run_cli("gate", MODEL, "--policy", policy, "--device", "cpu", "--baseline", out)
    assert code == 1
    assert "FAIL sign: error rise vs baseline +2.00 pp (mean vs baseline) > limit +1.00 pp" in text


def test_sweep_json_baseline_and_missing_points_are_reported_not_failed(run_cli, tmp_path):
    sweep = tmp_path / "sweep.json"
    assert run_cli("sweep", MODEL, "-d", "noise", "-s", "0.1", "--trials", "3", "-o", sweep, "-q")[0] == 0
    code, out, err = run_cli("gate", MODEL, "--policy", write(tmp_path, PASSING), "--device", "cpu",
                             "--baseline", sweep)
    assert code == 0, out + err
    assert "note: the baseline has no point sign" in out and "note: the baseline has no point power beta=0.5" in out
    assert "the baseline has no point addnorm" not in out  # same seed, same point: compared, no rise
    assert load_baseline(sweep).error(("addnorm", 0.1)) is not None


def test_bad_baseline_exits_2(run_cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    code, _, err = run_cli("gate", MODEL, "--policy", write(tmp_path, PASSING), "--baseline", bad)
    assert code == 2 and "not a wrobust results file" in err
    bad.write_text("{")
    code, _, err = run_cli("gate", MODEL, "--policy", write(tmp_path, PASSING), "--baseline", bad)
    assert code == 2 and "not valid JSON" in err
