"""In-place forms of distortions and the engine's write path: the pure functions' bits, no new tensors, seeds."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from robustbench_w import sweep
from robustbench_w.datasets.base import EvalSet
from robustbench_w.distortions import DISTORTIONS, get_distortion, register_distortion
from robustbench_w.distortions.base import Range
from robustbench_w.distortions.scratch import Scratch
from robustbench_w.engine.weights.perturb import WeightPatch
from robustbench_w.engine.weights.targets import select_targets
from robustbench_w.errors import InvalidValueError

IN_PLACE = [n for n in DISTORTIONS.names() if DISTORTIONS.get(n).inplace is not None]
OPTIONS = ["", ":granularity=channel", ":scale=mean", ":scale=std,granularity=channel"]
INT_OF = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16}


def bits(t: torch.Tensor) -> torch.Tensor:
    """The bit patterns of a float tensor (so that -0.0 differs from 0.0 and NaNs compare)."""
    return t.contiguous().view(INT_OF[t.dtype])


def strengths(dist) -> list[float]:
    """The default grid and one value off it, for a distortion with a strength; ``nan`` for one without."""
    info = dist.info
    if info.parameterless:
        return [math.nan]
    extra = [s for s in (0.37, 3.0) if s in info.valid]
    return list(info.grid) + extra[:1]


def sample(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Weights with the awkward values in them: +0, -0, rounding ties of ``w / a``, the maximum itself."""
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    flat = w.view(-1)
    flat[:4] = torch.tensor([0.0, -0.0, 0.5 * float(w.abs().max()), -float(w.abs().max())], dtype=dtype)
    return w


def write_and_call(dist, w: torch.Tensor, s: float, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    ref = dist(w, s, torch.Generator().manual_seed(seed))
    out = torch.full_like(w, math.nan)  # the form must not read what the destination held
    dist.write(out, w, s, torch.Generator().manual_seed(seed), scratch=Scratch())
    return out, ref


def test_the_usual_distortions_have_an_in_place_form():
    assert {"addnorm", "multunif", "multnorm", "dropconnect", "stoch", "stochm", "sign", "round", "power",
            "ternarize", "clip", "quantize"} <= set(IN_PLACE)


@pytest.mark.parametrize("name", IN_PLACE)
@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_in_place_form_gives_the_pure_functions_bits(name, opts, dtype):
    dist = get_distortion(name + opts)
    for shape in [(6, 3, 3, 3), (5, 7), (40,)]:
        w = sample(shape, dtype)
        for s in strengths(dist):
            assert dist.can_write_in_place(torch.empty_like(w), w)
            out, ref = write_and_call(dist, w, s)
            assert torch.equal(bits(out), bits(ref)), f"{dist.spec} at {s} on {shape}"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(IN_PLACE), opts=st.sampled_from(OPTIONS), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([1e-6, 0.1, 1.0, 40.0]), pick=st.integers(0, 20))
def test_in_place_form_matches_on_any_weights_and_seed(name, opts, seed, scale, pick):
    dist = get_distortion(name + opts)
    s = strengths(dist)[pick % len(strengths(dist))]
    w = sample((4, 2, 3), torch.float32, seed) * scale
    out, ref = write_and_call(dist, w, s, seed)
    assert torch.equal(bits(out), bits(ref))


@pytest.mark.parametrize("name", ["addnorm", "sign", "prune", "bitflip"])
def test_write_falls_back_to_the_pure_function_where_it_must(name):
    dist = get_distortion(name)
    s = 0.3 if name != "bitflip" else 0.01
    s = math.nan if dist.info.parameterless else s
    cases = [sample((8, 5), torch.float16), sample((8, 5), torch.float32)]  # half precision; and no in-place form
    for w in cases:
        out, ref = write_and_call(dist, w, s)
        assert torch.equal(bits(out), bits(ref))
    w = sample((8, 5), torch.float32)
    out_t = torch.empty(5, 8).t()  # a non-contiguous destination
    dist.write(out_t, w, s, torch.Generator().manual_seed(7))
    assert not dist.can_write_in_place(out_t, w)
    assert torch.equal(bits(out_t), bits(dist(w, s, torch.Generator().manual_seed(7))))


def test_write_checks_the_strength_like_a_call():
    w, out = torch.randn(3, 4), torch.empty(3, 4)
    with pytest.raises(InvalidValueError, match="outside its valid range"):
        get_distortion("noise").write(out, w, -1.0)
    with pytest.raises(InvalidValueError, match="strength"):
        get_distortion("noise").write(out, w)
    get_distortion("noise").write(out, w, 0.0)  # identity: a copy
    assert torch.equal(out, w)


@pytest.mark.parametrize("sigma", [1e-9, 1e-4, 0.3])
def test_an_additive_form_returns_the_norm_of_its_change(sigma):
    dist, w = get_distortion("noise"), sample((300, 200), torch.float32) * 5
    out = torch.empty_like(w)
    change = dist.writer(out, w)(sigma, torch.Generator().manual_seed(1), Scratch())
    exact = float(torch.linalg.vector_norm(out.double() - w.double()))
    rounding = 2**-24 * float(torch.linalg.vector_norm(out.double()))  # the last addition's, at most
    assert abs(float(change) - exact) <= rounding + 1e-5 * exact
    assert get_distortion("multunif").writer(out, w)(0.5, torch.Generator(), Scratch()) is None


def test_scratch_reuses_one_buffer_per_slot_and_dtype():
    scratch = Scratch()
    a = scratch.like(torch.empty(10, 3))
    b = scratch.like(torch.empty(4, 2))
    assert b.data_ptr() == a.data_ptr() and b.shape == (4, 2)
    assert scratch.like(torch.empty(5), slot=1).data_ptr() != a.data_ptr()
    assert scratch.like(torch.empty(5), torch.bool).dtype == torch.bool
    assert scratch.like(torch.empty(100)).numel() == 100 and scratch.nbytes == 100 * 4 + 5 * 4 + 5


# ---- the engine's write path ---------------------------------------------------------------------------------

def two_layers() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 6, 3), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))


@pytest.mark.parametrize("name", DISTORTIONS.names())
def test_engine_writes_what_the_pure_path_computes(name):
    model = two_layers()
    patch = WeightPatch(select_targets(model))
    dist = get_distortion(name)
    s = math.nan if dist.info.parameterless else strengths(dist)[len(dist.info.grid) // 2]
    expected = dict(patch.distorted(dist, s, seed=3, trial=1))
    with patch.applied(dist, s, seed=3, trial=1) as applied:
        params = dict(model.named_parameters())
        for pname, value in expected.items():
            assert torch.equal(bits(params[pname].detach()), bits(value))
    norms = [torch.linalg.vector_norm(value - patch.pristine[n]) for n, value in expected.items()]
    change = torch.stack(norms).double().square().sum().sqrt() / patch.norm
    assert float(applied.weight_change) == pytest.approx(float(change), rel=1e-12, nan_ok=True)
    for pname, w in patch.pristine.items():
        assert torch.equal(dict(model.named_parameters())[pname], w)


@pytest.mark.parametrize("name", IN_PLACE)
def test_write_path_allocates_no_tensor_of_a_weights_size(name):
    from torch.profiler import ProfilerActivity, profile

    model = nn.Sequential(nn.Linear(200, 300), nn.Linear(300, 100))
    patch = WeightPatch(select_targets(model))
    dist = get_distortion(name)
    s = math.nan if dist.info.parameterless else [g for g in strengths(dist) if not dist.is_identity(g)][-1]
    patch.write(dist, s)  # the first point sizes the scratch buffers
    patch.restore()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        patch.write(dist, s, trial=1)
        patch.restore()
    allocated = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0]
    assert max(allocated, default=0) < 100 * 300 * 4 // 10  # well under the smallest target (120 kB)


def test_identity_point_writes_nothing_and_changes_nothing():
    model = two_layers()
    patch = WeightPatch(select_targets(model))
    with patch.applied(get_distortion("noise"), 0.0) as applied:
        assert float(applied.weight_change) == 0.0
        for name, p in patch.targets:
            assert torch.equal(p, patch.pristine[name])


def tiny_data() -> EvalSet:
    """Inputs labelled by the clean model itself (so the clean model is not at chance level)."""
    x = torch.randn(40, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = two_layers()(x).argmax(1)
    return EvalSet("tiny", x, y, 5)


def test_a_fixed_strength_in_the_spec_draws_the_same_noise_as_strengths():
    fixed = sweep(two_layers(), tiny_data(), ["noise:sigma=0.2"], trials=2, device="cpu")
    given_s = sweep(two_layers(), tiny_data(), ["noise"], [0.2], trials=2, device="cpu")
    cols = ["strength", "trial", "error", "loss", "agreement", "weight_change"]
    assert fixed[cols].equals(given_s[cols])


def test_draws_are_independent_across_layers_trials_and_strengths():
    model = nn.Sequential(nn.Linear(8, 8, bias=False), nn.Linear(8, 8, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(model[0].weight)
    patch = WeightPatch(select_targets(model))
    dist, draws = get_distortion("noise"), []
    for s, trial in [(0.1, 0), (0.1, 1), (0.2, 0)]:
        with patch.applied(dist, s, seed=5, trial=trial):
            draws += [(p - patch.pristine[n]) / s for n, p in patch.targets]  # the unit noise of each layer
    for i in range(len(draws)):
        for j in range(i):
            assert not torch.allclose(draws[i], draws[j], atol=1e-3)
    with patch.applied(dist, 0.1, seed=5, trial=1):
        again = [(p - patch.pristine[n]) / 0.1 for n, p in patch.targets]
    assert all(torch.equal(a, b) for a, b in zip(again, draws[2:4]))


def test_a_third_party_distortion_without_an_in_place_form_still_sweeps():
    with DISTORTIONS.isolated():
        @register_distortion("halve", formula="w / 2", values="real", reference="test", strength="f",
                             valid=Range(0, 1), grid=(0.5,))
        def halve(w, f, a, gen):
            return w * f

        rows = sweep(two_layers(), tiny_data(), ["halve"], device="cpu")
    assert rows[rows.distortion == "halve"].weight_change.iloc[0] == pytest.approx(0.5, rel=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_form_gives_the_pure_functions_bits_on_a_gpu(name):
    dist = get_distortion(name)
    w = sample((64, 3, 3, 3), torch.float32).cuda()
    for s in strengths(dist):
        ref = dist(w, s, torch.Generator(device="cuda").manual_seed(7))
        out = torch.full_like(w, math.nan)
        dist.write(out, w, s, torch.Generator(device="cuda").manual_seed(7), scratch=Scratch())
        assert torch.equal(bits(out), bits(ref)), f"{name} at {s}"
