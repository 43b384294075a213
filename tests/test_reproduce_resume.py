"""``wrobust reproduce --resume``: an interrupted grid continues from its checkpoints and sweep logs."""

from __future__ import annotations

import os
import re
import signal

import pytest

from robustbench_w.engine.runs.runlog import read_log
from robustbench_w.engine.runs.sweep import SweepRunner
from robustbench_w.paper import reproduce as reproduce_module

# --quick with a tiny recipe: 2 rules x 2 seeds = 4 models, seconds on a CPU
ARGS = ["reproduce", "--quick", "--epochs", "2", "--trials", "2", "--rules", "none,sign", "--distortions", "sign,addnorm",
        "--at", "sign,addnorm:sigma=0.3", "-q"]


def report(folder) -> str:
    """report.md without durations (the run's, and the training time of each model): all else is the same."""
    text = re.sub(r"; [\d.]+ s in all", "; N s in all", (folder / "report.md").read_text())
    return re.sub(r"^(\| [^|]+ \| \d+ \|.*\| )[\d.]+ \|$", r"\1N |", text, flags=re.M)


def train_seconds(folder, rule: str, seed: int) -> str:
    """The training time the report shows for one model."""
    return re.search(rf"^\| {rule} \| {seed} \|.*\| ([\d.]+) \|$", (folder / "report.md").read_text(), re.M)[1]


@pytest.fixture
def counted(monkeypatch):
    """Counts of trainings and of evaluated sweep points."""
    counts = {"train": 0, "points": 0}
    real_train, real_evaluate = reproduce_module.train, SweepRunner.evaluate

    def train(*args, **kwargs):
        counts["train"] += 1
        return real_train(*args, **kwargs)

    def evaluate(self, point, seed):
        counts["points"] += 1
        if counts.get("stop_at") == counts["points"]:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of a point
        return real_evaluate(self, point, seed)

    monkeypatch.setattr(reproduce_module, "train", train)
    monkeypatch.setattr(SweepRunner, "evaluate", evaluate)
    return counts


def test_an_interrupted_reproduce_resumes_training_nothing_twice_and_gives_the_same_report(tmp_path, run_cli,
                                                                                           counted):
    whole = tmp_path / "whole"
    code, _, err = run_cli(*ARGS, "-o", whole)
    assert code == 0, err
    assert counted["train"] == 4
    per_model = counted["points"] // 4

    counted.update(train=0, points=0, stop_at=per_model + 3)  # in the sweep of the second model
    out = tmp_path / "out"
    code, _, err = run_cli(*ARGS, "-o", out)
    assert code == 130 and "--resume" in err and str(out) in err
    assert counted["train"] == 2 and sorted(p.name for p in (out / "models").glob("*.pt")) == [
        "none-seed0.pt", "none-seed1.pt"]
    assert len(read_log(out / "logs" / "none-seed1.jsonl").rows) == 1 + 2  # the clean model and two points
    assert not (out / "report.md").exists()

    counted.update(train=0, points=0, stop_at=None)
    code, _, err = run_cli(*ARGS, "--resume", "-o", out)
    assert code == 0, err
    assert counted["train"] == 2  # sign seed 0 and 1; none's two checkpoints were reused
    assert counted["points"] == 3 * per_model - 2  # none seed 1's missing points, then sign's two sweeps
    assert report(out) == report(whole)
    logged = read_log(out / "logs" / "none-seed1.jsonl").header["train_s"]
    assert train_seconds(out, "none", 1) == f"{logged:.1f}"  # the time of the run that trained it
    for name in ("results.csv", "summary.csv"):
        assert (out / name).read_bytes() == (whole / name).read_bytes()
    for model in (out / "models").glob("*.pt"):
        assert model.read_bytes() == (whole / "models" / model.name).read_bytes()


def test_resume_refuses_checkpoints_of_another_configuration(tmp_path, run_cli):
    out = tmp_path / "out"
    assert run_cli(*ARGS, "--seeds", "1", "-o", out)[0] == 0
    before = (out / "models" / "none-seed0.pt").read_bytes()
    code, _, err = run_cli(*[a if a != "2" or i != 3 else "3" for i, a in enumerate(ARGS)], "--seeds", "1",
                           "--resume", "-o", out)
    assert code == 2 and "epochs=2" in err and "needs 3" in err and len(err.strip().splitlines()) == 1, err
    assert (out / "models" / "none-seed0.pt").read_bytes() == before


def test_resume_needs_an_output_folder(run_cli):
    code, _, err = run_cli("reproduce", "--resume")
    assert code == 2 and "--resume needs -o DIR" in err
