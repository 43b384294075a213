"""``wrobust gate``: verdicts as soon as they are certain (``trials = "auto"``), every policy problem in one
run, and output that fits 80 columns (issue 22)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from rich.console import Console

from robustbench_w.engine.passes.evaluate import Evaluator
from robustbench_w.engine.runs.stats import summarize
from robustbench_w.engine.weights.health import Health
from robustbench_w.gate.decide import AT_CAP, DECIDED, DETERMINISTIC, NARROW
from robustbench_w.gate.policy import PolicyProblems, parse_policy, tomllib
from robustbench_w.gate.report import gate_document, render_gate
from robustbench_w.gate.verdict import GateResult, judge, run_gate

MODEL = "builtin:digits-mlp"


def policy_of(text: str):
    return parse_policy(tomllib.loads(text)["gate"])


def requirement(distortion: str, strength: float | None, limits: str) -> str:
    s = "" if strength is None else f"strength = {strength}\n"
    return f'[[gate.require]]\ndistortion = "{distortion}"\n{s}{limits}\n'


# ------------------------------------------------------------------ decisions as soon as they are certain

def test_a_far_limit_stops_at_the_minimum_and_one_in_the_noise_runs_on():
    head = '[gate]\ndataset = "digits"\nlimit = 120\nmax_trials = 8\n'
    far = run_gate(MODEL, policy_of(head + requirement("noise", 0.1, "max_error = 0.9")), device="cpu")
    v = far.verdicts[0]
    assert (v.trials, v.stopped, v.passed) == (3, DECIDED, True)
    mean = v.checks[0].mean
    near = run_gate(MODEL, policy_of(head + requirement("noise", 0.1, f"max_error = {mean}")), device="cpu")
    v = near.verdicts[0]
    assert v.trials > 3 and v.stopped == AT_CAP and v.trials == 8
    assert v.checks[0].judged_on == f"mean, {AT_CAP}"
    doc = json.loads(json.dumps(gate_document(near)))["gate"]["requirements"][0]
    assert (doc["trials"], doc["stopped"]) == (8, AT_CAP)
    assert json.loads(json.dumps(gate_document(far)))["gate"]["requirements"][0]["stopped"] == DECIDED


def test_ci_width_stops_a_limit_that_sits_in_the_noise_before_the_cap():
    head = '[gate]\ndataset = "digits"\nlimit = 120\nmax_trials = 30\nci_width = 10\n'
    far = run_gate(MODEL, policy_of(head + requirement("noise", 0.1, "max_error = 0.9")), device="cpu")
    mean = far.verdicts[0].checks[0].mean
    near = run_gate(MODEL, policy_of(head + requirement("noise", 0.1, f"max_error = {mean}")), device="cpu")
    v = near.verdicts[0]
    assert v.stopped == NARROW and 3 <= v.trials < 30


def test_requirements_on_one_point_share_it_and_deterministic_ones_run_once():
    text = ('[gate]\ndataset = "digits"\nlimit = 120\n' + requirement("noise", 0.1, "max_error = 0.9")
            + requirement("noise", 0.1, "min_agreement = 0.1") + requirement("sign", None, "max_error = 0.9"))
    result = run_gate(MODEL, policy_of(text), device="cpu")
    assert len(result.rows) == 1 + 3 + 1  # clean, the shared noise point's three trials, sign once
    assert [v.stopped for v in result.verdicts] == [DECIDED, DECIDED, DETERMINISTIC]


@pytest.fixture
def passes(monkeypatch) -> list:
    """Every evaluation pass over the data (the clean one and each point's)."""
    calls: list = []
    run = Evaluator.run

    def counted(self, *args, **kwargs):
        calls.append(1)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "run", counted)
    return calls


def test_clear_verdicts_take_at_most_half_the_passes_of_ten_fixed_trials(passes):
    reqs = (requirement("noise", 0.1, "max_error = 0.6") + requirement("multunif", 0.5, "max_error = 0.6")
            + requirement("noise", 0.05, "min_agreement = 0.5"))
    auto = run_gate(MODEL, policy_of('[gate]\ndataset = "digits"\n' + reqs), device="cpu")
    n_auto = len(passes)
    passes.clear()
    fixed = run_gate(MODEL, policy_of('[gate]\ndataset = "digits"\ntrials = 10\n' + reqs), device="cpu")
    n_fixed = len(passes)
    assert auto.passed and fixed.passed
    assert n_fixed >= 31 and n_auto <= n_fixed / 2, (n_auto, n_fixed)
    assert [v.trials for v in auto.verdicts] == [3, 3, 3]


# ------------------------------------------------------------------ every problem at once

FOUR_PROBLEMS = """
[gate]
trails = 3
image_size = "big"

[[gate.require]]
distortion = "nosie"
max_error = 0.1

[[gate.require]]
distortion = "noise"
strength = "0.1"
max_error = 0.1

[[gate.require]]
distortion = "sign"
max_error = 0.1
"""


def test_a_policy_with_four_problems_lists_all_four_in_one_run(run_cli, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text(FOUR_PROBLEMS)
    code, out, err = run_cli("gate", MODEL, "--policy", policy)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == f"wrobust: error: {policy}: 4 problems in the policy"
    assert len(lines) == 5 and all(line.startswith(f"{policy}: gate.") for line in lines[1:])
    wrong = [line.split(": ")[1] for line in lines[1:]]
    assert wrong == ["gate.trails", "gate.image_size", "gate.require[0].distortion", "gate.require[1].strength"]


def test_one_problem_reads_as_before_and_command_line_values_are_checked_with_the_policy():
    with pytest.raises(PolicyProblems) as info:
        policy_of(FOUR_PROBLEMS)
    assert len(info.value.problems) == 4
    one = '[gate]\ntrials = 1\n' + requirement("noise", 0.1, "max_error = 0.5")
    with pytest.raises(Exception, match=r"^gate.require\[0\].judge: 'ci' needs trials >= 2"):
        policy_of(one)
    fixed = parse_policy(tomllib.loads(one)["gate"], given={"trials": 3})  # the command line mends it
    assert fixed.trials == 3 and fixed.sources["trials"] == "command line"


# ------------------------------------------------------------------ 80 columns

def fixed_result() -> GateResult:
    """A gate result from fixed rows: three requirements, one with a long name, one undecided at the cap."""
    text = ('[gate]\nmax_trials = 4\n' + requirement("noise", 0.1, "max_error = 0.15\nmin_agreement = 0.9")
            + '[[gate.require]]\nname = "multiplicative uniform noise at half strength, the worst case we ship"\n'
              'distortion = "multunif"\nstrength = 0.5\nmax_error = 0.12\n'
            + requirement("sign", None, "max_drop = 0.01"))
    policy = policy_of(text)
    base = {"model": "checkpoints/resnet18-cifar10-sign-projection.pt", "dataset": "cifar10", "n": 10000,
            "seed": 0, "loss": 0.5, "nonfinite": 0, "strength_name": ""}
    rows = [dict(base, distortion="none", spec="none", strength=math.nan, trial=0, error=0.05, agreement=1.0,
                 weight_change=0.0, stochastic=False)]
    rows += [dict(base, distortion="addnorm", spec="addnorm", strength_name="sigma", strength=0.1, trial=t,
                  error=e, agreement=0.95, weight_change=0.1, stochastic=True) for t, e in enumerate([0.06, 0.07, 0.065])]
    rows += [dict(base, distortion="multunif", spec="multunif", strength_name="gamma", strength=0.5, trial=t,
                  error=e, agreement=0.9, weight_change=0.3, stochastic=True)
             for t, e in enumerate([0.10, 0.14, 0.11, 0.13])]
    rows.append(dict(base, distortion="sign", spec="sign", strength=math.nan, trial=0, error=0.08, agreement=0.9,
                     weight_change=1.5, stochastic=False))
    frame = pd.DataFrame(rows)
    frame["accuracy"] = 1 - frame["error"]
    summary = summarize(frame)
    verdicts = [judge(r, summary, {}, None, policy=policy) for r in policy.requirements]
    meta = {"model": base["model"], "dataset": "cifar10", "n": 10000,
            "normalization_text": "(x/255 - (0.4914, 0.4822, 0.4465)) / (0.247, 0.2435, 0.2616)",
            "normalization_source": "the checkpoint"}
    return GateResult(policy, verdicts, frame, summary, meta, None, [], Health(), [])


def test_gate_output_fits_80_columns(snapshot):
    result = fixed_result()
    assert [v.stopped for v in result.verdicts] == [DECIDED, AT_CAP, DETERMINISTIC]
    console = Console(record=True, width=80, force_terminal=False, color_system=None)
    render_gate(result, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "error drop" in text and "+3.00 pp" in text and "<= 15.00%" in text  # percent, as sweep prints
    snapshot("gate_80.txt", text)


def test_the_cli_output_at_columns_80_has_no_longer_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    policy = tmp_path / "p.toml"
    policy.write_text('[gate]\ndataset = "digits"\nlimit = 100\n'
                      + '[[gate.require]]\nname = "a requirement with a name far too long for its column"\n'
                        'distortion = "noise"\nstrength = 0.3\nmax_error = 0.05\n')
    code, out, _ = run_cli("gate", MODEL, "--policy", policy, "--device", "cpu")
    assert code == 1 and "FAIL a requirement" in out
    assert max(len(line) for line in out.splitlines()) <= 80
