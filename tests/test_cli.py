"""The command line, as a user meets it: the issue's commands, exit codes, one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from robustbench_w.distortions import DISTORTIONS

MODEL = "builtin:digits-mlp"


def test_demo_runs_and_reports_every_demo_distortion(run_cli):
    code, out, err = run_cli("demo", "--trials", "2")
    assert code == 0, err
    assert "clean error" in out
    for name in ("addnorm", "multunif", "power", "sign", "round"):
        assert name in out


def test_list_distortions_names_every_distortion_and_alias(run_cli):
    code, out, _ = run_cli("list", "distortions")
    assert code == 0
    for name in DISTORTIONS.names():
        assert name in out
    for alias in ("noise", "additive", "binarize", "multiplicative"):
        assert alias in out


def test_list_archs_shows_bracketed_text_as_written(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli("list", "archs")
    assert code == 0 and "optional extra [timm]" in out  # not taken for console markup


def test_issue_sweep_command_writes_rows_and_is_reproducible(run_cli, tmp_path):
    def run(seed: int, name: str) -> pd.DataFrame:
        out = tmp_path / name
        code, _, err = run_cli("sweep", MODEL, "-d", "noise", "-s", "0,0.1,0.3", "--trials", "3", "--seed", seed,
                               "-o", out)
        assert code == 0, err
        return pd.read_csv(out)

    first, again, other = run(1, "r.csv"), run(1, "r2.csv"), run(2, "r3.csv")
    for col in ["model", "dataset", "distortion", "spec", "strength", "trial", "seed", "n", "accuracy", "error",
                "loss", "agreement", "weight_change"]:
        assert col in first.columns
    clean = first[first.distortion == "none"].error.item()
    assert first[(first.distortion == "addnorm") & (first.strength == 0)].error.tolist() == [clean]
    pd.testing.assert_frame_equal(first, again)
    strong = lambda f: f[f.strength == 0.3].sort_values("trial").error.tolist()  # noqa: E731
    assert strong(first) != strong(other)


def test_typo_in_distortion_exits_2_naming_the_close_match(run_cli):
    code, out, err = run_cli("sweep", MODEL, "-d", "nosie")
    assert code == 2 and "noise" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_strength_out_of_range_exits_2_naming_the_range(run_cli):
    code, _, err = run_cli("sweep", MODEL, "-d", "multunif", "-s", "1.5")
    assert code == 2 and "(0, 1]" in err and "Traceback" not in err


def test_missing_model_file_exits_2(run_cli, tmp_path):
    code, _, err = run_cli("sweep", tmp_path / "nothere.pt")
    assert code == 2 and "nothere.pt" in err and "Traceback" not in err


@pytest.mark.parametrize("args,needle", [
    (["sweep", MODEL, "--bogus"], "--bogus"),
    (["sweep", MODEL, "-s", "a,b"], "not a comma-separated list"),
    (["sweep", MODEL, "--trials", "0"], "--trials"),
    (["sweep", MODEL, "-o", "r.xlsx"], "unknown output format"),
    (["sweep", "builtin:nope"], "unknown built-in model"),
    (["sweep", MODEL, "--dataset", "digitz"], "did you mean 'digits'"),
])
def test_usage_errors_are_one_line_and_exit_2(run_cli, args, needle):
    code, _, err = run_cli(*args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_debug_shows_the_traceback(run_cli):
    code, _, err = run_cli("sweep", MODEL, "-d", "nosie", "--debug")
    assert code == 2 and "Traceback" in err


def test_failed_run_leaves_an_existing_output_file_alone(run_cli, tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("precious\n")
    code, _, _ = run_cli("sweep", MODEL, "-d", "nosie", "-o", out)
    assert code == 2 and out.read_text() == "precious\n"


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".md", ".parquet"])
def test_output_formats(run_cli, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"r{suffix}"
    code, _, err = run_cli("sweep", MODEL, "-d", "sign", "-d", "noise", "-s", "0.1", "--trials", "2", "-q", "-o", out)
    assert code == 0, err
    if suffix == ".json":
        doc = json.loads(out.read_text())
        assert set(doc) == {"meta", "rows", "summary"} and len(doc["rows"]) == 4
        for key in ("version", "torch", "device", "seed", "command", "model_sha256"):
            assert key in doc["meta"]
        assert doc["summary"][1]["error_ci_low"] is not None
    elif suffix == ".jsonl":
        assert len(out.read_text().splitlines()) == 4
    elif suffix == ".md":
        text = out.read_text()
        assert "## sign" in text and "## addnorm" in text and "| sigma |" in text
    else:
        assert len(pd.read_parquet(out)) == 4


def test_parquet_without_pyarrow_fails_before_any_work(run_cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    code, out, err = run_cli("sweep", MODEL, "-d", "sign", "-o", tmp_path / "r.parquet")
    assert code == 2 and "needs pyarrow" in err and out == ""


def test_strengths_and_a_spec_strength_together_is_a_usage_error(run_cli):
    code, _, err = run_cli("sweep", MODEL, "-d", "power:beta=0.5", "-s", "0.3")
    assert code == 2 and "give the strength once" in err


def test_quiet_prints_nothing(run_cli, tmp_path):
    code, out, err = run_cli("sweep", MODEL, "-d", "sign", "-q", "-o", tmp_path / "r.csv")
    assert code == 0 and out == "" and err == ""


def test_version_and_help(run_cli):
    assert run_cli("--version")[0] == 0
    code, out, _ = run_cli("--help")
    assert code == 0 and "wrobust demo" in out
