"""Everyday cases a new user trips on (issue 11): user code in the current folder, everything missing said at
once, hints from the model, seeds from the canonical spec, devices, policy paths and NaN in JSON files."""

from __future__ import annotations

import json
import math
import os
import sys

import pandas as pd
import pytest
import torch
from test_checkpoints import save_export, write_tensors
from torch import nn

import robustbench_w as rw
from robustbench_w.errors import InvalidValueError
from robustbench_w.gate.policy import load_policy
from robustbench_w.load import device as device_module
from robustbench_w.load.device import resolve_device

MODEL = "builtin:digits-mlp"

MODELS_PY = '''
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x):
        return self.head(self.conv(x))


def build_cnn(num_classes=10):
    return Net(num_classes)
'''


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder holding the user's ``models.py``, made the current folder, and an import path without it
    (as the ``wrobust`` console script has it)."""
    (tmp_path / "models.py").write_text(MODELS_PY)
    monkeypatch.chdir(tmp_path)
    here = {"", ".", str(tmp_path)}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in here])
    monkeypatch.delitem(sys.modules, "models", raising=False)
    yield tmp_path
    sys.modules.pop("models", None)


# ------------------------------------------------------------------ user code in the current folder

def test_arch_module_callable_is_found_in_the_current_folder(run_cli, project):
    sys.path.append(str(project))  # only to build the file the user has; removed before wrobust runs
    import models

    torch.save(models.build_cnn().state_dict(), project / "cnn.pt")
    sys.path.remove(str(project))
    sys.modules.pop("models")
    write_tensors(project / "eval.pt", shape=(3, 8, 8))
    code, out, err = run_cli("sweep", "cnn.pt", "--arch", "models:build_cnn", "--dataset", "tensors:eval.pt",
                             "-d", "sign")
    assert code == 0, err
    assert str(project) not in sys.path  # the current folder was on the path only while importing


def test_a_trusted_pickle_of_a_class_in_the_current_folder_loads(run_cli, project):
    sys.path.append(str(project))
    import models

    torch.save(models.Net(), project / "whole.pt")
    sys.path.remove(str(project))
    sys.modules.pop("models")
    write_tensors(project / "eval.pt", shape=(3, 8, 8))
    code, out, err = run_cli("sweep", "whole.pt", "--trust-checkpoint", "--dataset", "tensors:eval.pt", "-d", "sign")
    assert code == 0, err


def test_a_module_that_is_nowhere_says_where_it_was_looked_for(project):
    from robustbench_w.load.archspec import resolve_arch

    with pytest.raises(InvalidValueError, match=r"cannot import 'nowhere_xyz' \(from the current folder"):
        resolve_arch("nowhere_xyz:build")
    assert resolve_arch("models:build_cnn")().conv.in_channels == 3


# ------------------------------------------------------------------ everything missing, in one message

def test_a_state_dict_without_arch_and_dataset_asks_for_both_at_once(run_cli, tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(nn.Linear(4, 2).state_dict(), path)
    code, out, err = run_cli("sweep", path)
    assert code == 2 and one_line(err)
    assert "needs --arch NAME" in err and "--num-classes N" in err and "and --dataset NAME" in err
    code, out, err = run_cli("sweep", path, "--dataset", "digits")
    assert code == 2 and "needs --arch NAME" in err and "--dataset" not in err.split("needs")[1]


def test_the_dataset_hint_of_a_program_uses_its_own_input_shape(run_cli, tmp_path):
    path = tmp_path / "m.pt2"
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    save_export(model, path, example=(2, 1, 8, 8))
    code, out, err = run_cli("sweep", path)
    assert code == 2 and one_line(err)
    assert "1x8x8" in err and "3,32,32" not in err and "synthetic" in err
    code, out, err = run_cli("sweep", path, "--dataset", "synthetic", "-d", "sign", "--limit", "16")
    assert code == 0, err  # the hint works as given


# ------------------------------------------------------------------ seeds from the canonical spec

def test_the_same_point_draws_the_same_noise_however_it_is_spelled():
    spellings = [(["noise:sigma=0.2"], None), (["noise"], [0.2]), (["addnorm:scale=max"], [0.2]),
                 (["ADDNORM:sigma=0.2"], None)]
    errors = []
    for dists, strengths in spellings:
        rows = rw.sweep(MODEL, distortions=dists, strengths=strengths, trials=3, limit=100, seed=3, device="cpu")
        point = rows[rows["distortion"] == "addnorm"]
        errors.append((point["error"].tolist(), point["weight_change"].tolist()))
    assert all(e == errors[0] for e in errors)
    other = rw.sweep(MODEL, distortions=["noise"], strengths=[0.2], trials=3, limit=100, seed=4, device="cpu")
    assert other[other["distortion"] == "addnorm"]["weight_change"].tolist() != errors[0][1]  # the seed counts


def test_a_gate_requirement_and_a_sweep_of_one_point_agree(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[gate]\ndataset = "digits"\nlimit = 100\ntrials = 2\nseed = 3\n[[gate.require]]\n'
                      'distortion = "noise:sigma=0.2"\nmax_error = 1.0\n')
    result = rw.gate(MODEL, policy, device="cpu")
    rows = rw.sweep(MODEL, distortions=["noise:sigma=0.2"], trials=2, limit=100, seed=3, device="cpu")
    assert result.rows[result.rows["distortion"] == "addnorm"]["error"].tolist() == \
        rows[rows["distortion"] == "addnorm"]["error"].tolist()


# ------------------------------------------------------------------ devices

@pytest.mark.parametrize(("device", "words"), [
    ("mps", "MPS backend is not available"),
    ("cuda:1", "no CUDA device is available"),
    ("gpu", "is not a device"),
    ("cuda:x", "is not a device"),
])
def test_unavailable_or_unknown_devices_are_one_line_errors(run_cli, monkeypatch, device, words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    code, out, err = run_cli("sweep", MODEL, "-d", "sign", "--device", device)
    assert code == 2 and one_line(err) and words in err


def test_cuda_n_and_mps_resolve_when_they_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device("CUDA") == torch.device("cuda")
    with pytest.raises(InvalidValueError, match="this machine has 2 CUDA device"):
        resolve_device("cuda:2")
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")
    with pytest.raises(InvalidValueError, match="unknown device 'meta'"):
        resolve_device("meta")


@pytest.mark.parametrize("command", [["bits", MODEL], ["gate", MODEL, "--policy", "x.toml"], ["train", "-o", "x.pt"]])
def test_every_command_takes_cuda_n_and_mps(run_cli, command):
    code, out, err = run_cli(command[0], "--device", "cuda:nope", *command[1:])
    assert code == 2 and "is not a device: use auto, cpu, cuda, cuda:N or mps" in err


@pytest.mark.gpu
def test_cuda_0_runs_a_sweep():
    rows = rw.sweep(MODEL, distortions=["noise"], strengths=[0.1], trials=2, limit=100, device="cuda:0")
    assert rows.attrs["meta"]["device"] == "cuda:0"


# ------------------------------------------------------------------ policy paths and errors

def test_tensors_and_data_root_in_a_policy_resolve_from_its_folder(run_cli, tmp_path, monkeypatch):
    folder = tmp_path / "ci"
    folder.mkdir()
    write_tensors(folder / "held.pt", n=20, shape=(1, 8, 8))
    policy = folder / "p.toml"
    policy.write_text('[gate]\ndataset = "tensors:held.pt"\ndata_root = "data"\nallow_chance = true\n'  # random data
                      '[[gate.require]]\ndistortion = "sign"\nmax_error = 1.0\n')
    loaded = load_policy(policy)
    assert (loaded.dataset, loaded.data_root) == (f"tensors:{folder / 'held.pt'}", str(folder / "data"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run_cli("gate", MODEL, "--policy", policy)
    assert code == 0, err


@pytest.mark.parametrize(("text", "words"), [
    ('dataset = "digitz"', "gate.dataset: unknown dataset 'digitz'"),
    ('dataset = "tensors"', "gate.dataset: dataset 'tensors' needs an argument"),
    ('normalize = "sometimes"', "gate.normalize: expected one of 'auto', 'none'"),
    ('[[gate.require]]\ndistortion = "nosie"\nmax_error = 0.1', "gate.require[1].distortion: unknown distortion"),
])
def test_every_policy_error_names_the_file(run_cli, tmp_path, text, words):
    policy = tmp_path / "p.toml"
    require = '[[gate.require]]\ndistortion = "sign"\nmax_error = 0.1\n'
    policy.write_text(f"[gate]\n{require}{text}\n" if text.startswith("[[") else f"[gate]\n{text}\n{require}")
    code, out, err = run_cli("gate", MODEL, "--policy", policy)
    assert code == 2 and one_line(err)
    assert err.startswith(f"wrobust: error: {policy}: ") and words in err


# ------------------------------------------------------------------ NaN in JSON files

def test_json_files_write_nan_and_pandas_reads_float_columns(run_cli, tmp_path):
    torch.save({"x": torch.randn(16, 1, 8, 8)}, tmp_path / "unlabelled.pt")  # no labels: error is NaN
    for suffix in (".json", ".jsonl"):
        code, out, err = run_cli("sweep", MODEL, "--dataset", f"tensors:{tmp_path / 'unlabelled.pt'}", "-d", "sign",
                                 "-o", tmp_path / f"r{suffix}")
        assert code == 0, err
    text = (tmp_path / "r.json").read_text()
    assert '"error": NaN' in text and '"error": null' not in text
    doc = json.loads(text)
    for frame in (pd.DataFrame(doc["rows"]), pd.DataFrame(doc["summary"]),
                  pd.read_json(tmp_path / "r.jsonl", lines=True)):
        column = frame["error"] if "error" in frame else frame["error_mean"]
        assert column.dtype == "float64" and column.isna().all()
    assert '"error": NaN' in (tmp_path / "r.jsonl").read_text()
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    assert "written `NaN` in `.json` and `.jsonl`" in readme  # the README says what the files hold


def test_a_baseline_with_nan_errors_compares_nothing_instead_of_failing(run_cli, tmp_path):
    torch.save({"x": torch.randn(16, 1, 8, 8)}, tmp_path / "u.pt")
    policy = tmp_path / "p.toml"
    policy.write_text('[gate]\ndataset = "tensors:u.pt"\n[[gate.require]]\ndistortion = "sign"\n'
                      'min_agreement = 0.0\n')
    code, out, err = run_cli("gate", MODEL, "--policy", policy, "-o", tmp_path / "base.json")
    assert code == 0, err
    assert math.isnan(json.loads((tmp_path / "base.json").read_text())["summary"][0]["error_mean"])
    code, out, err = run_cli("gate", MODEL, "--policy", policy, "--baseline", tmp_path / "base.json")
    assert code == 0, out + err
    assert "not compared" in out
