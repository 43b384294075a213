"""Runs that lose nothing: logs, resume after SIGKILL, Ctrl-C/SIGTERM, shards, merge, torchrun, gate logs.

Tests that start processes use the test hook ``WROBUST_TEST_POINT_DELAY`` (engine/resume.py), which sleeps
after each recorded point, so that a signal lands in the middle of a sweep of the tiny built-in model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import robustbench_w as rw
from robustbench_w.engine.runs.resume import DELAY_ENV
from robustbench_w.engine.runs.runlog import read_log
from robustbench_w.engine.runs.signals import Interrupted
from robustbench_w.engine.runs.sweep import SweepRunner
from robustbench_w.errors import InputFileError, InvalidValueError

ROOT = Path(__file__).resolve().parents[1]
MODEL = "builtin:digits-mlp"
GRID = ["-d", "noise", "-d", "sign", "-d", "round", "-s", "0.1,0.3", "--trials", "3"]  # 8 points
KW = dict(distortions=["noise", "sign", "round"], strengths=[0.1, 0.3], trials=3, device="cpu")


@pytest.fixture(scope="module")
def full() -> pd.DataFrame:
    """The uninterrupted run that every other way of running must reproduce exactly."""
    return rw.sweep(MODEL, **KW)


def env(delay: float = 0.0) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", DELAY_ENV: str(delay)}


def start(tmp_path: Path, *args: str, delay: float = 0.3) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "robustbench_w", "sweep", MODEL, *GRID, "--device", "cpu", "-q", *args]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env(delay), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_rows(log: Path, rows: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the log holds ``rows`` rows (clean row included) besides its header."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_bytes().split(b"\n")) - 2 >= rows:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{log} did not reach {rows} rows")


def frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment=None, skiprows=1 if path.read_text().startswith("# PARTIAL") else 0)


# ------------------------------------------------------------------ in one process

def test_a_resumed_run_takes_logged_points_and_equals_the_uninterrupted_run(tmp_path, full, monkeypatch):
    log = tmp_path / "run.jsonl"
    real, calls = SweepRunner.evaluate, []

    def stop_after_three(self, point, seed):
        if len(calls) == 3:
            raise Interrupted("SIGINT")
        calls.append(point)
        return real(self, point, seed)

    monkeypatch.setattr(SweepRunner, "evaluate", stop_after_three)
    with pytest.raises(Interrupted) as exc:
        rw.sweep(MODEL, log=log, **KW)
    partial = exc.value.partial
    assert len(partial) == 4 and partial.attrs["meta"]["partial"] and partial.attrs["meta"]["points_done"] == 3
    pd.testing.assert_frame_equal(partial, full.iloc[:4][partial.columns])  # eff_bits comes with sign
    assert len(read_log(log).rows) == 4  # clean + three points, each logged as it finished
    monkeypatch.setattr(SweepRunner, "evaluate", real)
    evaluated = []
    monkeypatch.setattr(SweepRunner, "evaluate", lambda self, p, s: evaluated.append(p) or real(self, p, s))
    resumed = rw.sweep(MODEL, log=log, resume=True, **KW)
    pd.testing.assert_frame_equal(resumed, full)
    assert len(evaluated) == len(full) - 4 and resumed.attrs["meta"]["points_resumed"] == 3
    assert not resumed.attrs["meta"]["partial"] and len(read_log(log).rows) == len(full)


def test_a_log_cut_in_the_middle_of_a_line_is_resumed(tmp_path, full):
    log = tmp_path / "run.jsonl"
    rw.sweep(MODEL, log=log, **KW)
    data = log.read_bytes()
    cut = data[: data.rstrip(b"\n").rfind(b"\n") + 1 - 40]  # the last two rows: one gone, one torn mid-line
    log.write_bytes(cut)
    assert read_log(log).torn
    resumed = rw.sweep(MODEL, log=log, resume=True, **KW)
    pd.testing.assert_frame_equal(resumed, full)
    contents = read_log(log)
    assert not contents.torn and len(contents.rows) == len(full)


def test_resume_without_a_log_starts_the_run(tmp_path, full):
    rows = rw.sweep(MODEL, log=tmp_path / "new.jsonl", resume=True, **KW)
    pd.testing.assert_frame_equal(rows, full)


def test_a_shard_log_resumed_as_the_full_run_evaluates_the_rest(tmp_path, full):
    log = tmp_path / "run.jsonl"
    first = rw.sweep(MODEL, log=log, shard="1/2", **KW)
    assert 1 < len(first) < len(full) and first.attrs["meta"]["shard"] == "1/2"
    pd.testing.assert_frame_equal(rw.sweep(MODEL, log=log, resume=True, **KW), full)


def test_library_errors(tmp_path):
    with pytest.raises(InvalidValueError, match="--resume needs --log"):
        rw.sweep(MODEL, resume=True, **KW)
    rw.sweep(MODEL, log=tmp_path / "run.jsonl", **KW)
    with pytest.raises(InputFileError, match="seed 0 vs 5"):
        rw.sweep(MODEL, log=tmp_path / "run.jsonl", resume=True, seed=5, **KW)
    # rows of other metrics would join with empty columns (a cosine table whose first points show '-')
    with pytest.raises(InputFileError, match=r"measured .* vs \(classifier: cosine"):
        rw.sweep(MODEL, log=tmp_path / "run.jsonl", resume=True, metric=["cosine"], **KW)
    rw.sweep(MODEL, log=tmp_path / "run.jsonl", resume=True, **KW)  # the same run resumes


# ------------------------------------------------------------------ killed and interrupted processes

@pytest.mark.slow
def test_sigkill_then_resume_gives_the_rows_of_an_uninterrupted_run(tmp_path, full):
    (tmp_path / "out.csv").write_text("earlier results\n")
    proc = start(tmp_path, "--log", "run.jsonl", "-o", "out.csv")
    wait_for_rows(tmp_path / "run.jsonl", 4, proc)
    proc.kill()
    proc.wait()
    assert (tmp_path / "out.csv").read_text() == "earlier results\n"  # never half-written, never clobbered
    done = len(read_log(tmp_path / "run.jsonl").rows)
    assert 4 <= done < len(full)
    again = start(tmp_path, "--log", "run.jsonl", "--resume", "-o", "out.csv", delay=0)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    pd.testing.assert_frame_equal(frame(tmp_path / "out.csv"), frame_of(full, tmp_path))


def frame_of(rows: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """``rows`` as a CSV reads back (what the CLI wrote is compared with what the library returned)."""
    rows.to_csv(tmp_path / "expected.csv", index=False)
    return pd.read_csv(tmp_path / "expected.csv")


@pytest.mark.slow
def test_ctrl_c_writes_the_finished_points_and_exits_130(tmp_path, full):
    proc = start(tmp_path, "--log", "run.jsonl", "-o", "out.csv", delay=0.5)
    wait_for_rows(tmp_path / "run.jsonl", 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert "out.partial.csv holds them (partial)" in err and not (tmp_path / "out.csv").exists()
    assert (tmp_path / "out.partial.csv").read_text().startswith("# PARTIAL: ")
    rows = frame(tmp_path / "out.partial.csv")
    logged = len(read_log(tmp_path / "run.jsonl").rows)
    assert 3 <= len(rows) == logged < len(full)
    pd.testing.assert_frame_equal(rows, frame_of(full, tmp_path).iloc[:len(rows)][rows.columns])


@pytest.mark.parametrize("suffix", [".json", ".md"])
def test_sigterm_during_a_point_drops_it_and_the_outputs_say_partial(tmp_path, run_cli, monkeypatch, suffix):
    real, calls = SweepRunner.evaluate, []

    def evaluate(self, point, seed):
        calls.append(point)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the fourth point
        return real(self, point, seed)

    monkeypatch.setattr(SweepRunner, "evaluate", evaluate)
    out = tmp_path / f"out.partial{suffix}"  # an interrupted run writes NAME.partial.SUFFIX (issue 26)
    code, _, err = run_cli("sweep", MODEL, *GRID, "--device", "cpu", "-q", "-o", tmp_path / f"out{suffix}")
    assert code == 130 and "interrupted: SIGTERM: 3 of 8 points finished" in err and "(partial)" in err
    assert len(calls) == 4  # the fourth point started and was dropped
    if suffix == ".json":
        doc = json.loads(out.read_text())
        assert doc["meta"]["partial"] and len(doc["rows"]) == 4 and len(doc["meta"]["grid"]) == 8
    else:
        assert out.read_text().startswith("PARTIAL: 3 of 8 points")


# ------------------------------------------------------------------ shards and merge

def test_two_shards_merged_equal_the_full_run(tmp_path, run_cli, full):
    for i in (1, 2):
        code, _, err = run_cli("sweep", MODEL, *GRID, "--device", "cpu", "-q", "--shard", f"{i}/2",
                               "--log", tmp_path / f"s{i}.jsonl", "-o", tmp_path / f"s{i}.json")
        assert code == 0, err
    for sources in (["s1.jsonl", "s2.jsonl"], ["s2.json", "s1.json"]):
        code, out, err = run_cli("merge", *(tmp_path / s for s in sources), "-o", tmp_path / "merged.csv")
        assert code == 0 and err == "" and "8 of 8 points" in out, err
        pd.testing.assert_frame_equal(frame(tmp_path / "merged.csv"), frame_of(full, tmp_path))


def test_merge_reports_missing_and_duplicated_points(tmp_path, run_cli):
    for i in (1, 2):
        rw.sweep(MODEL, log=tmp_path / f"s{i}.jsonl", shard=f"{i}/3", **KW)
    code, _, err = run_cli("merge", tmp_path / "s1.jsonl", tmp_path / "s2.jsonl", tmp_path / "s1.jsonl",
                           "-o", tmp_path / "m.json")
    assert code == 0
    assert "missing from every file" in err and "in more than one file (kept once)" in err
    meta = json.loads((tmp_path / "m.json").read_text())["meta"]
    assert meta["partial"] and meta["points_missing"] > 0 and meta["duplicates"] > 0
    code, _, err = run_cli("merge", tmp_path / "s1.jsonl", "--complete", "-o", tmp_path / "c.csv")
    assert code == 2 and "missing" in err and not (tmp_path / "c.csv").exists()


def test_merged_shard_logs_keep_the_coverage_and_refuse_shards_that_disagree_on_it(tmp_path, run_cli, full):
    from robustbench_w.report.sweep import distorted_parts

    for i in (1, 2):
        rw.sweep(MODEL, log=tmp_path / f"s{i}.jsonl", shard=f"{i}/2", **KW)
    code, _, err = run_cli("merge", tmp_path / "s1.jsonl", tmp_path / "s2.jsonl", "-o", tmp_path / "m.json")
    assert code == 0, err
    meta = json.loads((tmp_path / "m.json").read_text())["meta"]
    assert meta["coverage"] == json.loads(json.dumps(full.attrs["meta"]["coverage"]))
    line = distorted_parts(meta)[0]
    assert line.startswith(f"distorted {len(meta['targets'])} tensors, ") and "parameters" in line, line
    lines = (tmp_path / "s2.jsonl").read_text().splitlines()
    head = json.loads(lines[0])
    head["coverage"]["tensors"] = 1
    (tmp_path / "s2.jsonl").write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    code, _, err = run_cli("merge", tmp_path / "s1.jsonl", tmp_path / "s2.jsonl", "-o", tmp_path / "n.json")
    assert code == 2 and "s2.jsonl" in err and "s1.jsonl" in err and "coverage differs" in err, err
    assert not (tmp_path / "n.json").exists()


@pytest.mark.parametrize("other,words", [
    (dict(seed=4), "seed 0 vs 4"),
    (dict(include=["1.weight"]), "targets"),
    (dict(limit=100), "dataset size 355 vs 100"),
    (dict(metric=["cosine"]), "measured (classifier: accuracy, agreement, error, loss"),
    (dict(redraw="batch"), "(redraw point, converters off) vs (redraw batch, converters off)"),
])
def test_merging_files_of_different_runs_exits_2(tmp_path, run_cli, other, words):
    rw.sweep(MODEL, log=tmp_path / "a.jsonl", **KW)
    rw.sweep(MODEL, log=tmp_path / "b.jsonl", **{**KW, **other})
    code, _, err = run_cli("merge", tmp_path / "a.jsonl", tmp_path / "b.jsonl", "-o", tmp_path / "m.csv")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.csv").exists()


def test_merging_csv_files_of_different_seeds_exits_2(tmp_path, run_cli):
    for seed in (0, 1):
        rw.sweep(MODEL, seed=seed, **KW).to_csv(tmp_path / f"{seed}.csv", index=False)
    code, _, err = run_cli("merge", tmp_path / "0.csv", tmp_path / "1.csv", "-o", tmp_path / "m.csv")
    assert code == 2 and "seed 0 vs 1" in err


@pytest.mark.parametrize("args,words", [
    (["sweep", MODEL, "--shard", "3/2"], "--shard 3/2"),
    (["sweep", MODEL, "--shard", "x"], "expected I/N"),
    (["sweep", MODEL, "--resume"], "--resume needs --log"),
    (["merge", "nothere.jsonl", "-o", "m.csv"], "nothere.jsonl"),
    (["merge", "-o", "m.csv"], "FILES"),
])
def test_usage_errors_exit_2_with_one_line(run_cli, args, words):
    code, _, err = run_cli(*args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_an_existing_log_without_resume_exits_2_and_keeps_the_log(tmp_path, run_cli):
    log = tmp_path / "run.jsonl"
    log.write_text("precious\n")
    code, _, err = run_cli("sweep", MODEL, "-d", "sign", "--log", log)
    assert code == 2 and "pass --resume" in err and log.read_text() == "precious\n"


# ------------------------------------------------------------------ torchrun

def torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "robustbench_w", "--", "sweep", MODEL, *GRID, "--device", "cpu", "-q", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_torchrun_on_the_cpu_gives_the_results_of_one_process(tmp_path, full):
    done = torchrun(tmp_path, "--log", "run.jsonl", "-o", "out.csv")
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(frame(tmp_path / "out.csv"), frame_of(full, tmp_path))
    assert sorted(p.name for p in tmp_path.glob("run*.jsonl")) == ["run.jsonl"]  # rank logs folded in
    assert len(read_log(tmp_path / "run.jsonl").rows) == len(full)


@pytest.mark.slow
def test_a_failing_rank_fails_the_run_with_its_error_and_the_log_keeps_the_rest(tmp_path):
    (tmp_path / "run.rank1.jsonl").write_text("")  # rank 1 cannot start: its log exists (a user error)
    done = torchrun(tmp_path, "--log", "run.jsonl", "-o", "out.csv")
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("wrobust:")]
    assert ours == ["wrobust: error: rank 1: run.rank1.jsonl: the run log exists; pass --resume to continue it, "
                    "or choose another --log"]
    assert not (tmp_path / "out.csv").exists()
    assert len(read_log(tmp_path / "run.jsonl").rows) > 1  # rank 0's finished points


# ------------------------------------------------------------------ gate

def test_gate_log_and_resume(tmp_path, run_cli):
    policy = tmp_path / "policy.toml"
    policy.write_text('[gate]\ndataset = "digits"\ntrials = 2\n\n[[gate.require]]\ndistortion = "noise"\n'
                      'strength = 0.1\nmax_error = 0.5\n\n[[gate.require]]\ndistortion = "sign"\nmax_drop = 0.5\n')
    log = tmp_path / "gate.jsonl"
    code, out, err = run_cli("gate", MODEL, "--policy", policy, "--device", "cpu", "--log", log, "-o",
                             tmp_path / "a.json")
    assert code == 0, err
    lines = log.read_text().splitlines()
    assert json.loads(lines[0])["kind"] == "gate" and len(lines) == 1 + 1 + 3  # header, clean, 2 + 1 points
    code, _, err = run_cli("gate", MODEL, "--policy", policy, "--device", "cpu", "--log", log, "--resume", "-o",
                           tmp_path / "b.json")
    assert code == 0, err
    assert log.read_text().splitlines() == lines  # nothing evaluated twice
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["rows"] == b["rows"]


@pytest.mark.parametrize(("rank", "prefix"), [("0", ""), ("1", "rank 1: ")])
def test_an_input_error_before_the_ranks_meet_says_which_rank_reports_it(run_cli, monkeypatch, rank, prefix):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "-d", "nosie")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"wrobust: error: {prefix}unknown distortion"), err


def test_world_size_without_torchrun_is_one_clear_line(run_cli, monkeypatch):
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "-d", "sign", "--device", "cpu")
    assert code == 2 and "WORLD_SIZE=2 asks for a process group" in err and len(err.strip().splitlines()) == 1, err
