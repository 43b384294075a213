"""Training with projections: straight-through gradients, clipping, the projection switch, determinism,
the checkpoint it writes, and the CLI."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_w import load_model, sweep
from robustbench_w.distortions import DISTORTIONS, register_distortion
from robustbench_w.engine.weights.targets import select_targets
from robustbench_w.errors import InvalidValueError, WrobustError
from robustbench_w.load.architectures import ARCHS
from robustbench_w.load.archspec import build_arch
from robustbench_w.paper.train import (
    Projector,
    TrainConfig,
    deterministic,
    parse_rule,
    train,
    train_step,
)

FAST = dict(epochs=2, device="cpu")


def tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(8, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen)


def targets_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for _, p in select_targets(model)]


# ------------------------------------------------------------------ rules


def test_parse_rule_names_and_strengths():
    assert parse_rule("none").projection is None and parse_rule("none").clip is None
    clip = parse_rule("clip", clip=0.5)
    assert clip.projection is None and clip.clip == 0.5
    assert parse_rule("binarize").name == "sign"
    power = parse_rule("power:beta=0.5")
    assert power.name == "power:beta=0.5" and power.projection.fixed_strength == 0.5 and power.scale == "clip"
    own = parse_rule("sign:scale=max")
    assert own.own_scale and own.name == "sign:scale=max" and own.scale == "max"


@pytest.mark.parametrize("spec, message", [
    ("power", "needs its strength: --projection power:beta=VALUE"),
    ("stochm", "needs its strength"),
    ("clip:c=0.5", "takes no options"),
    ("sgn", "did you mean 'sign'"),
    ("power:beta=-1", "outside its valid range"),
])
def test_parse_rule_errors(spec, message):
    with pytest.raises(WrobustError, match=message):
        parse_rule(spec)


def test_bad_clip_bound():
    with pytest.raises(InvalidValueError, match="--clip"):
        parse_rule("sign", clip=0.0)


def test_projection_scale_is_the_clip_bound_unless_the_spec_names_one():
    w = torch.tensor([[0.3, -0.1, 0.2]])
    assert torch.equal(parse_rule("sign", clip=0.5).project(w), torch.tensor([[0.5, -0.5, 0.5]]))
    assert torch.allclose(parse_rule("sign:scale=max").project(w), torch.tensor([[0.3, -0.3, 0.3]]))
    assert torch.allclose(parse_rule("power:beta=0.5", clip=1.0).project(w), w.sign() * w.abs().sqrt())


# ------------------------------------------------------------------ the projection switch and the step


def test_projected_context_swaps_and_restores():
    model = tiny()
    proj = Projector(select_targets(model), parse_rule("sign"))
    before = targets_of(model)
    with proj.projected():
        for w in targets_of(model):
            assert set(w.unique().tolist()) <= {-1.0, 1.0}
    assert all(torch.equal(a, b) for a, b in zip(before, targets_of(model)))


def test_projected_context_restores_after_an_exception():
    model = tiny()
    proj = Projector(select_targets(model), parse_rule("stoch"))
    before = targets_of(model)
    with pytest.raises(RuntimeError, match="boom"):
        with proj.projected(torch.Generator().manual_seed(0)):
            assert not torch.equal(targets_of(model)[0], before[0])
            raise RuntimeError("boom")
    assert all(torch.equal(a, b) for a, b in zip(before, targets_of(model)))


def test_projected_context_restores_when_the_projection_itself_fails():
    with DISTORTIONS.isolated():
        @register_distortion("fails-on-second", formula="w", values="real", reference="test")
        def fails(w, strength, a, generator):
            if w.numel() == 18:  # the second tensor (6 x 3)
                raise RuntimeError("projection failed")
            return -w

        model = tiny()
        proj = Projector(select_targets(model), parse_rule("fails-on-second"))
        before = targets_of(model)
        with pytest.raises(RuntimeError, match="projection failed"):
            with proj.projected():
                pass
        assert all(torch.equal(a, b) for a, b in zip(before, targets_of(model)))


def test_straight_through_gradient_reaches_the_hidden_weights():
    model, twin = tiny(), tiny()
    x, y = batch()
    proj = Projector(select_targets(model), parse_rule("sign", clip=1.0))
    hidden = targets_of(model)
    # the gradient at the projected weights, computed on a twin that holds sign(w)
    with torch.no_grad():
        for (_, p), w in zip(select_targets(twin), hidden):
            p.copy_(torch.where(w >= 0, 1.0, -1.0))
    F.cross_entropy(twin(x), y).backward()
    expected_grads = [p.grad.clone() for _, p in select_targets(twin)]
    lr = 0.05
    train_step(model, proj, torch.optim.SGD(model.parameters(), lr=lr), x, y)
    for (_, p), w, g in zip(select_targets(model), hidden, expected_grads):
        assert torch.allclose(p.grad, g, atol=1e-6)  # dL/dw := dL/dP(w)
        assert torch.allclose(p.detach(), (w - lr * g).clamp(-1, 1), atol=1e-6)  # the hidden weights moved
        assert len(p.detach().unique()) > 2  # and are still full precision, not the projection


def test_random_projection_is_redrawn_every_step():
    model = tiny()
    proj = Projector(select_targets(model), parse_rule("stoch"))
    gen = torch.Generator().manual_seed(0)
    with proj.projected(gen):
        first = targets_of(model)
    with proj.projected(gen):
        second = targets_of(model)
    assert not torch.equal(first[0], second[0])


def test_clipping_holds_after_every_step(monkeypatch):
    import robustbench_w.paper.train as tr

    seen, original = [], tr.train_step

    def watched(model, projector, *args, **kwargs):
        loss = original(model, projector, *args, **kwargs)
        seen.append(max(float(p.detach().abs().max()) for _, p in projector.targets))
        return loss

    monkeypatch.setattr(tr, "train_step", watched)
    train(TrainConfig(projection="sign", clip=0.25, lr=0.5, **FAST))
    assert len(seen) > 10 and max(seen) <= 0.25
    assert min(seen) == pytest.approx(0.25)  # the bound is reached: clipping did something
    seen.clear()
    train(TrainConfig(projection="none", clip=0.25, lr=0.5, **FAST))
    assert max(seen) > 0.25  # rule none is not clipped


# ------------------------------------------------------------------ training runs, checkpoints


def test_training_is_deterministic_and_writes_a_checkpoint_every_command_loads(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    runs = [train(TrainConfig(projection="stoch", seed=3, **FAST)) for _ in range(2)]
    paths = [r.save(tmp_path / d / name) for r, d, name in zip(runs, "ab", ("m.pt", "other-name.pt"))]
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert paths[0].read_bytes() == paths[1].read_bytes()  # whatever the file is called
    other = train(TrainConfig(projection="stoch", seed=4, **FAST)).model.state_dict()
    assert not all(torch.equal(a[k], other[k]) for k in a)

    loaded = load_model(paths[0])
    rec = loaded.extra["train"]
    assert rec["rule"] == "stoch" and rec["seed"] == 3 and rec["clip"] == 1.0 and rec["scale"] == "clip"
    assert len(rec["loss"]) == len(rec["epoch_test_error"]) == 2
    assert rec["test_error"] == rec["epoch_test_error"][-1] and 0 <= rec["test_error_projected"] <= 1
    rows = sweep(paths[0], distortions=["sign"], trials=1, device="cpu")
    assert rows["error"].iloc[0] == pytest.approx(rec["test_error"])


def test_deterministic_context_restores_global_state():
    state = torch.random.get_rng_state()
    flag = torch.are_deterministic_algorithms_enabled()
    with deterministic(0, torch.device("cpu")):
        torch.rand(3)
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.are_deterministic_algorithms_enabled() == flag


def test_training_learns_and_uniform_init_fills_the_clip_range():
    result = train(TrainConfig(projection="sign", epochs=3, device="cpu"))
    rec = result.record
    assert rec["loss"][-1] < rec["loss"][0] and rec["test_error_projected"] < 0.5
    w = dict(result.model.named_parameters())["1.weight"].detach()
    assert w.abs().max() <= 1.0 and w.abs().mean() > 0.3  # hidden weights spread over [-1, 1]


def test_arch_kwargs_override_training_defaults():
    result = train(TrainConfig(arch_kwargs={"hidden": [16], "batch_norm_output": False}, epochs=1, device="cpu"))
    assert result.arch_kwargs == {"batch_norm": True, "batch_norm_output": False, "in_features": 64,
                                  "num_classes": 10, "hidden": [16]}


def test_config_errors():
    with pytest.raises(InvalidValueError, match="--optimizer"):
        train(TrainConfig(optimizer="rmsprop"))
    with pytest.raises(InvalidValueError, match="does not fit digits inputs"):
        train(TrainConfig(arch="resnet18", epochs=1, device="cpu"))
    with pytest.raises(InvalidValueError, match="-A depth: mlp has no option 'depth'"):
        train(TrainConfig(arch_kwargs={"depth": 3}, epochs=1, device="cpu"))


# ------------------------------------------------------------------ architectures


def test_builtin_architectures():
    assert {"mlp", "binaryconnect", "resnet18-cifar"} <= set(ARCHS.names())
    bc = build_arch("binaryconnect", width=0.0625, fc=32).eval()
    assert bc(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in bc.modules()) == 9  # after each layer
    assert len(select_targets(bc)) == 9
    small = build_arch("binaryconnect", in_channels=1, image_size=8, width=0.0625, fc=16).eval()
    assert small(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    rn = build_arch("resnet18-cifar", num_classes=7).eval()
    assert rn.conv1.kernel_size == (3, 3) and isinstance(rn.maxpool, nn.Identity)
    assert rn(torch.randn(1, 3, 16, 16)).shape == (1, 7)


# ------------------------------------------------------------------ CLI


def test_cli_train_then_sweep(tmp_path, run_cli):
    out = tmp_path / "s.pt"
    code, stdout, stderr = run_cli("train", "--projection", "stoch", "--epochs", "2", "--seed", "0", "-o", out)
    assert code == 0 and out.is_file()
    assert "test error" in stdout and "with the projection stoch" in stdout
    assert stderr == ""  # no progress bar in a pipe
    code, stdout, _ = run_cli("sweep", out, "-d", "sign", "--trials", "1")
    assert code == 0 and "sign" in stdout


def test_cli_quiet_prints_nothing(tmp_path, run_cli):
    code, stdout, stderr = run_cli("train", "--epochs", "1", "-q", "-o", tmp_path / "n.pt")
    assert (code, stdout, stderr) == (0, "", "")


@pytest.mark.parametrize("args, message", [
    (["--projection", "power"], "needs its strength"),
    (["--projection", "sgn"], "did you mean 'sign'"),
    (["--arch", "resnet18"], "does not fit"),
    (["-A", "hidden"], "expected KEY=VALUE"),
    (["--clip", "0"], "--clip"),
])
def test_cli_train_usage_errors(tmp_path, run_cli, args, message):
    code, stdout, stderr = run_cli("train", "--epochs", "1", *args, "-o", tmp_path / "x.pt")
    assert code == 2 and message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_cli_train_output_must_be_a_checkpoint(tmp_path, run_cli):
    code, _, stderr = run_cli("train", "-o", tmp_path / "x.csv")
    assert code == 2 and ".pt" in stderr


def test_cli_train_arch_option(tmp_path, run_cli):
    out = tmp_path / "m.pt"
    code, _, _ = run_cli("train", "--epochs", "1", "-A", "hidden=[32]", "-A", "batch_norm_output=false", "-o", out, "-q")
    assert code == 0
    assert math.isfinite(load_model(out).extra["train"]["test_error"])


def test_checkpoint_of_a_torchvision_architecture_loads(tmp_path):
    import torchvision

    from robustbench_w.load.checkpoints import save_checkpoint

    model = torchvision.models.resnet18(num_classes=4)
    save_checkpoint(tmp_path / "tv.pt", model, "resnet18", {"num_classes": 4}, input_shape=(3, 16, 16))
    loaded = load_model(tmp_path / "tv.pt")
    assert loaded.arch == "resnet18" and loaded.module.fc.out_features == 4
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.module.state_dict().items())


@pytest.mark.parametrize("schedule, first, last", [
    ("constant", 0.01, 0.01),
    ("cosine", 0.01, 0.01 * (1 + math.cos(math.pi * 3 / 4)) / 2),
    ("exp", 0.01, 0.01 * 1e-3),
])
def test_learning_rate_schedules(schedule, first, last):
    rec = train(TrainConfig(epochs=4, lr=0.01, schedule=schedule, device="cpu")).record
    assert len(rec["epoch_lr"]) == 4
    assert rec["epoch_lr"][0] == pytest.approx(first) and rec["epoch_lr"][-1] == pytest.approx(last)
    assert all(a >= b for a, b in zip(rec["epoch_lr"], rec["epoch_lr"][1:]))  # never rises


def test_default_recipe_decays_the_learning_rate():
    config = TrainConfig()
    assert (config.lr, config.schedule, config.epochs, config.batch_size) == (1e-2, "cosine", 40, 64)
    assert train(TrainConfig(epochs=1, schedule="exp", device="cpu")).record["epoch_lr"] == [1e-2]  # one epoch: no decay


def test_training_runs_on_a_fixed_number_of_cpu_threads(monkeypatch):
    import robustbench_w.paper.train as tr

    seen = []
    original = tr.run_epoch

    def watched(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(tr, "run_epoch", watched)
    torch.set_num_threads(2)
    rec = train(TrainConfig(epochs=1, device="cpu")).record
    assert seen == [1] and rec["threads"] == 1 and torch.get_num_threads() == 2  # restored afterwards
    with tr.cpu_threads(3):
        assert torch.get_num_threads() == 3
    with tr.cpu_threads(None):
        assert torch.get_num_threads() == 2
    with pytest.raises(InvalidValueError, match="--threads"):
        train(TrainConfig(epochs=1, threads=0, device="cpu"))
