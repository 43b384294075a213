"""Nothing the user has is overwritten or lost (issue 26), each rule on several commands: outputs that collide with
each other or with an input, write-protected files, figures beside a report, interrupted runs (SIGTERM at start-up
and mid-run, SIGINT), a gate on a model at chance level, training data that is not test data, run logs read back.

Every case checks the exit code, one line on stderr without a traceback, the key words of the message, and that
every file the test folder held before is byte for byte the same afterwards (the earlier results, the inputs, a
read-only file, a complete earlier result under a signal).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from broken_inputs import BUILTIN, policy_text
from file_guard import (  # noqa: F401  (made, work: fixtures)
    EARLIER,
    changed,
    constant_checkpoint,
    flat_folder,
    guarded_sigterm,
    kill_on_call,
    made,
    one_error,
    snapshot,
    work,
)

ROOT = Path(__file__).resolve().parents[1]
SWEEP = f"sweep {BUILTIN} --device cpu -q -d sign"
GATE = f"gate {BUILTIN} --device cpu -q --policy policy.toml"
TRAIN = "train --epochs 1 --device cpu -q"


def run_case(run_cli, argv: str, code: int, *words: str) -> str:
    return one_error(*run_cli(*shlex.split(argv))[::2], code, *words)


# ------------------------------------------------------------------ outputs that collide

COLLIDE = "named by both"
INPUT = "is both an input"
COLLISIONS = [
    (f"{SWEEP} --log run2.jsonl -o run2.jsonl", COLLIDE, "-o", "--log"),
    (f"{SWEEP} --log run.jsonl --resume -o run.jsonl", COLLIDE, "--log"),
    (f"{SWEEP} --log x.jsonl -o ./x.jsonl -o y.csv", COLLIDE, "x.jsonl"),
    (f"sweep {BUILTIN} -d sign --dataset tensors:data.pt --log data.pt", INPUT, "--dataset"),
    (f"{GATE} --summary x.json -o x.json", COLLIDE, "--summary", "-o"),
    (f"{GATE} --summary s.xml --junit s.xml", COLLIDE, "--junit", "--summary"),
    (f"{GATE} --log g.jsonl --summary g.jsonl", COLLIDE, "--log"),
    (f"{GATE} --summary policy.toml", INPUT, "--policy"),
    (f"{GATE} --baseline a.json -o a.json", INPUT, "--baseline"),
    (f"{GATE} --log ./policy.toml", INPUT, "--policy", "--log"),
    ("merge a.jsonl b.csv -o a.jsonl", INPUT, "FILES"),
    ("merge run.jsonl -o run.jsonl", INPUT, "FILES"),
    ("merge a.csv b.csv -o ./b.csv", INPUT, "FILES"),
    ("compare a.json b.json -o b.json", INPUT, "RESULTS"),
    ("compare a.csv b.csv -o a.csv", INPUT, "RESULTS"),
    (f"{TRAIN} --dataset tensors:data.pt -o data.pt", INPUT, "--dataset"),
    (f"bits {BUILTIN} -o b.json -o b.json", None),  # one option naming one file twice: written once, fine
]


@pytest.mark.parametrize(("argv", "message"), [pytest.param(c[0], c[1:], id=c[0][:70]) for c in COLLISIONS])
def test_no_output_overwrites_another_output_or_an_input(argv, message, work, run_cli):
    before = snapshot(work)
    code, _, err = run_cli(*shlex.split(argv))
    if message[0] is None:
        assert code == 0 and err == "", err
        return
    one_error(code, err, 2, message[0], *message[1:])
    assert changed(before, work) == []  # checked before any work: nothing written
    assert {p.name for p in work.iterdir()} == set(before)


# ------------------------------------------------------------------ write-protected outputs

READ_ONLY = [
    (SWEEP, "ro.csv"), (SWEEP, "ro.json"), (SWEEP, "ro.jsonl"), (SWEEP, "ro.md"), ("demo --trials 1 -q", "ro.csv"),
    (f"bits {BUILTIN}", "ro.json"), (f"bits {BUILTIN}", "ro.md"), (GATE, "ro.json"), ("merge a.csv", "ro.csv"),
    ("compare a.csv b.csv", "ro.md"), ("plot a.csv", "ro.png"), ("report a.csv", "ro.html"), (TRAIN, "ro.pt"),
]


@pytest.mark.parametrize(("argv", "name"), READ_ONLY, ids=[f"{a.split()[0]}-{n}" for a, n in READ_ONLY])
def test_a_read_only_output_is_an_error_naming_it(argv, name, work, run_cli):
    ro = work / name
    ro.write_bytes(EARLIER)
    ro.chmod(0o444)
    before = snapshot(work)
    run_case(run_cli, f"{argv} -o {name}", 2, str(name), "write-protected")
    assert changed(before, work) == [] and ro.stat().st_mode & 0o777 == 0o444


@pytest.mark.parametrize(("option", "name"), [("--junit", "ro.xml"), ("--summary", "ro.md"), ("--log", "ro.jsonl")])
def test_a_read_only_gate_file_or_run_log_is_an_error_naming_it(option, name, work, run_cli):
    ro = work / name
    ro.write_bytes((work / "run.jsonl").read_bytes() if name.endswith(".jsonl") else EARLIER)
    ro.chmod(0o444)
    before = snapshot(work)
    resume = "--resume" if option == "--log" else ""
    run_case(run_cli, f"{SWEEP if option == '--log' else GATE} {option} {name} {resume}", 2, name, "write-protected")
    assert changed(before, work) == []


# ------------------------------------------------------------------ figures beside a report

def test_a_report_never_replaces_a_figure_file_of_the_users(work, run_cli):
    (work / "r-curves.png").write_bytes(EARLIER)
    before = snapshot(work)
    run_case(run_cli, "report a.csv -o r.md", 2, "r-curves.png", "exists", "--force")
    assert changed(before, work) == [] and not (work / "r.md").exists()
    code, out, err = run_cli("report", "a.csv", "-o", "r.md", "--force")
    assert code == 0 and err == "" and (work / "r-curves.png").read_bytes() != EARLIER
    code, _, err = run_cli("report", "b.csv", "-o", "r.md")  # its own figures: a new report replaces them
    assert code == 0 and err == "", err


# ------------------------------------------------------------------ interrupted runs

def earlier_results(work: Path) -> dict[str, bytes]:
    """Complete results of an earlier run under the names the interrupted command writes."""
    (work / "out.csv").write_bytes(EARLIER)
    (work / "g.json").write_bytes(EARLIER)
    (work / "m.pt").write_bytes(EARLIER)
    (work / "ro.json").write_bytes(EARLIER)
    (work / "ro.json").chmod(0o444)  # a read-only file of the user's, never touched
    grid = work / "grid"
    (grid / "models").mkdir(parents=True)
    for name in ("report.md", "claims.json", "results.csv", "summary.csv"):
        (grid / name).write_bytes(EARLIER)
    return snapshot(work)


REPRODUCE = "reproduce -q --rules none --seeds 1 --trials 1 --epochs 1 --distortions sign --at sign --device cpu -o grid"
STAGES = {  # command -> (argv, what is patched to send SIGTERM at start-up, and mid-run, with the call number)
    "sweep": (f"sweep {BUILTIN} --device cpu -q -d noise -s 0.05,0.1 --trials 2 -o out.csv",
              ("robustbench_w.load.inputs.load_model", 1), ("robustbench_w.engine.runs.sweep.SweepRunner.evaluate", 3)),
    "gate": (f"gate {BUILTIN} --device cpu -q --policy policy.toml -o g.json --log g.jsonl",
             ("robustbench_w.load.inputs.load_model", 1), ("robustbench_w.engine.runs.sweep.SweepRunner.evaluate", 2)),
    "train": ("train --epochs 3 --device cpu -q -o m.pt",
              ("robustbench_w.paper.train.load_dataset", 1), ("robustbench_w.paper.train.run_epoch", 2)),
    "reproduce": (REPRODUCE, ("robustbench_w.paper.train.load_dataset", 1),
                  ("robustbench_w.engine.runs.sweep.SweepRunner.evaluate", 1)),
}
PARTIAL = {"sweep": "out.partial.csv holds them (partial)", "gate": "the log g.jsonl keeps the finished points",
           "train": "m.partial.pt holds that model (partial)", "reproduce": "kept in grid"}


def patch_path(monkeypatch, dotted: str, number: int) -> None:
    module, _, attr = dotted.rpartition(".")
    if module.endswith("SweepRunner"):
        from robustbench_w.engine.runs.sweep import SweepRunner as owner
    else:
        import importlib

        owner = importlib.import_module(module)
    monkeypatch.setattr(owner, attr, kill_on_call(number, getattr(owner, attr)))


@pytest.mark.parametrize("stage", ["start-up", "mid-run"])
@pytest.mark.parametrize("command", list(STAGES))
def test_sigterm_exits_130_keeps_the_earlier_result_and_names_the_partial_file(command, stage, work, run_cli,
                                                                              monkeypatch):
    argv, start, mid = STAGES[command]
    before = earlier_results(work)
    patch_path(monkeypatch, *(start if stage == "start-up" else mid))
    with guarded_sigterm():
        code, _, err = run_cli(*shlex.split(argv))
    line = one_error(code, err, 130, "wrobust: interrupted: SIGTERM")
    assert changed(before, work) == []  # the complete earlier results, and the read-only file, as they were
    assert not [p for p in work.rglob(".*.tmp")]
    if stage == "mid-run":
        assert PARTIAL[command] in line
    if stage == "mid-run" and command == "sweep":
        text = (work / "out.partial.csv").read_text()
        assert text.startswith("# PARTIAL: 2 of 4 points") and text.count("\n") == 5  # marker, header, 3 rows
    if stage == "mid-run" and command == "train":
        record = torch.load(work / "m.partial.pt", weights_only=True)["train"]
        assert record["partial"] and record["epochs_done"] == 1 and len(record["loss"]) == 1


@pytest.mark.parametrize("suffix", [".json", ".md", ".jsonl"])
def test_sigint_writes_name_partial_and_the_file_says_so(suffix, work, run_cli, monkeypatch):
    (work / f"out{suffix}").write_bytes(EARLIER)
    before = snapshot(work)
    patch_path(monkeypatch, "robustbench_w.engine.runs.sweep.SweepRunner.evaluate", 3)
    monkeypatch.setattr(os, "kill", lambda pid, sig, real=os.kill: real(pid, signal.SIGINT))
    code, _, err = run_cli(*shlex.split(f"sweep {BUILTIN} --device cpu -q -d noise -s 0.05,0.1 -o out{suffix}"))
    one_error(code, err, 130, "interrupted: SIGINT", f"out.partial{suffix} holds them (partial)")
    assert changed(before, work) == []
    text = (work / f"out.partial{suffix}").read_text()
    if suffix == ".json":
        assert json.loads(text)["meta"]["partial"] is True
    elif suffix == ".md":
        assert text.startswith("PARTIAL: 2 of")
    else:
        assert len(text.splitlines()) == 3  # the clean row and two points


def test_sigterm_from_outside_mid_sweep_exits_130_and_keeps_the_earlier_result(work):
    (work / "out.json").write_bytes(EARLIER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WROBUST_TEST_POINT_DELAY": "0.4"}
    proc = subprocess.Popen([sys.executable, "-m", "robustbench_w", "sweep", BUILTIN, "--device", "cpu", "-q", "-d",
                             "noise", "-s", "0.01,0.02,0.03,0.05,0.1", "--trials", "3", "--log", "r.jsonl", "-o",
                             "out.json"], cwd=work, env=env, stderr=subprocess.PIPE, text=True)
    log = work / "r.jsonl"
    for _ in range(600):
        if log.is_file() and log.read_text().count("\n") >= 4 or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    one_error(proc.returncode, err, 130, "SIGTERM", "out.partial.json holds them (partial)", "--resume")
    assert (work / "out.json").read_bytes() == EARLIER
    assert json.loads((work / "out.partial.json").read_text())["meta"]["partial"] is True


# ------------------------------------------------------------------ a gate never passes a model that does not work

def test_a_gate_fails_a_constant_output_model_with_the_chance_level_verdict(work, run_cli):
    model = constant_checkpoint(work / "constant.pt")
    policy = policy_text(strength=0.1, max_drop=0.01, min_agreement=0.99)  # the last layer alone decides: kept clean
    (work / "drop.toml").write_text(policy.replace("[[gate", 'exclude = ["5.*"]\n[[gate', 1))
    before = snapshot(work)
    code, out, err = run_cli("gate", model, "--policy", "drop.toml", "--device", "cpu", "-o", "verdict.json",
                             "--summary", "s.md")
    assert code == 1, err
    assert "gate FAILED: clean model at chance level: accuracy" in out and "allow_chance = true" in out
    doc = json.loads((work / "verdict.json").read_text())
    assert doc["gate"]["passed"] is False
    assert "clean model at chance level" in (work / "s.md").read_text()
    assert changed(before, work) == []
    (work / "allow.toml").write_text((work / "drop.toml").read_text().replace("[[gate", "allow_chance = true\n[[gate"))
    code, out, err = run_cli("gate", model, "--policy", "allow.toml", "--device", "cpu")
    assert code == 0 and "warning: the clean model is at chance level" in out, out + err


def test_allow_chance_must_be_a_boolean(work, run_cli):
    (work / "bad.toml").write_text((work / "policy.toml").read_text().replace("[[gate", 'allow_chance = "yes"\n[[gate'))
    before = snapshot(work)
    run_case(run_cli, f"gate {BUILTIN} --policy bad.toml -o g.json", 2, "gate.allow_chance", "true or false")
    assert changed(before, work) == []


# ------------------------------------------------------------------ training data is not test data

@pytest.mark.parametrize("dataset", ["tensors", "imagefolder"])
def test_train_on_a_set_without_splits_holds_out_a_seeded_test_set(dataset, work, run_cli):
    name = "tensors:data.pt" if dataset == "tensors" else f"imagefolder:{flat_folder(work / 'pics')}"
    extra = ["--arch", "mlp"] if dataset == "tensors" else ["-A", "hidden=[8]"]
    code, out, err = run_cli("train", "--dataset", name, "--epochs", "1", "--device", "cpu", *extra, "-o", "m.pt")
    assert code == 0, err
    n, out = 40 if dataset == "tensors" else 10, " ".join(out.split())
    assert f"on {n // 5} of the {n} examples of" in out and "held out" in out and "not trained on" in out
    record = torch.load(work / "m.pt", weights_only=True)["train"]
    assert record["test_examples"].startswith(f"{n // 5} of the {n} examples") and "--seed 0" in record["test_examples"]


def test_train_with_real_splits_says_it_measured_the_test_split(work, run_cli):
    code, out, err = run_cli(*shlex.split("train --epochs 1 --device cpu -o m.pt"))
    out = " ".join(out.split())
    assert code == 0 and "on the test split of digits (355 examples)" in out, out + err
    assert torch.load(work / "m.pt", weights_only=True)["train"]["test_examples"] == "the test split of digits (355 examples)"


# ------------------------------------------------------------------ files read back are checked

@pytest.mark.parametrize("argv", ["plot run.jsonl -o f.png", "compare a.csv run.jsonl", "compare run.jsonl a.json",
                                  "report run.jsonl -o r.html", "plot a.jsonl run.jsonl -o f.png --kind frontier"])
def test_a_run_log_is_refused_as_results_with_what_to_do(argv, work, run_cli):
    before = snapshot(work)
    run_case(run_cli, argv, 2, "run.jsonl", "is a run log", "wrobust merge run.jsonl -o")
    assert changed(before, work) == []


def edit_line(path: Path, number: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[number - 1]
    lines[number - 1] = lines[number - 1].replace(old, new, 1)
    path.write_text("".join(lines))


RESUME = f"sweep {BUILTIN} --device cpu -q -d sign -d noise -s 0.05 --trials 2 --log run.jsonl --resume -o out.csv"
EDITS = [
    (3, '"seed": 0', '"seed": 7', "seed 7 differs"),
    (3, '"n": 355', '"n": 100', "n 100 differs"),
    (3, '"model": "builtin:digits-mlp"', '"model": "other.pt"', "model 'other.pt' differs"),
    (3, '"spec": "sign"', '"spec": 7', "no 'spec' text"),
    (4, '"strength": 0.05', '"strength": "0.05"', "'strength' number"),
    (4, '"dataset": "digits"', '"dataset": "mnist"', "dataset 'mnist' differs"),
    (2, '"loss": ', '"loss": [1], "_": ', "loss [1] is not a number"),
    (4, '"error": ', '"error": "oops", "_": ', "error 'oops' is not a number"),
    (2, '"trial": 0', '"trial": "first"', "'trial' count"),
]


@pytest.mark.parametrize(("line", "old", "new", "words"), EDITS, ids=[e[3] for e in EDITS])
def test_resume_and_merge_check_every_row_of_a_run_log(line, old, new, words, work, run_cli):
    edit_line(work / "run.jsonl", line, old, new)
    (work / "out.csv").write_bytes(EARLIER)
    before = snapshot(work)
    run_case(run_cli, RESUME, 2, "run.jsonl", f"line {line}", words, "not one of this log's run")
    run_case(run_cli, "merge run.jsonl -o m.csv", 2, f"line {line}", words)
    assert changed(before, work) == [] and not (work / "m.csv").exists()


# ------------------------------------------------------------------ a jsonl set of empty texts

@pytest.mark.parametrize("texts", [[""], ["", "   ", "\n"]])
def test_a_jsonl_set_whose_texts_are_all_empty_is_refused(texts, work, run_cli):
    (work / "e.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (work / "out.csv").write_bytes(EARLIER)
    before = snapshot(work)
    run_case(run_cli, f"sweep {BUILTIN} -d sign --dataset jsonl:e.jsonl -o out.csv", 2, "e.jsonl",
             f"every 'text' of its {len(texts)} line(s) is empty")
    assert changed(before, work) == []


def test_a_read_only_file_in_the_reproduce_folder_is_refused_before_any_training(work, run_cli):
    (work / "grid").mkdir()
    (work / "grid" / "report.md").write_bytes(EARLIER)
    (work / "grid" / "report.md").chmod(0o444)
    before = snapshot(work)
    run_case(run_cli, f"{REPRODUCE}", 2, "grid/report.md", "write-protected")
    assert changed(before, work) == [] and not (work / "grid" / "models").exists()
