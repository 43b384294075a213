"""Loading checkpoints of every kind, by content, safely; errors are one line naming the file.

Every file here is written in its real format (torch.save, safetensors, torch.jit.save, torch.export.save)
and loaded through the code path a user's file takes; the sweeps run on tiny inputs (8 images of 3x32x32).
"""

from __future__ import annotations

import os
import sys
import warnings

import pandas as pd
import pytest
import torch
import torchvision
from torch import nn

from robustbench_w.engine.weights.targets import select_targets
from robustbench_w.errors import InputFileError, InvalidValueError, UnknownNameError, WrobustNote
from robustbench_w.load.archspec import build, build_model, resolve_arch
from robustbench_w.load.checkpoints import load_model, save_checkpoint
from robustbench_w.load.sniff import sniff
from robustbench_w.load.statedict import fit_prefixes

SWEEP_SIGN = ("-d", "sign", "--device", "cpu", "-q")


def small_cnn(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, num_classes)).eval()


USER_ARCH = '''
from torch import nn

def make(num_classes=10):
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, num_classes))

def not_a_module(num_classes=10):
    return 42

def broken(num_classes=10):
    raise RuntimeError("the factory broke")

def no_classes():
    return make()
'''


def write_tensors(path, n: int = 8, classes: int = 10, shape=(3, 32, 32)):
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen)
    torch.save({"x": x, "y": torch.arange(n) % classes, "num_classes": classes}, path)
    return path


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_tensors(tmp_path_factory.mktemp("data") / "images.pt")


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_arch.py"
    path.write_text(USER_ARCH)
    return path


def outputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return module(x)


# ------------------------------------------------------------------ wrobust's own format

def test_own_format_loads_with_weights_only_and_keeps_its_record(tmp_path):
    model = build_model("mlp", num_classes=3, in_features=6, hidden=(5,)).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, "mlp", {"in_features": 6, "hidden": (5,), "num_classes": 3},
                           dataset="digits", num_classes=3, input_shape=(6,))
    assert torch.load(path, weights_only=True)["format"] == "wrobust"
    loaded = load_model(path)
    x = torch.randn(4, 6)
    assert loaded.format == "wrobust" and loaded.input_shape == (6,) and not loaded.module.training
    assert torch.equal(outputs(loaded.module, x), outputs(model, x))


# ------------------------------------------------------------------ state dicts and safetensors

def test_torchvision_state_dict_sweeps_with_arch_and_num_classes(run_cli, resnet18, images, tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in resnet18.state_dict().items()}, "epoch": 3}, path)
    out = tmp_path / "rows.csv"
    code, _, err = run_cli("sweep", path, "--arch", "resnet18", "--num-classes", "10", "--dataset",
                           f"tensors:{images}", "--limit", "8", *SWEEP_SIGN, "-o", out)
    assert code == 0, err
    rows = pd.read_csv(out)
    assert rows.n.tolist() == [8, 8] and rows.weight_change.iloc[1] > 0
    assert "took the state dict under key 'state_dict'" in err  # the CLI says it once, as a note
    with pytest.warns(WrobustNote, match="under key 'state_dict' \\(also in the file: epoch\\)"):
        assert load_model(path, arch="resnet18", num_classes=10).format == "state_dict"


def test_safetensors_gives_the_same_model(run_cli, resnet18, images, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "weights.bin"  # the suffix does not matter: the content does
    save_file(resnet18.state_dict(), str(path))
    loaded = load_model(path, arch="resnet18", num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    assert loaded.format == "safetensors" and torch.equal(outputs(loaded.module, x), outputs(resnet18, x))
    code, _, err = run_cli("sweep", path, "--arch", "resnet18", "--num-classes", "10", "--dataset",
                           f"tensors:{images}", *SWEEP_SIGN)
    assert code == 0, err


def test_safetensors_without_the_package_is_one_line(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file(small_cnn().state_dict(), str(path))
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(InputFileError, match=r"w.safetensors: .*pip install 'robustbench_w\[safetensors\]'"):
        load_model(path, arch="resnet18")


@pytest.mark.parametrize("container", [None, "state_dict", "model", "model_state_dict"])
@pytest.mark.parametrize("prefix", ["", "module.", "model.", "_orig_mod.module."])
def test_state_dict_keys_and_wrapper_prefixes_are_found(tmp_path, user_file, container, prefix):
    model = small_cnn()
    state = {prefix + k: v for k, v in model.state_dict().items()}
    path = tmp_path / "ckpt.pt"
    torch.save(state if container is None else {container: state, "optimizer": {"lr": 0.1}}, path)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        loaded = load_model(path, arch=f"{user_file}:make", num_classes=10)
    notes = [str(w.message) for w in said if issubclass(w.category, WrobustNote)]
    assert notes == ([] if container is None else [f"{path}: took the state dict under key {container!r} "
                                                   "(also in the file: optimizer)"])
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(outputs(loaded.module, x), outputs(model, x))


def test_lightning_keys_outside_the_model_are_left_out():
    own = ["0.weight", "0.bias"]
    state = {"model.0.weight": 1, "model.0.bias": 2, "criterion.weight": 3}
    assert fit_prefixes(state, own) == {"0.weight": 1, "0.bias": 2}
    assert fit_prefixes({"0.weight": 1}, own) == {"0.weight": 1}


def test_state_dict_that_does_not_fit_lists_the_keys(run_cli, tmp_path, user_file, images):
    state = small_cnn(num_classes=5).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["1.running_var"]
    path = tmp_path / "other.pt"
    torch.save(state, path)
    code, _, err = run_cli("sweep", path, "--arch", f"{user_file}:make", "--dataset", f"tensors:{images}", *SWEEP_SIGN)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    for part in (str(path), "missing: 1.running_var", "unexpected: extra.weight",
                 "mis-shaped: 5.weight (5, 16) vs (10, 16)"):
        assert part in err


def test_plain_state_dict_without_arch_asks_for_it(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(small_cnn().state_dict(), path)
    with pytest.raises(InputFileError, match="sd.pt: a plain state dict .* needs --arch"):
        load_model(path)


# ------------------------------------------------------------------ user code as the architecture

def test_model_built_by_user_file_sweeps(run_cli, tmp_path, user_file, images):
    path = tmp_path / "user.pt"
    torch.save(build(f"{user_file}:make", 10).state_dict(), path)
    code, out, err = run_cli("sweep", path, "--arch", f"{user_file}:make", "--num-classes", "10",
                             "--dataset", f"tensors:{images}", "-d", "sign", "--device", "cpu")
    assert code == 0, err
    assert "sign" in out


def test_user_module_callable(tmp_path, monkeypatch):
    (tmp_path / "wrobust_test_archpkg.py").write_text(USER_ARCH)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(build("wrobust_test_archpkg:make", 3), nn.Module)


@pytest.mark.parametrize("spec, error, match", [
    ("{f}:missing", InvalidValueError, "has no callable 'missing'"),
    ("{f}:not_a_module", InvalidValueError, "returned a int, not an nn.Module"),
    ("{f}:broken", InvalidValueError, "building the model failed: RuntimeError: the factory broke"),
    ("{f}:no_classes", InvalidValueError, "takes no num_classes"),
    ("{d}/nowhere.py:make", InputFileError, "nowhere.py: no such file"),
    ("no_such_package_xyz:make", InvalidValueError, "cannot import 'no_such_package_xyz'"),
    ("resnet81", UnknownNameError, "did you mean 'resnet18'"),
])
def test_bad_arch_specs_are_one_line_errors(user_file, spec, error, match):
    with pytest.raises(error, match=match):
        build(spec.format(f=user_file, d=user_file.parent), num_classes=10)


def test_torchvision_names_and_builtins_resolve():
    assert callable(resolve_arch("resnet18")) and callable(resolve_arch("mlp"))


# ------------------------------------------------------------------ compiled programs: no --arch

def save_torchscript(model: nn.Module, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, torch.randn(2, 3, 8, 8)), str(path))


def save_export(model: nn.Module, path, dynamic: bool = True, example=(2, 3, 8, 8)) -> None:
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(model, (torch.randn(*example),), dynamic_shapes=shapes), str(path))


@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_compiled_programs_sweep_without_arch(run_cli, tmp_path, kind):
    path = tmp_path / ("model.pt" if kind == "torchscript" else "model.pt2")
    (save_torchscript if kind == "torchscript" else save_export)(small_cnn(), path)
    trust = ["--trust-checkpoint"] if kind == "torchscript" else []  # a TorchScript archive is a program
    loaded = load_model(path, trust_checkpoint=bool(trust))
    assert loaded.format == kind and sniff(path) == kind
    assert [n for n, _ in select_targets(loaded.module)] == ["0.weight", "5.weight"]
    out = tmp_path / "rows.csv"
    code, _, err = run_cli("sweep", path, *trust, "--dataset", "synthetic", "--input-shape", "3,8,8", "--limit", "16",
                           *SWEEP_SIGN, "-o", out)
    assert code == 0, err
    assert pd.read_csv(out).agreement.iloc[1] < 1.0  # distorting the weights in place changed the outputs


def test_torchscript_needs_trust(run_cli, tmp_path):
    path = tmp_path / "scripted.pt"
    save_torchscript(small_cnn(), path)
    code, _, err = run_cli("sweep", path, "--dataset", "synthetic", "--input-shape", "3,8,8", *SWEEP_SIGN)
    assert code == 2 and "--trust-checkpoint" in err and "TorchScript" in err and str(path) in err


def rewrite_archive(src, dst, edit) -> None:
    """Copy a zip archive, passing each member's bytes through ``edit(name, data)``."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))


def _pickled_weight(name: str, data: bytes) -> bytes:
    import fractions
    import io
    import json

    if name.endswith("model_weights_config.json"):
        config = json.loads(data)
        next(iter(config["config"].values()))["use_pickle"] = True
        return json.dumps(config).encode()
    if name.endswith("weights/weight_0"):
        buffer = io.BytesIO()
        torch.save(fractions.Fraction(1, 2), buffer)  # any object that weights_only refuses
        return buffer.getvalue()
    return data


def _opaque_constant(name: str, data: bytes) -> bytes:
    import json

    if name.endswith("model_constants_config.json"):
        config = json.loads(data)
        config.setdefault("config", {})["thing"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True}
        return json.dumps(config).encode()
    return data


@pytest.mark.parametrize("edit", [_pickled_weight, _opaque_constant])
def test_exported_program_with_pickled_objects_needs_trust(tmp_path, edit):
    plain = tmp_path / "plain.pt2"
    save_export(small_cnn(), plain)
    rewrite_archive(plain, tmp_path / "copy.pt2", lambda name, data: data)
    assert load_model(tmp_path / "copy.pt2").format == "export"  # the rewriting itself keeps a valid program
    rewrite_archive(plain, tmp_path / "objects.pt2", edit)
    with pytest.raises(InputFileError, match="objects.pt2: the program holds pickled Python objects.*--trust-checkpoint"):
        load_model(tmp_path / "objects.pt2")
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ  # the guard is lifted after loading


def test_exported_program_records_its_input_shape_and_runs_any_batch(tmp_path):
    path = tmp_path / "fixed.pt2"
    save_export(small_cnn(), path, dynamic=False)
    loaded = load_model(path)
    assert loaded.input_shape == (3, 8, 8)
    x = torch.randn(5, 3, 8, 8)
    reference = outputs(small_cnn(), x)
    assert torch.allclose(outputs(loaded.module, x), reference, atol=1e-6)
    loaded.module.eval()  # the exported module's mode is fixed: eval() and train() are no-ops, not errors


@pytest.mark.parametrize("lifted", ["buffer", "constant"])
def test_exported_weights_lifted_out_of_parameters_become_targets(tmp_path, lifted):
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)).eval()
    weight = model[0].weight.detach().clone()
    del model[0].weight
    if lifted == "buffer":
        model[0].register_buffer("weight", weight)
    else:
        model[0].weight = weight
    path = tmp_path / "lifted.pt2"
    save_export(model, path, example=(2, 6))
    loaded = load_model(path)
    targets = dict(select_targets(loaded.module))
    assert list(targets) == ["0.weight", "2.weight"]
    x = torch.randn(4, 6)
    before = outputs(loaded.module, x)
    with torch.no_grad():
        targets["0.weight"].mul_(-1)
    assert not torch.allclose(outputs(loaded.module, x), before)


# ------------------------------------------------------------------ whole pickled modules: trust

def test_pickled_module_is_refused_without_trust_and_loads_with_it(run_cli, tmp_path, images):
    path = tmp_path / "whole.pt"
    torch.save(small_cnn(), path)
    code, _, err = run_cli("sweep", path, "--dataset", f"tensors:{images}", *SWEEP_SIGN)
    assert code == 2 and "--trust-checkpoint" in err and str(path) in err and "Traceback" not in err
    code, _, err = run_cli("sweep", path, "--trust-checkpoint", "--dataset", f"tensors:{images}", *SWEEP_SIGN)
    assert code == 0, err
    assert load_model(path, trust_checkpoint=True).format == "pickle"


# ------------------------------------------------------------------ broken files

def _truncated(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save(small_cnn().state_dict(), path)
    path.write_bytes(path.read_bytes()[:700])
    return path


def _cut_safetensors(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "cut.safetensors"
    save_file(small_cnn().state_dict(), str(path))
    path.write_bytes(path.read_bytes()[:-40])
    return path


def _garbage(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    return path


def _cut_program(tmp_path):
    path = tmp_path / "cut.pt2"
    save_export(small_cnn(), path)
    path.write_bytes(path.read_bytes()[:-100])
    return path


@pytest.mark.parametrize("make", [_truncated, _cut_safetensors, _garbage, _empty, _cut_program])
def test_broken_files_exit_2_with_one_line_naming_the_file(run_cli, tmp_path, make):
    path = make(tmp_path)
    code, _, err = run_cli("sweep", path, "--arch", "resnet18", "--dataset", "synthetic", "--input-shape", "3,8,8")
    assert code == 2, err
    assert err.startswith("wrobust: error: ") and str(path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        load_model(tmp_path / "absent.pt")
    with pytest.raises(InputFileError, match="is a directory"):
        load_model(tmp_path)


# ------------------------------------------------------------------ model and data must fit

def test_outputs_that_do_not_fit_the_classes_exit_2(run_cli, tmp_path, user_file):
    data = write_tensors(tmp_path / "c100.pt", classes=100, shape=(3, 8, 8))
    path = tmp_path / "m.pt"
    torch.save(small_cnn().state_dict(), path)
    code, _, err = run_cli("sweep", path, "--arch", f"{user_file}:make", "--dataset", f"tensors:{data}", *SWEEP_SIGN)
    assert code == 2 and "10 outputs" in err and "100 classes" in err


def test_model_that_does_not_run_on_the_inputs_exits_2(run_cli, tmp_path, user_file):
    data = write_tensors(tmp_path / "grey.pt", shape=(1, 8, 8))
    path = tmp_path / "m.pt"
    torch.save(small_cnn().state_dict(), path)
    code, _, err = run_cli("sweep", path, "--arch", f"{user_file}:make", "--dataset", f"tensors:{data}", *SWEEP_SIGN)
    assert code == 2 and "does not run on" in err and "(1, 8, 8)" in err
