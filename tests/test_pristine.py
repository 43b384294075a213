"""--pristine device|host|none: where the clean weights live changes the memory, never the rows; half-precision
models are distorted in float32 arithmetic and restored bit for bit."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_w.distortions import get_distortion
from robustbench_w.engine.runs.sweep import sweep
from robustbench_w.engine.weights.perturb import WeightPatch
from robustbench_w.engine.weights.pristine import HostPatch, LayerwisePatch, make_patch
from robustbench_w.engine.weights.seeding import point_generator
from robustbench_w.errors import InvalidValueError

pytestmark = pytest.mark.filterwarnings("ignore:the clean model is at chance level")

SPECS = ["noise", "sign", "quantize"]
COLUMNS = ["distortion", "strength", "trial", "n", "error", "loss", "agreement", "weight_change", "nonfinite"]


def rows_by_mode(model, data, **kw) -> dict[str, pd.DataFrame]:
    out = {}
    for mode in ("device", "host", "none"):
        frame = sweep(model, data, SPECS, trials=2, device="cpu", pristine=mode, **kw)
        assert frame.attrs["meta"]["pristine"] == ("none" if mode == "none" else "device")  # host on a CPU: device
        out[mode] = frame
    return out


def assert_same_rows(frames: dict[str, pd.DataFrame]) -> None:
    ref = frames["device"]
    cols = [c for c in ref.columns if c in COLUMNS or c.endswith("_bits") or c == "perplexity"]
    measured = "perplexity" if "perplexity" in ref else "loss"
    assert ref["weight_change"].max() > 0 and ref[measured].nunique() > 3  # the points did distort
    for mode, frame in frames.items():
        pd.testing.assert_frame_equal(frame[cols], ref[cols], check_exact=True, obj=f"--pristine {mode}")


def test_digits_mlp_rows_identical_in_every_mode():
    assert_same_rows(rows_by_mode("builtin:digits-mlp", "digits", strengths=None))


def test_resnet18_rows_identical_in_every_mode():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    gen = torch.Generator().manual_seed(1)
    data = [(torch.randn(6, 3, 32, 32, generator=gen), torch.randint(0, 10, (6,), generator=gen))]
    frames = {}
    for mode in ("device", "host", "none"):
        frames[mode] = sweep(model, data, ["noise", "sign", "quantize:bits=4"], trials=1, device="cpu",
                             pristine=mode, batch_size=6)
    ref = frames["device"]
    assert ref["loss"].nunique() > 2
    for frame in frames.values():
        pd.testing.assert_frame_equal(frame[COLUMNS], ref[COLUMNS], check_exact=True)


def test_tiny_gpt2_rows_identical_in_every_mode(gpt2_folder):
    text = gpt2_folder.parent / "eval.txt"
    assert_same_rows(rows_by_mode(f"hf:{gpt2_folder}", f"text:{text}", limit=8, strengths=None))


class Twice(nn.Module):
    """One linear layer called twice per forward (shared weights), and a second one."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.shared, self.out = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.shared(torch.tanh(self.shared(x)))))


class Outside(nn.Module):
    """A parent that multiplies by its child's weight itself (the child never runs)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(8, 3)

    def forward(self, x):
        return x @ self.proj.weight.T


def small_data():
    gen = torch.Generator().manual_seed(2)
    return [(torch.randn(32, 8, generator=gen), torch.randint(0, 3, (32,), generator=gen))]


def test_a_module_called_twice_gets_the_same_distortion_at_every_call():
    frames = {m: sweep(Twice(), small_data(), ["noise"], strengths=[0.3], trials=3, device="cpu", pristine=m)
              for m in ("device", "none")}
    assert frames["device"]["loss"].nunique() > 2
    pd.testing.assert_frame_equal(frames["none"][COLUMNS], frames["device"][COLUMNS], check_exact=True)


def test_a_weight_used_outside_its_module_is_refused_naming_it():
    with pytest.raises(InvalidValueError, match=r"proj\.weight \(module Linear\).*--pristine device or host"):
        sweep(Outside(), small_data(), ["noise"], strengths=[0.3], trials=1, device="cpu", pristine="none")


def test_layer_at_a_time_restores_after_an_exception_in_the_pass():
    model = Twice()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    patch = LayerwisePatch([("shared.weight", model.shared.weight)], model)
    with pytest.raises(RuntimeError), patch.applied(get_distortion("noise"), 0.5, seed=1):
        model.shared.register_forward_hook(lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
        model(torch.randn(2, 8))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.shared._forward_pre_hooks  # the patch's hooks are gone


def test_host_staging_gives_the_device_patch_values_and_restores():
    model = Twice()
    targets = [("shared.weight", model.shared.weight), ("out.weight", model.out.weight)]
    clean = [p.detach().clone() for _, p in targets]
    dist = get_distortion("quantize:bits=3")
    host, device = HostPatch(targets), WeightPatch(targets)
    for patch in (host, device):
        change = patch.write(get_distortion("noise"), 0.2, seed=4)
        written = [p.detach().clone() for _, p in targets]
        patch.restore()
        assert all(torch.equal(p, c) for (_, p), c in zip(targets, clean))
        if patch is host:
            host_written, host_change = written, change
    assert host_change == change and all(torch.equal(a, b) for a, b in zip(host_written, written))
    assert host.write(dist, 3.0) == device.write(dist, 3.0)
    assert host.pristine["out.weight"].device.type == "cpu" and make_patch(targets, model, "host").mode == "device"


class Half(nn.Module):
    """A small MLP whose weights are in ``dtype`` (inputs cast to it)."""

    def __init__(self, dtype):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(16, 32), nn.Linear(32, 4)
        self.to(dtype)

    def forward(self, x):
        return self.b(torch.relu(self.a(x.to(self.a.weight.dtype)))).float()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode", ["device", "none"])
def test_half_precision_sweep_runs_float32_arithmetic_and_restores_bit_exact(dtype, mode):
    model = Half(dtype)
    names = ["a.weight", "b.weight"]
    clean = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = {}
    for n in names:  # the values each layer really ran with (the last pass is the distorted point's)
        module = getattr(model, n[0])
        module.register_forward_hook(lambda m, a, o, n=n: seen.__setitem__(n, m.weight.detach().clone()))
    gen = torch.Generator().manual_seed(3)
    data = [(torch.randn(64, 16, generator=gen), torch.randint(0, 4, (64,), generator=gen))]
    rows = sweep(model, data, ["noise"], strengths=[0.2], trials=1, device="cpu", pristine=mode, batch_size=64)
    for n, p in model.named_parameters():
        assert torch.equal(p, clean[n]) and p.dtype == dtype  # restored bit for bit
    dist = get_distortion("noise")
    diff2, norm2 = 0.0, 0.0
    for n in names:
        w = clean[n].float()
        ref = dist(w, 0.2, point_generator(0, dist, 0.2, 0, n, "cpu"), scale=dist.scale_of(w))  # float32 reference
        assert torch.equal(seen[n], ref.to(dtype))
        diff2 += float(((ref.to(dtype).float() - w) ** 2).sum())
        norm2 += float((w ** 2).sum())
    point = rows[rows["strength"] == 0.2].iloc[0]
    assert point["weight_change"] == pytest.approx((diff2 / norm2) ** 0.5, rel=1e-5)


def test_half_precision_quantize_bits_are_counted_on_the_written_values():
    rows = {m: sweep(Half(torch.bfloat16), small_data_16(), ["quantize:bits=3"], trials=1, device="cpu",
                     pristine=m, batch_size=32) for m in ("device", "none")}
    assert rows["device"]["eff_bits"].iloc[1] <= 3
    pd.testing.assert_frame_equal(rows["none"][COLUMNS + ["eff_bits"]], rows["device"][COLUMNS + ["eff_bits"]])


def small_data_16():
    gen = torch.Generator().manual_seed(2)
    return [(torch.randn(32, 16, generator=gen), torch.randint(0, 4, (32,), generator=gen))]


def test_data_on_host_streams_the_set_and_gives_the_same_rows():
    rows = {on: sweep("builtin:digits-mlp", "digits", ["noise"], strengths=[0.3], trials=2, device="cpu",
                      data_on=on, pristine="none") for on in ("device", "host")}
    assert rows["host"].attrs["meta"]["inputs"] == "stream" and rows["device"].attrs["meta"]["inputs"] == "prepared"
    pd.testing.assert_frame_equal(rows["host"][COLUMNS], rows["device"][COLUMNS], check_exact=True)


def test_cli_takes_pristine_and_data_on(run_cli, tmp_path):
    out = tmp_path / "r.csv"
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "-d", "sign", "--pristine", "none", "--data-on", "host",
                           "-q", "-o", out)
    assert code == 0, err
    rows = pd.read_csv(out)
    assert len(rows) == 2 and rows["error"].iloc[1] > rows["error"].iloc[0]
    code, _, err = run_cli("sweep", "builtin:digits-mlp", "--data-on", "gpu")
    assert code == 2 and "--data-on" in err


def test_gate_takes_pristine_and_data_on_from_the_command_line_and_the_policy(run_cli, tmp_path):
    import json

    docs = {}
    for name, extra, key in (("device", (), ""), ("cli", ("--pristine", "none"), ""),
                             ("policy", (), 'pristine = "none"\ndata_on = "host"\n')):
        policy, out = tmp_path / f"{name}.toml", tmp_path / f"{name}.json"
        policy.write_text(f'[gate]\ndataset = "digits"\ntrials = 2\n{key}[[gate.require]]\ndistortion = "noise"\n'
                          f'strength = 0.3\nmax_error = 0.9\n')
        code, _, err = run_cli("gate", "builtin:digits-mlp", "--policy", policy, "-q", "-o", out, *extra)
        assert code == 0, err
        docs[name] = json.loads(out.read_text())
    assert docs["cli"]["meta"]["pristine"] == "none" and docs["policy"]["meta"]["inputs"] == "stream"
    assert docs["device"]["meta"]["pristine"] == "device"
    strip = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in docs["device"]["rows"]]
    for name in ("cli", "policy"):
        assert [{k: v for k, v in r.items() if k != "elapsed_s"} for r in docs[name]["rows"]] == strip


def test_redraw_batch_needs_a_pristine_copy():
    with pytest.raises(InvalidValueError, match="--redraw batch .* use --pristine device or host"):
        sweep("builtin:digits-mlp", "digits", ["noise"], strengths=[0.3], trials=1, device="cpu", pristine="none",
              redraw="batch")
    rows = sweep("builtin:digits-mlp", "digits", ["noise"], strengths=[0.3], trials=1, device="cpu", pristine="host",
                 redraw="batch")
    assert rows["error"].iloc[1] > rows["error"].iloc[0]


def test_converters_give_the_same_rows_layer_at_a_time():
    from robustbench_w.engine.passes.converters import ConverterSpec

    rows = {m: sweep("builtin:digits-mlp", "digits", ["noise", "sign"], strengths=[0.3], trials=2, device="cpu",
                     pristine=m, converters=ConverterSpec(dac=4, adc=4, out_noise=0.05)) for m in ("device", "none")}
    assert rows["device"]["error"].nunique() > 2
    pd.testing.assert_frame_equal(rows["none"][COLUMNS], rows["device"][COLUMNS], check_exact=True)
