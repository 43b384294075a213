"""Adaptive trials (issue 14): ``--trials auto`` stops at the requested interval width, marks points that hit
the cap, is deterministic for a seed and resumes to the same trial counts."""

from __future__ import annotations

import math
import re
import time
import warnings

import pandas as pd
import pytest
import torch
from torch import nn

import robustbench_w as rw
from robustbench_w.datasets.base import EvalSet
from robustbench_w.engine.runs.signals import Interrupted
from robustbench_w.engine.runs.stats import half_width, summarize
from robustbench_w.engine.runs.sweep import SweepRunner, plan
from robustbench_w.engine.runs.trials import MIN_TRIALS, TrialRule, trial_rule
from robustbench_w.errors import InvalidValueError
from robustbench_w.gate.policy import parse_policy
from robustbench_w.gate.verdict import run_gate
from robustbench_w.report.sweep import summary_markdown

MODEL = "builtin:digits-mlp"


def cheap_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3)).eval()


def cheap_data(n: int = 400) -> EvalSet:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=gen)
    y = cheap_model()(x).argmax(1).detach()  # the clean model is right: noise moves the error from 0
    return EvalSet("cheap", x, y, 3)


def auto_sweep(**kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rw.sweep(cheap_model(), cheap_data(), ["noise"], [0.05, 0.1, 0.2], device="cpu", **kw)


def trial_errors(rows: pd.DataFrame, strength: float) -> list[float]:
    g = rows[(rows.distortion == "addnorm") & (rows.strength == strength)].sort_values("trial")
    assert g.trial.tolist() == list(range(len(g)))  # trials 0..k-1, none skipped
    return g.error.tolist()


@pytest.mark.parametrize("width", [2.0, 4.0])
def test_auto_stops_at_the_first_trial_whose_interval_is_within_the_width(width):
    rows = auto_sweep(trials="auto", ci_width=width, max_trials=60)
    summary = summarize(rows)
    counts = []
    for s in (0.05, 0.1, 0.2):
        errors = trial_errors(rows, s)
        counts.append(len(errors))
        assert len(errors) >= MIN_TRIALS
        assert half_width(errors) <= width / 100  # stopped within W (percentage points of the error) ...
        if len(errors) > MIN_TRIALS:  # ... and not one trial later than needed
            assert half_width(errors[:-1]) > width / 100
        row = summary[summary.strength == s].iloc[0]
        assert row.trials == len(errors) and not row.capped
        assert (row.error_ci_high - row.error_ci_low) / 2 <= width / 100 + 1e-12
    assert max(counts) > MIN_TRIALS  # the rule did add trials here
    assert rows.attrs["meta"]["trials"] == {"mode": "auto", "ci_width": width, "min_trials": 3, "max_trials": 60,
                                            "judged": [{"column": "error", "threshold": width / 100}]}


def test_a_narrower_width_needs_more_trials():
    wide, narrow = auto_sweep(ci_width=4.0, max_trials=60), auto_sweep(ci_width=2.0, max_trials=60)
    assert len(narrow) > len(wide)


def test_points_that_hit_the_cap_are_marked_in_the_summary_and_the_report():
    rows = auto_sweep(ci_width=0.1, max_trials=4)
    summary = summarize(rows)
    random = summary[summary.distortion == "addnorm"]
    assert set(random.trials) == {4} and random.capped.all()
    assert not summary[summary.distortion == "none"].capped.any()
    text = summary_markdown(summary, rows.attrs["meta"])
    assert "| 4\\* |" not in text and "| 4* |" in text
    assert "capped: 4 trials (--max-trials) left the 95% interval wider than ±0.1 pp" in text


def test_fixed_trials_keep_today_s_count_and_no_capped_column():
    rows = auto_sweep(trials=4)
    assert [len(trial_errors(rows, s)) for s in (0.05, 0.1, 0.2)] == [4, 4, 4]
    assert rows.attrs["meta"]["trials"] == {"mode": "fixed", "trials": 4}
    assert "capped" not in summarize(rows).columns


def test_auto_is_deterministic_for_a_seed():
    a, b = auto_sweep(seed=3), auto_sweep(seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_deterministic_points_run_once_under_auto():
    rows = rw.sweep(MODEL, distortions=["sign", "power"], device="cpu")
    assert set(rows.groupby(["spec", "strength"], dropna=False).size()) == {1}


def test_known_rows_continue_the_rule_where_they_end():
    """A runner given rows it already has (a resumed run's) evaluates only the trials the rule still needs, and
    ends with the same rows and trial counts as one uninterrupted run."""
    from robustbench_w.distortions import get_distortion
    from robustbench_w.load.checkpoints import LoadedModel

    def runner():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SweepRunner(LoadedModel(module=cheap_model(), name="m"), cheap_data())

    rule = trial_rule("auto", 1.0, 40)
    points = plan([get_distortion("noise")], [0.6, 1.2], rule)
    full = runner().run(points, trials=rule)
    first = {(r["strength"], r["trial"]): r for r in full[1:] if r["trial"] < 5}  # as if stopped mid-way
    evaluated = []
    again = runner()
    real = again.evaluate
    again.evaluate = lambda p, seed: evaluated.append(p) or real(p, seed)
    resumed = again.run(points, trials=rule, known=lambda p: first.get((p.strength, p.trial)))
    assert [(r["strength"], r["trial"], r["error"]) for r in resumed] == \
        [(r["strength"], r["trial"], r["error"]) for r in full]
    assert len(evaluated) == len(full) - 1 - len(first) and all(p.trial >= 5 for p in evaluated)


def test_resume_from_a_log_reaches_the_same_trial_counts(tmp_path, monkeypatch):
    kw = dict(distortions=["noise"], strengths=[0.1, 0.3], trials="auto", ci_width=1.5, max_trials=12, device="cpu")
    full = rw.sweep(MODEL, **kw)
    log, real, calls = tmp_path / "run.jsonl", SweepRunner.evaluate, []

    def stop_after_five(self, point, seed):
        if len(calls) == 5:
            raise Interrupted("SIGINT")
        calls.append(point)
        return real(self, point, seed)

    monkeypatch.setattr(SweepRunner, "evaluate", stop_after_five)
    with pytest.raises(Interrupted) as exc:
        rw.sweep(MODEL, log=log, **kw)
    assert exc.value.partial.attrs["meta"]["partial"]
    monkeypatch.setattr(SweepRunner, "evaluate", real)
    resumed = rw.sweep(MODEL, log=log, resume=True, **kw)
    pd.testing.assert_frame_equal(resumed.reset_index(drop=True), full.reset_index(drop=True))
    assert resumed.attrs["meta"]["points_resumed"] == 5 and not resumed.attrs["meta"]["partial"]


@pytest.mark.parametrize("args, message", [
    (dict(trials=0), "--trials must be a positive whole number or auto"),
    (dict(trials="many"), "--trials must be a positive whole number or auto"),
    (dict(trials=5, ci_width=1.0), "--ci-width apply to --trials auto"),
    (dict(trials=5, max_trials=9), "--max-trials apply to --trials auto"),
    (dict(trials="auto", ci_width=0.0), "--ci-width must be a positive number"),
    (dict(trials="auto", ci_width=math.inf), "--ci-width must be a positive number"),
    (dict(trials="auto", max_trials=1), "--max-trials must be at least 2"),
])
def test_bad_trial_settings_are_usage_errors(args, message):
    with pytest.raises(InvalidValueError, match=re.escape(message)):
        trial_rule(**args)


@pytest.mark.parametrize("args, words", [
    (["--trials", "0"], "neither a positive whole number nor auto"),
    (["--trials", "3", "--ci-width", "1"], "--ci-width apply to --trials auto"),
    (["--ci-width", "-1"], "--ci-width"),
    (["--max-trials", "1"], "--max-trials"),
])
def test_bad_trial_flags_exit_2_in_one_line(run_cli, args, words):
    code, _, err = run_cli("sweep", MODEL, "-d", "noise", "-q", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err


def test_rule_units_fractions_in_points_other_metrics_in_their_unit():
    rule = TrialRule(None, 2.0, 30)
    assert rule.threshold((0.0, 1.0)) == 0.02 and rule.threshold((0.0, math.inf)) == 2.0
    assert rule.first == 3 and rule.cap == 30 and TrialRule(fixed=5).first == TrialRule(fixed=5).cap == 5


def test_half_width_of_equal_values_is_zero_and_of_too_few_is_nan():
    assert half_width([0.1, 0.1, 0.1]) == 0.0 and half_width([math.inf] * 3) == 0.0
    assert math.isnan(half_width([0.2])) and math.isnan(half_width([1.0, math.inf, 2.0]))


def parse_demo(out: str) -> list[tuple[float, float, str]]:
    """``(low, high, trials cell)`` of every table row of the demo's report."""
    found = []
    for line in out.splitlines():
        m = re.search(r"\[(\d+\.\d+), (\d+\.\d+)\] │.*│ +(\d+\*?) │[^│]*$", line)  # trials: next to last
        if m:
            found.append((float(m[1]) / 100, float(m[2]) / 100, m[3]))
    return found


def test_demo_shows_no_interval_wider_than_its_width_except_capped_points(run_cli):
    started = time.perf_counter()
    code, out, _ = run_cli("demo")
    elapsed = time.perf_counter() - started
    cells = parse_demo(out)
    assert code == 0 and len(cells) >= 20
    wide = [c for c in cells if (c[1] - c[0]) / 2 > 0.02 + 1e-9]
    assert wide and all(c[2].endswith("*") for c in wide)  # the strong-noise points hit the cap, marked
    assert all(int(c[2].rstrip("*")) == 30 for c in cells if c[2].endswith("*"))  # marked: at the cap only
    assert "capped: 30 trials (--max-trials) left the 95% interval wider than ±2 pp" in out
    assert "trials auto: 95% CI ±2 pp, 3 to 30" in out
    assert elapsed < 30  # a few seconds on a laptop; generous for a shared CI machine


def test_demo_with_a_wider_width_caps_nothing(run_cli):
    code, out, _ = run_cli("demo", "--ci-width", "5")
    cells = parse_demo(out)
    assert code == 0 and cells and all((c[1] - c[0]) / 2 <= 0.05 + 1e-9 for c in cells)
    assert not any(c[2].endswith("*") for c in cells) and "capped" not in out


GATE = """
[gate]
dataset = "digits"
trials = {trials}
{extra}

[[gate.require]]
distortion = "noise"
strength = 0.1
max_error = 0.2
"""


def test_gate_policy_may_ask_for_auto_trials():
    import tomllib

    policy = parse_policy(tomllib.loads(GATE.format(trials='"auto"', extra="ci_width = 3\nmax_trials = 8"))["gate"])
    assert policy.trial_rule == TrialRule(None, 3.0, 8)
    result = run_gate(MODEL, policy, device="cpu")
    assert result.meta["trials"]["mode"] == "auto" and result.passed
    n = int(result.summary[result.summary.distortion == "addnorm"].trials.iloc[0])
    assert 3 <= n <= 8


@pytest.mark.parametrize("trials, extra, message", [
    ("5", "ci_width = 2", "gate: ci_width apply to trials auto"),
    ('"auto"', "max_trials = 1", "gate: max_trials must be at least 2"),
    ('"lots"', "", "gate.trials: expected an integer or \"auto\""),
])
def test_gate_trial_settings_are_checked(trials, extra, message):
    import tomllib

    with pytest.raises(InvalidValueError, match=re.escape(message)):
        parse_policy(tomllib.loads(GATE.format(trials=trials, extra=extra))["gate"])


def test_a_sweep_of_exact_points_does_not_announce_the_adaptive_rule(run_cli):
    """Under --trials auto (the default) a sweep of deterministic points runs each once: its header says so
    instead of printing an interval rule that no point used."""
    code, out, _ = run_cli("sweep", "builtin:digits-mlp", "-d", "sign", "-d", "quantize", "-s", "8,4")
    assert code == 0 and "1 trial per point (no point draws at random)" in out and "trials auto:" not in out
    code, out, _ = run_cli("sweep", "builtin:digits-mlp", "-d", "sign", "-d", "noise", "-s", "0.05", "--trials", "auto")
    assert code == 0 and "trials auto: 95% CI ±2 pp, 3 to 30" in out and "1 trial per point" not in out
