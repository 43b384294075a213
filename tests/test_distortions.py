"""Property tests for every registered distortion, parametrised over the registry itself."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustbench_w.distortions import (
    DISTORTIONS,
    get_distortion,
    list_distortions,
    register_distortion,
)
from robustbench_w.distortions.base import Range, rows_of
from robustbench_w.errors import InvalidValueError, UnknownNameError

NAMES = DISTORTIONS.names()
PAPER = ["none", "sign", "round", "power", "stoch", "stochm", "addnorm", "multunif"]
FIELD = ["multnorm", "quantize", "ternarize", "clip", "prune", "dropconnect", "bitflip"]
ALIASES = {"noise": "addnorm", "additive": "addnorm", "binarize": "sign", "multiplicative": "multnorm"}
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def weights(draw, dtypes=(torch.float32, torch.float64, torch.float16, torch.bfloat16)):
    shape = draw(st.sampled_from([(7,), (4, 9), (3, 2, 3, 3), (1, 1), (16, 5)]))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from([1e-3, 0.1, 1.0, 30.0]))
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    return w.to(dtype)


def some_strength(info):
    if info.strength is None:
        return math.nan
    finite = [g for g in info.grid if g != info.identity and math.isfinite(g)]
    return finite[len(finite) // 2] if finite else info.grid[0]


def options():
    return st.sampled_from(["", ":scale=mean", ":scale=std", ":granularity=channel"])


def test_registry_has_every_distortion_and_alias():
    assert set(PAPER + FIELD) <= set(NAMES)
    for alias, target in ALIASES.items():
        assert get_distortion(alias).name == target


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_complete_and_consistent(name):
    info = DISTORTIONS.get(name).info
    assert info.name == name and info.formula and info.values and info.reference
    if info.strength is None:
        assert info.grid == () and info.identity is None
    else:
        assert info.grid, "a distortion with a strength needs a default grid"
        assert all(g in info.valid for g in info.grid)
        assert info.identity is None or info.identity in info.valid
    if info.discrete:
        assert info.value_bound(some_strength(info)) is not None


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(w=weights(), opts=options())
def test_shape_dtype_and_device_kept_and_input_untouched(name, w, opts):
    dist = get_distortion(name + opts)
    before = w.clone()
    out = dist(w, some_strength(dist.info), torch.Generator().manual_seed(0))
    assert out.shape == w.shape and out.dtype == w.dtype and out.device == w.device
    assert torch.equal(w, before)


@pytest.mark.parametrize("name", [n for n in NAMES if DISTORTIONS.get(n).info.identity is not None or n == "none"])
@SETTINGS
@given(w=weights(dtypes=(torch.float32, torch.float64)), opts=options())
def test_identity_at_identity_strength(name, w, opts):
    dist = get_distortion(name + opts)
    ident = dist.info.identity if dist.info.identity is not None else math.nan
    assert torch.equal(dist(w, ident, torch.Generator().manual_seed(1)), w)
    # the arithmetic itself, not only the contract's shortcut, is the identity there
    rows = rows_of(w, dist.granularity)
    raw = dist.definition.fn(rows, ident, dist.scale_of(w), torch.Generator().manual_seed(1))
    torch.testing.assert_close(raw.reshape(w.shape), w, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", [n for n in NAMES if DISTORTIONS.get(n).info.discrete])
@SETTINGS
@given(w=weights(dtypes=(torch.float32, torch.float64)), data=st.data())
def test_values_in_the_stated_set(name, w, data):
    info = DISTORTIONS.get(name).info
    strength = math.nan if info.strength is None else data.draw(st.sampled_from(info.grid))
    bound = info.value_bound(strength)
    for opts in ("", ":granularity=channel"):
        dist = get_distortion(name + opts)
        out = dist(w, strength, torch.Generator().manual_seed(2))
        rows = out.reshape(out.shape[0], -1) if opts and w.dim() >= 2 else out.reshape(1, -1)
        a = dist.scale_of(w).to(out.dtype)
        for row, scale in zip(rows, a):
            assert row.unique().numel() <= bound
            assert (row.abs() <= scale * (1 + 1e-6)).all(), "values must lie in [-a, a]"


@SETTINGS
@given(w=weights(dtypes=(torch.float32,)))
def test_sign_gives_exactly_plus_minus_a(w):
    out = get_distortion("sign")(w)
    a = w.abs().max()
    assert set(out.unique().tolist()) <= {a.item(), -a.item()}


@pytest.mark.parametrize("name", [n for n in NAMES if DISTORTIONS.get(n).info.random])
@SETTINGS
@given(w=weights(dtypes=(torch.float32, torch.float64)), seed=st.integers(0, 2**40))
def test_same_seed_same_output(name, w, seed):
    dist = get_distortion(name)
    s = some_strength(dist.info)
    first = dist(w, s, torch.Generator().manual_seed(seed))
    second = dist(w, s, torch.Generator().manual_seed(seed))
    assert torch.equal(first.view(torch.uint8) if first.dtype != torch.bool else first,
                       second.view(torch.uint8) if second.dtype != torch.bool else second)


@pytest.mark.parametrize("name", [n for n in NAMES if DISTORTIONS.get(n).info.random])
def test_other_seed_other_output(name):
    dist = get_distortion(name)
    w = torch.randn(64, 64, dtype=torch.float64)
    s = 0.5 if name == "bitflip" else some_strength(dist.info)
    a = dist(w, s, torch.Generator().manual_seed(0))
    b = dist(w, s, torch.Generator().manual_seed(1))
    assert not torch.equal(a.view(torch.int64), b.view(torch.int64))


@pytest.mark.parametrize("name", [n for n in NAMES if not DISTORTIONS.get(n).info.random])
def test_deterministic_distortions_ignore_the_generator(name):
    dist = get_distortion(name)
    w = torch.randn(8, 8)
    s = some_strength(dist.info)
    assert torch.equal(dist(w, s, torch.Generator().manual_seed(0)), dist(w, s, torch.Generator().manual_seed(9)))


# ----------------------------------------------------------------------- formulas at known points

def test_formulas_on_a_known_tensor():
    w = torch.tensor([[-2.0, -0.5, 0.0, 0.25, 1.0]])
    a = 2.0
    assert get_distortion("sign")(w).tolist() == [[-a, -a, a, a, a]]
    assert get_distortion("round")(w).tolist() == [[-a, 0.0, 0.0, 0.0, 0.0]]
    assert get_distortion("power")(w, 0.5)[0].tolist() == pytest.approx([-2.0, -1.0, 0.0, 2 * 0.125**0.5, 2 * 0.5**0.5])
    assert get_distortion("ternarize")(w, 0.4).tolist() == [[-a, 0.0, 0.0, 0.0, a]]
    assert get_distortion("clip")(w, 0.5).tolist() == [[-1.0, -0.5, 0.0, 0.25, 1.0]]
    assert get_distortion("quantize")(w, 3)[0].tolist() == pytest.approx([-2.0, -2 / 3, 0.0, 0.0, 4 / 3])  # 1.5 rounds to 2 (half to even)
    assert get_distortion("prune")(w, 0.4).tolist() == [[-2.0, -0.5, 0.0, 0.0, 1.0]]


def test_stoch_is_unbiased_and_addnorm_has_the_stated_std():
    w = torch.full((1, 200_000), 0.5)
    w[0, 0] = 1.0  # a = 1
    gen = torch.Generator().manual_seed(0)
    assert get_distortion("stoch")(w, generator=gen).mean().item() == pytest.approx(0.5, abs=0.01)
    noisy = get_distortion("noise")(w, 0.2, torch.Generator().manual_seed(0))
    assert (noisy - w).std().item() == pytest.approx(0.2, rel=0.02)
    mult = get_distortion("multunif")(w, 0.5, torch.Generator().manual_seed(0)) / w
    assert mult.min().item() >= 0.5 and mult.max().item() <= 2.0


def test_stochm_keeps_the_sign_in_expectation_for_negative_weights():
    w = torch.full((1, 100_000), -0.5)
    w[0, 0] = -1.0
    out = get_distortion("stochm")(w, 0.5, torch.Generator().manual_seed(0))
    assert out.mean().item() < 0


def test_bitflip_flips_the_expected_number_of_bits():
    w = torch.randn(10_000)
    for p in (1e-3, 0.05):  # the sparse and the dense path
        out = get_distortion("bitflip")(w, p, torch.Generator().manual_seed(0))
        flipped = (w.view(torch.int32) ^ out.view(torch.int32))
        count = sum(((flipped >> b) & 1).sum().item() for b in range(32))
        expected = p * 32 * w.numel()
        assert abs(count - expected) < 5 * math.sqrt(expected)


def test_channel_granularity_uses_a_scale_per_output_channel():
    w = torch.tensor([[1.0, -0.5], [10.0, 5.0]])
    assert get_distortion("sign:granularity=channel")(w).tolist() == [[1.0, -1.0], [10.0, 10.0]]
    assert get_distortion("sign")(w).tolist() == [[10.0, -10.0], [10.0, 10.0]]


# ----------------------------------------------------------------------- specs and errors

def test_spec_options_and_fixed_strength():
    d = get_distortion("Power:Beta=0.5,scale=mean")
    assert (d.name, d.scale, d.fixed_strength, d.spec) == ("power", "mean", 0.5, "power:scale=mean,beta=0.5")
    assert d.strengths() == [0.5]
    assert get_distortion("noise").strengths([0.1]) == [0.1]


@pytest.mark.parametrize("spec,match", [
    ("nosie", "did you mean 'noise'"),
    ("power:beta=-1", r"outside its valid range \[0, inf\)"),
    ("power:gamma=1", "unknown option 'gamma'"),
    ("power:beta", "expected KEY=VALUE"),
    ("noise:scale=median", "scale must be one of max, mean, std"),
    ("quantize:bits=3.5", r"\[2, 16\] \(integers\)"),
    ("multunif:gamma=0", r"\(0, 1\]"),
])
def test_bad_specs_raise_user_errors(spec, match):
    with pytest.raises((InvalidValueError, UnknownNameError), match=match):
        get_distortion(spec)


def test_strength_is_required_and_checked_at_call_time():
    w = torch.randn(3, 3)
    with pytest.raises(InvalidValueError, match="strength"):
        get_distortion("noise")(w)
    with pytest.raises(InvalidValueError, match="valid range"):
        get_distortion("prune")(w, 1.5)


def test_third_party_registration_round_trip():
    with DISTORTIONS.isolated():
        @register_distortion("negate", formula="-w", values="real", reference="test", strength="k",
                             valid=Range(0, 1), grid=(0.0, 1.0), identity=0.0)
        def negate(w, k, a, gen):
            return w * (1 - 2 * k)

        assert get_distortion("negate")(torch.ones(2), 1.0).tolist() == [-1.0, -1.0]
        assert "negate" in [i.name for i in list_distortions()]
    assert "negate" not in DISTORTIONS
