"""Real checkpoints load as they are, and nothing is dropped silently (issue 10): buffers vs parameters,
``--strict``, ``bits`` from tensors alone, ``--arch`` that a file overrides, ``-o`` repeated, library
warnings only with ``--debug``, the user's own code raising, and writes that never leave a partial file."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch
from broken_inputs import (
    BUILTIN,
    bert_state,
    write_net,
    write_safetensors,
    write_state_dict,
)
from torch import nn

from robustbench_w.bits import effective_bits
from robustbench_w.errors import InputFileError, WrobustNote
from robustbench_w.load.archspec import build
from robustbench_w.load.checkpoints import load_model, save_checkpoint
from robustbench_w.load.usercode import user_code_error
from robustbench_w.load.writing import atomic_write


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return write_net(tmp_path_factory.mktemp("net"))


def save(tmp_path, state: dict, name: str = "bert.pt"):
    torch.save(state, tmp_path / name)
    return tmp_path / name


# ------------------------------------------------------------------ buffers and parameters

def test_bert_state_dict_with_an_extra_position_ids_buffer_loads_with_a_note(net, tmp_path):
    path = save(tmp_path, bert_state(net, extra={"embeddings.position_ids": torch.arange(4).unsqueeze(0)}))
    with pytest.warns(WrobustNote, match=r"ignored 1 buffer\(s\) the architecture does not load "
                                         r"\(embeddings.position_ids\)"):
        loaded = load_model(path, arch=f"{net}:bert")
    reference = build(f"{net}:bert", None).eval()
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(loaded.module(x), reference(x)) and len(loaded.notes) == 1


def test_bert_sweep_says_so_in_one_line_and_records_it(run_cli, net, tmp_path):
    path = save(tmp_path, bert_state(net, extra={"embeddings.position_ids": torch.arange(4).unsqueeze(0)}))
    out = tmp_path / "rows.json"
    code, _, err = run_cli("sweep", path, "--arch", f"{net}:bert", "--dataset", "synthetic", "--input-shape", "1,8,8",
                           "-d", "sign", "--device", "cpu", "-o", out)  # no labels: no chance-level warning either
    assert code == 0 and len(err.strip().splitlines()) == 1 and err.startswith("wrobust: note: ")
    assert "embeddings.position_ids" in json.loads(out.read_text())["meta"]["notes"][0]


def test_bert_state_dict_with_an_extra_parameter_exits_2(run_cli, net, tmp_path):
    path = save(tmp_path, bert_state(net, extra={"pooler.dense.weight": torch.ones(8, 8)}))
    code, _, err = run_cli("sweep", path, "--arch", f"{net}:bert", "--dataset", "digits", "-d", "sign")
    assert code == 2 and "1 unexpected: pooler.dense.weight" in err and len(err.strip().splitlines()) == 1


def test_missing_buffers_keep_the_architectures_values_and_missing_parameters_fail(net, tmp_path):
    path = save(tmp_path, bert_state(net, drop=("embeddings.token_type_ids",)))
    with pytest.warns(WrobustNote, match="kept the architecture's own values of 1 buffer"):
        load_model(path, arch=f"{net}:bert")
    path = save(tmp_path, bert_state(net, drop=("classifier.weight",)), "noparam.pt")
    with pytest.raises(InputFileError, match="1 missing: classifier.weight"):
        load_model(path, arch=f"{net}:bert")


@pytest.mark.parametrize("edit", [
    {"extra": {"embeddings.position_ids": torch.arange(4).unsqueeze(0)}},
    {"drop": ("embeddings.token_type_ids",)},
])
def test_strict_asks_for_exact_keys(net, tmp_path, edit):
    path = save(tmp_path, bert_state(net, **edit))
    with pytest.raises(InputFileError, match="the weights do not fit"):
        load_model(path, arch=f"{net}:bert", strict=True)


def test_an_unexpected_float_tensor_is_a_parameter_even_with_a_buffer_like_name(net, tmp_path):
    path = save(tmp_path, bert_state(net, extra={"embeddings.LayerNorm.running_mean": torch.zeros(8)}))
    with pytest.raises(InputFileError, match="unexpected: embeddings.LayerNorm.running_mean"):
        load_model(path, arch=f"{net}:bert")


# ------------------------------------------------------------------ effective bits from tensors alone

def test_bits_of_a_safetensors_file_without_arch(run_cli, tmp_path):
    path = write_safetensors(tmp_path / "model.safetensors", {"embed.ids": torch.arange(6).reshape(2, 3)})
    out, table = tmp_path / "bits.json", tmp_path / "bits.md"
    code, stdout, err = run_cli("bits", path, "-o", out, "-o", table)
    assert code == 0 and err == ""
    doc = json.loads(out.read_text())
    assert [layer["name"] for layer in doc["layers"]] == ["1.weight", "3.weight", "5.weight"]  # no biases, no ints
    assert doc["total"]["weights"] == 64 * 128 + 128 * 128 + 128 * 10
    assert doc["meta"]["targets_chosen_by"] == "shape" and "chosen by shape" in stdout and "total" in stdout
    builtin = effective_bits(BUILTIN)
    assert [round(b, 9) for b in builtin["bits_per_weight"]] == [round(x["bits_per_weight"], 9) for x in doc["layers"]]
    assert "chosen by shape" in table.read_text()


def test_bits_of_a_state_dict_without_arch_applies_include_exclude_and_distortions(tmp_path):
    path = write_state_dict(tmp_path / "sd.pt")
    frame = effective_bits(str(path), "sign", exclude=["5.*"])
    assert list(frame["name"]) == ["1.weight", "3.weight"] and (frame["bits_per_weight"] <= 1).all()
    assert list(effective_bits(str(path), include=["*.bias"])["name"]) == ["1.bias", "3.bias", "5.bias"]


# ------------------------------------------------------------------ options that used to be ignored

def test_arch_with_a_checkpoint_that_carries_its_own_says_so_unless_they_agree(run_cli):
    code, _, err = run_cli("bits", BUILTIN, "--arch", "resnet18", "-q")
    assert code == 0 and err.strip() == ("wrobust: warning: --arch resnet18 is not used: builtin:digits-mlp carries "
                                         "its own architecture (mlp)")
    assert run_cli("bits", BUILTIN, "--arch", "mlp", "-q") == (0, "", "")


def test_o_repeated_writes_every_file(run_cli, tmp_path):
    a, b, c = tmp_path / "rows.csv", tmp_path / "all.json", tmp_path / "summary.md"
    code, out, err = run_cli("sweep", BUILTIN, "-d", "sign", "--device", "cpu", "-o", a, "-o", b, "-o", c, "-o", a)
    assert code == 0, err
    assert len(pd.read_csv(a)) == 2 and len(json.loads(b.read_text())["rows"]) == 2 and "sign" in c.read_text()
    assert out.count(f"wrote {a}") == 1 and f"wrote {c}" in out
    g1, g2 = tmp_path / "g1.json", tmp_path / "g2.json"
    policy = tmp_path / "p.toml"
    policy.write_text('[gate]\ndataset = "digits"\n[[gate.require]]\ndistortion = "sign"\nmax_error = 1.0\n')
    assert run_cli("gate", BUILTIN, "--policy", policy, "--device", "cpu", "-o", g1, "-o", g2, "-q")[0] == 0
    assert json.loads(g1.read_text())["gate"] == json.loads(g2.read_text())["gate"]


def test_library_warnings_reach_stderr_only_with_debug(run_cli, net, tmp_path):
    path = write_state_dict(tmp_path / "sd.pt")
    args = ("bits", path, "--arch", f"{net}:warns", "-q")
    assert run_cli(*args) == (0, "", "")
    code, _, err = run_cli(*args, "--debug")
    assert code == 0 and "this factory is deprecated" in err and "a library's own user warning" in err


# ------------------------------------------------------------------ the user's own code

BOOM_MODULE = '''
from torch import nn


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        raise RuntimeError("boom")
'''


def test_a_trusted_pickle_whose_forward_raises_is_the_users_error(run_cli, tmp_path, monkeypatch):
    (tmp_path / "wrobust_test_boom.py").write_text(BOOM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    from wrobust_test_boom import Exploding

    path = tmp_path / "whole.pt"
    torch.save(Exploding(), path)
    code, _, err = run_cli("sweep", path, "--trust-checkpoint", "--dataset", "digits", "-d", "sign")
    assert code == 2
    assert err.strip() == "wrobust: error: your model raised RuntimeError: boom (in wrobust_test_boom.py:forward)"


def test_errors_of_torch_itself_are_not_blamed_on_the_user():
    try:
        nn.Linear(3, 2)(torch.zeros(1, 4))
    except RuntimeError as exc:
        assert user_code_error(exc) is None
    try:
        raise ValueError("outside any module call")
    except ValueError as exc:
        assert user_code_error(exc) is None


# ------------------------------------------------------------------ failed runs leave nothing behind

def test_failed_reproduce_removes_the_folder_it_made_and_keeps_the_users(run_cli, tmp_path):
    made = tmp_path / "new" / "grid"
    code, _, err = run_cli("reproduce", "--rules", "none,nosuch", "--quick", "-o", made)
    assert code == 2 and "nosuch" in err and not made.exists()
    kept = tmp_path / "mine"
    kept.mkdir()
    assert run_cli("reproduce", "--rules", "nosuch", "--quick", "-o", kept)[0] == 2 and kept.is_dir()


def test_atomic_write_fsyncs_before_the_rename_and_cleans_up_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    path.write_text("earlier")
    order = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (order.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (order.append("rename"), real_replace(a, b))[1])
    atomic_write(path, lambda p: p.write_text("new"))
    assert path.read_text() == "new" and order[:2] == ["fsync", "rename"]

    def half_then_fail(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_save_checkpoint_leaves_no_temporary_file_when_it_fails(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"earlier")

    def fail(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="I/O error"):
        save_checkpoint(path, nn.Linear(2, 2), "mlp", {})
    assert path.read_bytes() == b"earlier" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_output_dirs_remove_only_what_this_run_made_and_left_empty(tmp_path):
    from robustbench_w.paper.report import output_dirs

    made, mine, used = tmp_path / "made", tmp_path / "mine", tmp_path / "used"
    mine.mkdir()
    with pytest.raises(RuntimeError, match="training failed"), output_dirs([made, mine, used]) as dirs:
        assert all(d.is_dir() for d in dirs)
        (made / "models").mkdir()  # created, still empty: goes too
        (used / "results.csv").write_text("kept")
        raise RuntimeError("training failed")
    assert not made.exists() and mine.is_dir() and (used / "results.csv").read_text() == "kept"


def test_o_repeated_for_reproduce_copies_the_checkpoints(tmp_path):
    from robustbench_w.paper.report import copy_models

    first, second = tmp_path / "a", tmp_path / "b"
    (first / "models").mkdir(parents=True)
    second.mkdir()
    (first / "models" / "none.pt").write_bytes(b"weights")
    copy_models([first, second])
    assert (second / "models" / "none.pt").read_bytes() == b"weights"
