"""``wrobust gate`` takes every model, data and pass option of ``sweep``, on the command line and as a
``[gate]`` key (the command line wins), and records which was used (issue 22)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_w.cli.gate import COMMAND_LINE_ONLY, NOT_FOR_GATE, OWN_DEFINITION, POLICY_KEY, gate
from robustbench_w.cli.sweep import sweep
from robustbench_w.gate.policy import GATE_KEYS

MODEL = "builtin:digits-mlp"


# ------------------------------------------------------------------ parity with sweep

def test_gate_takes_every_option_of_sweep_with_the_same_definition():
    ours = {p.name: p for p in gate.params}
    missing = [p.opts[0] for p in sweep.params if p.name not in ours and p.name not in NOT_FOR_GATE]
    assert not missing, f"sweep options that gate lacks: {missing} (add them to gate, or to NOT_FOR_GATE with a reason)"
    for p in sweep.params:
        if p.name in ours and p.name not in OWN_DEFINITION:
            g = ours[p.name]
            assert (g.opts, g.help, type(g.type), g.multiple) == (p.opts, p.help, type(p.type), p.multiple), p.name
    assert set(NOT_FOR_GATE) <= {p.name for p in sweep.params}, "an exclusion that sweep no longer has"
    assert all(NOT_FOR_GATE.values()), "every exclusion says why"


def test_every_gate_option_is_a_policy_key_or_the_command_lines_alone():
    names = {p.name for p in gate.params}
    for name in names - set(COMMAND_LINE_ONLY):
        assert POLICY_KEY.get(name, name) in GATE_KEYS, f"--{name} has no [gate] key"
    assert set(COMMAND_LINE_ONLY) <= names and not set(COMMAND_LINE_ONLY) & GATE_KEYS


# ------------------------------------------------------------------ a ResNet-18 state dict on synthetic inputs

SIGN = '[[gate.require]]\ndistortion = "sign"\nmin_agreement = 0.0\n'


@pytest.fixture(scope="module")
def r18(tmp_path_factory) -> Path:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("r18") / "r18.pth"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    return path


def test_a_state_dict_on_synthetic_inputs_with_the_input_shape_in_either_place(run_cli, r18, tmp_path):
    args = ("gate", r18, "--arch", "resnet18", "--num-classes", "10", "--device", "cpu")
    policy, out = tmp_path / "p.toml", tmp_path / "g.json"
    policy.write_text(f'[gate]\ndataset = "synthetic"\nlimit = 4\n{SIGN}')
    code, _, err = run_cli(*args, "--policy", policy)
    assert code == 2 and "--input-shape" in err
    code, text, err = run_cli(*args, "--policy", policy, "--input-shape", "3,32,32", "-o", out)
    assert code == 0, text + err
    doc = json.loads(out.read_text())["gate"]["policy"]
    assert doc["input_shape"] == [3, 32, 32] and doc["sources"]["input_shape"] == "command line"
    policy.write_text(f'[gate]\ndataset = "synthetic"\nlimit = 4\ninput_shape = [3, 32, 32]\n{SIGN}')
    code, text, err = run_cli(*args, "--policy", policy, "-o", out)
    assert code == 0, text + err
    assert json.loads(out.read_text())["gate"]["policy"]["sources"]["input_shape"] == "policy"


# ------------------------------------------------------------------ an image folder at a given size

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Ten classes of one 16x16 grey image each: the digits MLP runs on them only at 8 px, grey."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for c in range(10):
        (root / f"c{c}").mkdir()
        Image.fromarray((rng.random((16, 16)) * 255).astype("uint8"), "L").save(root / f"c{c}" / "0.png")
    return root


def image_gate(run_cli, tmp_path, folder, settings: str, *args: str) -> tuple[int, str, dict]:
    policy, out = tmp_path / "p.toml", tmp_path / "g.json"
    policy.write_text(f'[gate]\ndataset = "imagefolder:{folder}"\n{settings}\n'  # random images: chance level
                      'allow_chance = true\n[[gate.require]]\ndistortion = "sign"\nmax_error = 1.0\n')
    code, text, err = run_cli("gate", MODEL, "--policy", policy, "--device", "cpu", "-o", out, *args)
    doc = json.loads(out.read_text()) if code == 0 else {}
    return code, text + err, doc


def test_image_size_in_the_policy_or_on_the_command_line(run_cli, tmp_path, folder):
    code, text, _ = image_gate(run_cli, tmp_path, folder, "")
    assert code == 2 and "(1, 224, 224)" in text  # the default size: the MLP cannot take it
    code, text, doc = image_gate(run_cli, tmp_path, folder, 'image_size = 8\nimage_mode = "L"')
    assert code == 0, text
    assert doc["gate"]["policy"]["sources"]["image_size"] == "policy"
    code, text, doc = image_gate(run_cli, tmp_path, folder, "image_size = 300", "--image-size", "8")
    assert code == 0, text  # the command line wins
    assert doc["gate"]["policy"]["image_size"] == 8 and doc["gate"]["policy"]["sources"]["image_size"] == "command line"


def test_normalize_mean_and_std_in_the_policy_or_on_the_command_line(run_cli, tmp_path, folder):
    code, text, doc = image_gate(run_cli, tmp_path, folder, "image_size = 8\nmean = 0.5\nstd = [0.25]")
    assert code == 0, text
    assert doc["meta"]["normalization"] == {"divisor": 255.0, "mean": [0.5], "std": [0.25]}
    code, text, doc = image_gate(run_cli, tmp_path, folder, "image_size = 8\nmean = 0.5\nstd = 0.25",
                                 "--mean", "0.1", "--std", "0.2")
    assert code == 0, text
    assert doc["meta"]["normalization"]["mean"] == [0.1] and doc["meta"]["normalization"]["std"] == [0.2]
    assert doc["gate"]["policy"]["sources"]["mean"] == "command line"
    code, text, doc = image_gate(run_cli, tmp_path, folder, 'image_size = 8\nnormalize = "none"')
    assert code == 0, text
    assert doc["meta"]["normalization_text"] == "none"
    code, text, doc = image_gate(run_cli, tmp_path, folder, "image_size = 8", "--normalize", "none")
    assert code == 0, text
    assert doc["meta"]["normalization_text"] == "none" and doc["gate"]["policy"]["sources"]["normalize"] == "command line"


def test_junit_records_each_setting_and_where_it_came_from(run_cli, tmp_path, folder):
    policy, junit = tmp_path / "p.toml", tmp_path / "g.xml"
    policy.write_text(f'[gate]\ndataset = "imagefolder:{folder}"\nimage_size = 8\nallow_chance = true\n'
                      '[[gate.require]]\ndistortion = "sign"\nmax_error = 1.0\n')
    code, text, err = run_cli("gate", MODEL, "--policy", policy, "--device", "cpu", "--junit", junit,
                              "--precision", "fp32", "--trials", "4")
    assert code == 0, text + err
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert props["setting.image_size"] == "8 (from the policy)"
    assert props["setting.precision"] == "fp32 (from the command line)"
    assert props["setting.trials"] == "4 (from the command line)"
    assert "setting.limit" not in props  # neither place gave it


@pytest.mark.parametrize(("setting", "message"), [
    ("image_size = 0", "gate.image_size: must be at least 1"),
    ('input_shape = "3,x,32"', "gate.input_shape: expected positive integers"),
    ('mean = "a"', "gate.mean: expected a number or an array"),
    ('precision = "fp8"', "gate.precision: expected one of 'fp32', 'tf32', 'bf16'"),
    ('device = "gpu"', "gate.device: 'gpu' is not a device"),
    ("strict = 1", "gate.strict: expected true or false"),
    ('normalize = "none"\nmean = 0.5', "gate.normalize: 'none' and mean/std contradict"),
    ('metric = "perplexitty"', "gate.metric: unknown metric"),
])
def test_bad_settings_exit_2_naming_the_key(run_cli, tmp_path, setting, message):
    policy = tmp_path / "p.toml"
    policy.write_text(f'[gate]\n{setting}\n[[gate.require]]\ndistortion = "sign"\nmax_error = 1.0\n')
    code, out, err = run_cli("gate", MODEL, "--policy", policy)
    assert code == 2 and out == "" and message in err, err


# ------------------------------------------------------------------ where a value came from, in words

def test_normalization_source_names_the_policy_keys_or_the_options(run_cli, tmp_path, folder):
    policy = tmp_path / "p.toml"
    code, text, doc = image_gate(run_cli, tmp_path, folder, "image_size = 8\nmean = 0.5\nstd = 0.25")
    assert code == 0, text
    assert doc["meta"]["normalization_source"] == f"policy {policy} [gate] mean/std"
    code, text, doc = image_gate(run_cli, tmp_path, folder, "image_size = 8\nstd = 0.25", "--mean", "0.1")
    assert code == 0, text
    assert doc["meta"]["normalization_source"] == f"--mean and policy {policy} [gate] std"
    code, text, doc = image_gate(run_cli, tmp_path, folder, "image_size = 8", "--mean", "0.1", "--std", "0.2")
    assert code == 0, text
    assert doc["meta"]["normalization_source"] == "--mean/--std"


def test_a_python_call_labels_its_settings_arguments_not_the_command_line(tmp_path, folder):
    from robustbench_w.errors import InvalidValueError
    from robustbench_w.gate.report import context, write_gate_files
    from robustbench_w.gate.verdict import run_gate

    policy, junit = tmp_path / "p.toml", tmp_path / "g.xml"
    policy.write_text(f'[gate]\ndataset = "imagefolder:{folder}"\nimage_size = 8\nallow_chance = true\n'
                      '[[gate.require]]\ndistortion = "sign"\nmax_error = 1.0\n')
    result = run_gate(MODEL, policy, device="cpu", mean=0.5, std=0.25, trials=2)
    assert result.policy.sources == {"dataset": "policy", "image_size": "policy", "mean": "argument",
                                     "std": "argument", "device": "argument", "allow_chance": "policy",
                                     "trials": "argument"}
    assert result.meta["normalization_source"] == "arguments mean/std"
    assert "from the call's arguments: mean, std, device, trials" in context(result)
    assert "command line" not in context(result)
    write_gate_files(result, junit=junit)
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert props["setting.device"] == "cpu (from the argument)" and props["setting.image_size"] == "8 (from the policy)"
    with pytest.raises(InvalidValueError, match="argument image_size: must be at least 1"):
        run_gate(MODEL, policy, device="cpu", image_size=0)


def test_a_missing_input_shape_names_the_option_and_in_a_gate_the_policy_key(tmp_path):
    from torch import nn

    from robustbench_w import sweep as sweep_model
    from robustbench_w.errors import MissingValueError
    from robustbench_w.gate.verdict import run_gate

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))  # records no input shape
    policy = tmp_path / "p.toml"
    policy.write_text(f'[gate]\ndataset = "synthetic"\nlimit = 4\n{SIGN}')
    with pytest.raises(MissingValueError) as gated:
        run_gate(model, policy, device="cpu")
    assert str(gated.value) == ("dataset synthetic needs the model's input shape: pass --input-shape (for example "
                                f"3,32,32) or input_shape in [gate] of {policy}; the checkpoint does not record it")
    with pytest.raises(MissingValueError) as swept:
        sweep_model(model, dataset="synthetic", distortions=["sign"], device="cpu")
    assert "--input-shape" in str(swept.value) and "[gate]" not in str(swept.value)
    assert run_gate(model, policy, device="cpu", input_shape=(3, 2, 2)).passed  # the way it names works
