"""Shared fixtures: tiny models and data, CPU only."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustbench_w.cli import main


@pytest.fixture(autouse=True)
def _quiet_threads():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def run_cli(capsys):
    """Run ``wrobust ARGS...``; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def snapshot():
    """``snapshot(name, text)``: compare ``text`` with ``tests/snapshots/NAME`` (``UPDATE_SNAPSHOTS=1`` rewrites it)."""

    def check(name: str, text: str) -> None:
        path = Path(__file__).parent / "snapshots" / name
        if os.environ.get("UPDATE_SNAPSHOTS") == "1":
            path.write_text(text)
        assert text == path.read_text(), f"{name} changed; rerun with UPDATE_SNAPSHOTS=1 if intended"

    return check


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


# ------------------------------------------------------------------ result files for plot, compare and report

def result_rows(model: str, points: list[tuple], n: int = 1000) -> pd.DataFrame:
    """Sweep-like rows: the clean model (error 0.05), then per ``(spec, strength, errors per trial[, random])``
    one row per trial (random by default when there are several trials). ``strength`` NaN: a distortion
    without one."""
    names = {"addnorm": "sigma", "power": "beta", "quantize": "bits"}
    rows = [dict(spec="none", strength=math.nan, trial=0, error=0.05, stochastic=False)]
    for spec, strength, errors, *random in points:
        rows += [dict(spec=spec, strength=strength, trial=t, error=e, stochastic=random[0] if random else len(errors) > 1)
                 for t, e in enumerate(errors)]
    frame = pd.DataFrame(rows)
    frame.insert(0, "model", model)
    frame.insert(1, "dataset", "digits")
    frame.insert(2, "distortion", frame["spec"].str.split(":").str[0])
    frame["strength_name"] = [names.get(d, "") if not math.isnan(s) else "" for d, s in
                              zip(frame["distortion"], frame["strength"])]
    frame = frame.assign(seed=0, n=n, accuracy=1 - frame["error"], loss=frame["error"] * 2,
                         agreement=1 - frame["error"] + 0.05, weight_change=0.1, nonfinite=0)
    return frame


@pytest.fixture(scope="session")
def sweep_results(tmp_path_factory):
    """Two real sweeps of the built-in digits MLP (seeds 0 and 1) written as .json and .csv, and a
    per-layer sweep (one targeted tensor at a time, rows with a ``layer`` column) as .csv."""
    import robustbench_w as rw
    from robustbench_w.engine.runs.stats import summarize
    from robustbench_w.report.files import write_results

    folder = tmp_path_factory.mktemp("results")
    files = {}
    for seed, name in ((0, "a.json"), (1, "b.csv")):
        rows = rw.sweep("builtin:digits-mlp", distortions=["noise", "sign", "round"], strengths=None, trials=2,
                        seed=seed, device="cpu")
        files[name] = write_results(folder / name, rows, summarize(rows), rows.attrs["meta"])
    rows = rw.sweep("builtin:digits-mlp", distortions=["noise", "sign"], trials=2, per_layer=True, device="cpu")
    files["layers.csv"] = write_results(folder / "layers.csv", rows, summarize(rows), rows.attrs["meta"])
    return files


# ------------------------------------------------------------------ tiny Hugging Face models (issue 12)

@pytest.fixture(scope="session")
def gpt2_folder(tmp_path_factory):
    """A tiny GPT-2 trained here, saved as a Hugging Face folder with its tokenizer; ``eval.txt`` beside it."""
    from tiny_hf import tiny_gpt2

    torch.set_num_threads(1)
    return tiny_gpt2(tmp_path_factory.mktemp("lm") / "gpt2")


@pytest.fixture(scope="session")
def bert_folder(tmp_path_factory):
    """A tiny BERT-style encoder folder with its tokenizer; ``sentences.jsonl`` (no labels) beside it."""
    from tiny_hf import tiny_bert

    torch.set_num_threads(1)
    return tiny_bert(tmp_path_factory.mktemp("encoder") / "bert")
