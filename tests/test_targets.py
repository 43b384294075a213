"""The default targets are the weights that multiply an input, found by use on the probe batch; every report
states the coverage (docs/targets.md)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

import robustbench_w as rw
from robustbench_w.engine.weights.coverage import coverage, coverage_text
from robustbench_w.engine.weights.targets import choose_targets
from robustbench_w.load.uses import Uses, recording

NET = '''
import torch
from torch import nn
from torchvision.models import VisionTransformer


class Speaker(nn.Module):
    """An LSTM encoder and a linear head: the issue's speaker encoder, small."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 32, 2, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


def speaker():
    return Speaker()


def vit():
    return VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10)
'''


def _net(tmp_path, monkeypatch):
    (tmp_path / "wrobust_test_net.py").write_text(NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    import wrobust_test_net

    return wrobust_test_net


def speaker_model(net) -> nn.Module:
    """Recurrent weights in (-1, 1) and a zero head bias: the LSTM carries the output."""
    torch.manual_seed(0)
    model = net.Speaker()
    with torch.no_grad():
        for name, p in model.lstm.named_parameters():
            if "weight" in name:
                p.uniform_(-1, 1)
        model.head.bias.zero_()
    return model.eval()


class GRUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 16, 2, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])


class Custom(nn.Module):
    """Token embeddings, then ``x @ self.W``, then an ``einsum`` with ``self.V``; a layer norm and a scale."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.W = nn.Parameter(torch.randn(8, 12))
        self.V = nn.Parameter(torch.randn(12, 5))
        self.norm = nn.LayerNorm(12)
        self.scale = nn.Parameter(torch.ones(5))

    def forward(self, ids):
        h = self.norm(self.emb(ids).mean(1) @ self.W)
        return torch.einsum("bi,ij->bj", h, self.V) * self.scale


def _batches(x: torch.Tensor) -> list:
    return [(x[i:i + 8], None) for i in range(0, len(x), 8)]


def _meta(model: nn.Module, x: torch.Tensor) -> dict:
    rows = rw.sweep(model, _batches(x), ["sign"], trials=1, metric=["cosine"], device="cpu")
    return rows.attrs["meta"]


def _numel(model: nn.Module, names) -> int:
    params = dict(model.named_parameters())
    return sum(params[n].numel() for n in names)


def test_lstm_gru_vit_and_custom_targets_are_every_weight_that_multiplies_an_input(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = _net(tmp_path, monkeypatch)
    cases = [(net.Speaker(), torch.randn(16, 5, 8)), (GRUNet(), torch.randn(16, 5, 8)),
             (net.vit(), torch.randn(16, 3, 32, 32)), (Custom(), torch.randint(0, 20, (16, 6)))]
    for model, x in cases:
        meta = _meta(model, x)
        targets, names = set(meta["targets"]), [n for n, _ in model.named_parameters()]
        recurrent = [n for n in names if n.split(".")[-1].startswith(("weight_ih_l", "weight_hh_l"))]
        attention = [n for n in names if n.endswith(("in_proj_weight", "out_proj.weight"))]
        assert set(recurrent + attention) <= targets
        left = [n for n in names if "bias" in n or "ln" in n or "norm" in n or n.endswith(("class_token", "pos_embedding"))
                or n.startswith("emb.")]
        assert not targets & set(left), targets & set(left)
        cov = meta["coverage"]
        assert cov["rule"] == "use" and cov["tensors"] == len(targets)
        assert cov["weights"] == meta["target_weights"] == _numel(model, targets)
        assert cov["parameters"] == sum(p.numel() for p in model.parameters())
        assert set(cov["roles"]) == targets
    assert set(_meta(Custom(), torch.randint(0, 20, (16, 6)))["targets"]) == {"W", "V"}


def test_roles_of_the_vit_and_of_the_custom_module():
    vit = VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10).eval()
    with torch.inference_mode(), recording(vit) as uses:
        vit(torch.randn(2, 3, 32, 32))
    roles = choose_targets(vit, uses=uses).roles
    assert roles["conv_proj.weight"] == "conv" and roles["class_token"] == "embedding"
    assert roles["encoder.pos_embedding"] == "embedding" and roles["encoder.ln.weight"] == "norm"
    assert roles["encoder.layers.encoder_layer_0.self_attention.in_proj_weight"] == "attention"
    assert roles["encoder.layers.encoder_layer_0.self_attention.out_proj.weight"] == "attention"
    assert roles["encoder.layers.encoder_layer_1.mlp.0.weight"] == "linear"
    assert roles["encoder.layers.encoder_layer_1.self_attention.in_proj_bias"] == "bias"
    custom = Custom().eval()
    with torch.inference_mode(), recording(custom) as uses:
        custom(torch.randint(0, 20, (2, 6)))
    sel = choose_targets(custom, uses=uses)
    assert sel.roles == {"emb.weight": "embedding", "W": "matmul", "V": "matmul", "norm.weight": "norm",
                         "norm.bias": "bias", "scale": "other"}
    assert coverage_text(coverage(sel)) == ("distorted 2 tensors, 156 of 345 parameters (45.22%); clean: "
                                            "160 embedding weights, 12 norm weights, 12 biases, 5 other weights")


def test_gpt2_conv1d_is_linear_and_the_tied_table_an_embedding():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.inference_mode(), recording(model) as uses:
        model(input_ids=torch.randint(0, 50, (2, 5)))
    sel = choose_targets(model, uses=uses)
    assert sel.names == ["transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
                         "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight"]
    assert {sel.roles[n] for n in sel.names} == {"linear"}
    assert sel.roles["transformer.wte.weight"] == sel.roles["transformer.wpe.weight"] == "embedding"


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_a_torchscript_program_falls_back_to_module_types_and_says_so():
    model = torch.jit.script(GRUNet().eval())
    with recording(model) as uses:
        model(torch.randn(2, 5, 8))
    assert not uses.traced and "TorchScript" in uses.why
    sel = choose_targets(model, uses=uses)
    assert sel.names == ["gru.weight_ih_l0", "gru.weight_hh_l0", "gru.weight_ih_l1", "gru.weight_hh_l1", "head.weight"]
    assert "chosen by module type (a TorchScript program" in coverage_text(coverage(sel))


def test_a_parameter_the_pass_did_not_multiply_is_not_a_target():
    model = nn.ModuleDict({"used": nn.Linear(4, 4), "unused": nn.Linear(4, 4)})
    uses = Uses({"used.weight": "linear", "used.bias": "bias"})
    assert choose_targets(model, uses=uses).names == ["used.weight"]
    assert choose_targets(model).names == ["used.weight", "unused.weight"]  # no record: by module type


def _policy(tmp_path, include: str = "", exclude: str = "") -> object:
    text = (f'[gate]\ndataset = "synthetic"\nlimit = 48\ntrials = 3\nseed = 0\njudge = "mean"\n{include}{exclude}\n'
            '[[gate.require]]\ndistortion = "noise"\nstrength = 0.1\nmetric = "cosine"\nmin = 0.95\n')
    path = tmp_path / f"policy{len(include)}{len(exclude)}.toml"
    path.write_text(text)
    return path


def test_a_gate_that_linear_only_passes_fails_once_the_recurrent_weights_are_distorted(tmp_path, monkeypatch):
    from robustbench_w.gate.report import gate_markdown, junit_xml, verdict_line
    from robustbench_w.gate.verdict import run_gate

    model = speaker_model(_net(tmp_path, monkeypatch))
    linear_only = run_gate(model, _policy(tmp_path, include='include = ["head.weight"]\n'), device="cpu",
                           input_shape=(6, 8))
    assert linear_only.passed and linear_only.meta["targets"] == ["head.weight"]
    everything = run_gate(model, _policy(tmp_path), device="cpu", input_shape=(6, 8))
    assert not everything.passed
    assert everything.verdicts[0].checks[0].value < 0.95 < linear_only.verdicts[0].checks[0].value
    line = "distorted 5 tensors, 13,440 of 13,956 parameters (96.3%); clean: 516 biases"
    assert line in gate_markdown(everything)
    props = {p.get("name"): p.get("value") for p in junit_xml(everything).getroot().iter("property")}
    assert props["coverage"] == line and props["distorted_weights"] == "13440" and props["parameters"] == "13956"
    assert "warning" not in verdict_line(everything)


def test_a_low_coverage_selection_warns_in_the_sweep_and_in_the_gate_verdict(run_cli, tmp_path, monkeypatch):
    code, out, err = run_cli("sweep", "builtin:digits-mlp", "-d", "sign", "--exclude", "3.*", "--device", "cpu")
    assert code == 0, err
    warning = ("only 36.26% of the parameters outside embeddings are distorted (9,472 weights of 26,122); largest "
               "clean: 3.weight (16,384, linear, by --exclude); --exclude leaves out 3.weight")
    assert warning in " ".join(err.split()), err
    assert "distorted 2 tensors, 9,472 of 26,122 parameters (36.26%)" in " ".join(out.split())
    from robustbench_w.gate.report import verdict_line
    from robustbench_w.gate.verdict import run_gate

    model = speaker_model(_net(tmp_path, monkeypatch))
    result = run_gate(model, _policy(tmp_path, exclude='exclude = ["lstm.*"]\n'), device="cpu", input_shape=(6, 8))
    assert "warning: only 0.9172% of the parameters outside embeddings were distorted" in verdict_line(result)
    assert [w for w in result.warnings if "lstm.weight_hh_l1 (4,096, recurrent, by --exclude)" in w]


def test_wrobust_targets_lists_the_roles_and_selection_of_a_vit(run_cli, tmp_path, monkeypatch):
    net = _net(tmp_path, monkeypatch)
    torch.save(net.vit().state_dict(), tmp_path / "vit.pt")
    code, out, err = run_cli("targets", tmp_path / "vit.pt", "--arch", f"{tmp_path}/wrobust_test_net.py:vit",
                             "--dataset", "synthetic", "--input-shape", "3,32,32", "--exclude", "heads.*",
                             "-o", tmp_path / "t.csv", "-o", tmp_path / "t.json")
    assert code == 0, err
    lines = {line.split()[0]: line.split() for line in out.splitlines() if "│" in line}
    assert lines["class_token"][4:] == ["embedding", "│", "32", "│", "-", "│", "-"]
    in_proj = "encoder.layers.encoder_layer_0.self_attention.in_proj_weight"
    assert [c for c in lines[in_proj] if c != "│"][2:] == ["attention", "3,072", "yes", "yes"]
    assert [c for c in lines["heads.head.weight"] if c != "│"][2:] == ["linear", "320", "yes", "-"]
    assert "clean: " in out and "selected 9 tensors, " in out
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["coverage"]["tensors"] == 9 and {p["role"] for p in doc["parameters"]} == {
        "conv", "embedding", "attention", "linear", "norm", "bias"}
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "name,shape,role,weights,default,selected"


def test_bits_with_and_without_arch_count_the_same_tensors_of_an_lstm(run_cli, tmp_path, monkeypatch):
    net = _net(tmp_path, monkeypatch)
    torch.save(speaker_model(net).state_dict(), tmp_path / "lstm.pt")
    arch = ("--arch", f"{tmp_path}/wrobust_test_net.py:speaker")
    assert run_cli("bits", tmp_path / "lstm.pt", *arch, "-o", tmp_path / "a.json")[0] == 0
    code, out, err = run_cli("bits", tmp_path / "lstm.pt", "-o", tmp_path / "b.json")
    assert code == 0, err
    a, b = (json.loads((tmp_path / f"{k}.json").read_text()) for k in "ab")
    assert [r["name"] for r in a["layers"]] == [r["name"] for r in b["layers"]] == [
        "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l1", "lstm.weight_hh_l1", "head.weight"]
    assert a["total"]["weights"] == b["total"]["weights"]
    assert a["meta"]["targets_chosen_by"] == "module type" and b["meta"]["targets_chosen_by"] == "shape"
    assert "chosen by shape" in out and "look like embedding" not in out


def test_bits_on_a_bare_file_names_the_embedding_tables_it_counts(run_cli, tmp_path):
    model = nn.Sequential()
    model.add_module("embed_tokens", nn.Embedding(30, 8))
    model.add_module("proj", nn.Linear(8, 8))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    code, out, err = run_cli("bits", tmp_path / "m.pt")
    assert code == 0, err
    text = " ".join(out.split())
    assert ("1 chosen tensor looks like embedding tables (not targets with a module): embed_tokens.weight; "
            "--exclude embed_tokens.weight drops them") in text
    assert run_cli("bits", tmp_path / "m.pt", "--exclude", "embed_tokens.weight")[1].count("embed_tokens") == 0


def test_the_coverage_line_is_in_every_report_of_a_sweep_and_a_gate(run_cli, tmp_path):
    line = "distorted 3 tensors, 25,856 of 26,122 parameters (98.98%); clean: 266 biases"
    code, out, err = run_cli("sweep", "builtin:digits-mlp", "-d", "sign", "--device", "cpu",
                             "-o", tmp_path / "r.json", "-o", tmp_path / "r.md")
    assert code == 0, err
    assert line in " ".join(out.split()) and line in (tmp_path / "r.md").read_text()
    assert json.loads((tmp_path / "r.json").read_text())["meta"]["coverage"]["weights"] == 25856
    assert run_cli("report", tmp_path / "r.json", "-o", tmp_path / "r.html")[0] == 0
    assert line in (tmp_path / "r.html").read_text()
    (tmp_path / "p.toml").write_text('[gate]\ndataset = "digits"\n\n[[gate.require]]\ndistortion = "sign"\n'
                                     'max_error = 0.5\n')
    code, out, err = run_cli("gate", "builtin:digits-mlp", "--policy", tmp_path / "p.toml", "--device", "cpu",
                             "--summary", tmp_path / "s.md", "--junit", tmp_path / "j.xml")
    assert code == 0, err
    header = out.split("requirement")[0]  # the lines above the table
    assert line.split("; ")[0] in header and "clean: 266 biases" in header and line in (tmp_path / "s.md").read_text()
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "j.xml").getroot().iter("property")}
    assert props["coverage"] == line and props["targets_rule"] == "use"
