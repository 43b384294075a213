"""Normalisation a user can see and choose (issue 11): what is in use and where it came from, ``--normalize none``,
the chance-level warning, ``--split train|test|all`` and the image mode of ``imagefolder``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_datasets import mlp_checkpoint, write_mnist, write_png_tree
from torch import nn

from robustbench_w.datasets.base import Normalization, load_dataset
from robustbench_w.datasets.digits import digits_test_mask
from robustbench_w.engine.passes.chance import chance_warning
from robustbench_w.load.checkpoints import resolve_path
from robustbench_w.load.inputs import load_inputs

MODEL = "builtin:digits-mlp"
CLEAN_ERROR = "clean error 2.54%"  # the built-in model on the digits test split


def model_ready_digits(path: Path) -> Path:
    """The digits test split as the model sees it: already normalised floats, in a tensors file."""
    data = load_dataset("digits")
    torch.save({"x": data.normalization.apply(data.x), "y": data.y, "num_classes": 10}, path)
    return path


def checkpoint_dividing_by(path: Path, divisor: float) -> Path:
    """The built-in digits MLP, recorded with inputs divided by ``divisor`` (its mean and std kept)."""
    payload = torch.load(resolve_path(MODEL), weights_only=True)
    payload["normalization"] = {**payload["normalization"], "divisor": divisor}
    torch.save(payload, path)
    return path


# ------------------------------------------------------------------ what is in use, and where it came from

@pytest.mark.parametrize(("norm", "text"), [
    (Normalization(), "none"),
    (Normalization(255.0), "x/255"),
    (Normalization(16.0, (0.3058,), (0.3764,)), "(x/16 - 0.3058) / 0.3764"),
    (Normalization(255.0, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2)), "(x/255 - (0.5, 0.4, 0.3)) / (0.2, 0.2, 0.2)"),
])
def test_normalisation_reads_as_a_formula(norm, text):
    assert norm.describe() == text


@pytest.mark.parametrize(("model", "args", "text", "source"), [
    (MODEL, [], "(x/16 - 0.3058) / 0.3764", "the checkpoint"),
    ("plain", [], "(x/16 - 0.3058) / 0.3764", "the dataset preset"),
    (MODEL, ["--mean", "0.5", "--std", "0.25"], "(x/16 - 0.5) / 0.25", "--mean/--std"),
    (MODEL, ["--normalize", "none"], "none", "--normalize none"),
])
def test_the_header_and_the_meta_say_which_normalisation_and_where_from(run_cli, tmp_path, model, args, text, source):
    model = mlp_checkpoint(tmp_path / "plain.pt", (1, 8, 8), dataset="digits") if model == "plain" else model
    out_file = tmp_path / "r.json"
    code, out, err = run_cli("sweep", model, "-d", "sign", "--limit", "50", "-o", out_file, *args)
    assert code == 0, err
    assert f"normalisation {text} (from {source})" in out
    meta = json.loads(out_file.read_text())["meta"]
    assert (meta["normalization_text"], meta["normalization_source"]) == (text, source)
    assert set(meta["normalization"]) == {"divisor", "mean", "std"}


def test_a_tensors_file_says_whether_its_normalisation_is_its_own(tmp_path):
    path = tmp_path / "n.pt"
    torch.save({"x": torch.zeros(2, 4), "y": torch.tensor([0, 1]), "normalization": {"divisor": 2.0, "mean": [0.0],
                                                                                  "std": [1.0]}}, path)
    assert load_dataset(f"tensors:{path}").normalization_source == "the tensors file"
    torch.save({"x": torch.zeros(2, 4, dtype=torch.uint8)}, path)
    data = load_dataset(f"tensors:{path}")
    assert (data.normalization.describe(), data.normalization_source) == ("x/255", "the default for uint8 inputs")


# ------------------------------------------------------------------ --normalize none and the chance-level warning

def test_normalize_none_gives_the_right_error_on_model_ready_inputs_and_without_it_a_warning(run_cli, tmp_path):
    ready = model_ready_digits(tmp_path / "ready.pt")
    model = checkpoint_dividing_by(tmp_path / "m.pt", 240.0)  # a checkpoint of uint8 images (x/240)
    code, out, err = run_cli("sweep", model, "--dataset", f"tensors:{ready}", "-d", "sign", "--normalize", "none",
                             "-o", tmp_path / "right.json")
    assert code == 0 and err == "", err
    assert CLEAN_ERROR in out  # the same as the built-in model on --dataset digits
    assert json.loads((tmp_path / "right.json").read_text())["meta"]["warnings"] == []
    code, out, err = run_cli("sweep", model, "--dataset", f"tensors:{ready}", "-d", "sign", "-o", tmp_path / "w.json")
    assert code == 0
    assert len(err.strip().splitlines()) == 1 and err.startswith("wrobust: warning: the clean model is at chance")
    assert "(x/240 - 0.3058) / 0.3764 (from the checkpoint)" in err and "--normalize none" in err
    assert json.loads((tmp_path / "w.json").read_text())["meta"]["warnings"] == [err.strip()[len("wrobust: warning: "):]]


def test_the_gate_puts_the_chance_warning_in_its_summary_and_its_json(run_cli, tmp_path):
    ready = model_ready_digits(tmp_path / "ready.pt")
    model = checkpoint_dividing_by(tmp_path / "m.pt", 240.0)
    policy = tmp_path / "p.toml"
    policy.write_text(f'[gate]\ndataset = "tensors:{ready.name}"\n[[gate.require]]\ndistortion = "sign"\n'
                      'max_error = 0.5\n')
    code, out, _ = run_cli("gate", model, "--policy", policy, "--summary", tmp_path / "s.md", "-o", tmp_path / "g.json")
    assert code == 1 and "warning: the clean model is at chance level" in out
    assert "**Warning:** the clean model is at chance level" in (tmp_path / "s.md").read_text()
    assert json.loads((tmp_path / "g.json").read_text())["gate"]["warnings"][0].startswith("the clean model")
    policy.write_text(policy.read_text().replace("[[gate", 'normalize = "none"\n[[gate', 1))
    code, out, _ = run_cli("gate", model, "--policy", policy, "--summary", tmp_path / "s.md")
    assert code == 0 and "warning" not in out and "Warning" not in (tmp_path / "s.md").read_text()


@pytest.mark.parametrize(("accuracy", "classes", "warned"), [
    (0.10, 10, True), (0.149, 10, True), (0.0, 10, True), (0.151, 10, False), (0.97, 10, False),
    (0.52, 2, True), (0.6, 2, False), (float("nan"), 10, False), (0.1, None, False),
])
def test_chance_level_is_within_five_points_of_one_over_classes_or_below(accuracy, classes, warned):
    assert (chance_warning(accuracy, classes, "none", "the checkpoint") is not None) is warned


def test_normalize_none_and_mean_contradict_each_other(run_cli):
    code, out, err = run_cli("sweep", MODEL, "--normalize", "none", "--mean", "0.5")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "contradict" in err


# ------------------------------------------------------------------ splits

def test_the_digits_split_is_every_fifth_image_of_each_class():
    from sklearn.datasets import load_digits

    target = load_digits().target
    mask = digits_test_mask(target)
    for c in range(10):
        members = np.flatnonzero(target == c)
        assert mask[members].tolist() == [i % 5 == 4 for i in range(len(members))]
    sizes = {split: len(load_dataset("digits", split)) for split in ("test", "train", "all")}
    assert sizes == {"test": 355, "train": 1442, "all": 1797}
    assert torch.equal(load_dataset("digits", "all").y, torch.as_tensor(target))


def test_split_all_on_the_command_line_and_for_torchvision_sets(run_cli, tmp_path):
    code, out, err = run_cli("sweep", MODEL, "--split", "all", "-d", "sign")
    assert code == 0, err
    assert "on digits (all, n=1797)" in out
    write_mnist(tmp_path / "data", n=20)
    both = load_dataset("mnist", "all", data_root=tmp_path / "data")
    train = load_dataset("mnist", "train", data_root=tmp_path / "data")
    test = load_dataset("mnist", "test", data_root=tmp_path / "data")
    assert len(both) == 40 and both.split == "all"
    assert torch.equal(both.x, torch.cat([train.x, test.x])) and torch.equal(both.y, torch.cat([train.y, test.y]))


def test_imagefolder_split_all_reads_both_folders(tmp_path):
    write_png_tree(tmp_path / "root" / "train", per_class=2)
    write_png_tree(tmp_path / "root" / "val", per_class=3)
    assert len(load_dataset(f"imagefolder:{tmp_path / 'root'}", "all", image_size=8)) == 10
    assert len(load_dataset(f"imagefolder:{tmp_path / 'root'}", "test", image_size=8)) == 6


# ------------------------------------------------------------------ imagefolder: grey or colour

def grey_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()


def test_image_mode_is_chosen_by_flag_or_by_the_models_first_layer(run_cli, tmp_path):
    write_png_tree(tmp_path / "imgs")
    folder = f"imagefolder:{tmp_path / 'imgs'}"
    grey = load_dataset(folder, image_size=8, image_mode="L")
    assert grey.x.shape == (6, 1, 8, 8) and grey.normalization.mean == (0.449,)
    assert load_dataset(folder, image_size=8).x.shape == (6, 3, 8, 8)
    from robustbench_w.load.checkpoints import LoadedModel

    inputs = load_inputs(LoadedModel(module=grey_cnn(), name="grey"), folder, device="cpu", image_size=8)
    assert inputs.data.x.shape[1] == 1  # read as L: the first convolution takes one channel
    wide = mlp_checkpoint(tmp_path / "wide.pt", (3, 8, 8), classes=2)
    assert load_inputs(str(wide), folder, device="cpu", image_size=8).data.x.shape[1] == 3
    path = tmp_path / "grey.pt"
    torch.save(grey_cnn(), path)
    code, out, err = run_cli("sweep", path, "--trust-checkpoint", "--dataset", folder, "--image-size", "8",
                             "-d", "sign", "--image-mode", "RGB")
    assert code == 2 and "does not run on" in err  # the flag wins over the model's first layer
    code, out, err = run_cli("sweep", path, "--trust-checkpoint", "--dataset", folder, "--image-size", "8",
                             "-d", "sign")
    assert code == 0, err
