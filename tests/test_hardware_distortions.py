"""The hardware distortions (pcm, stuckat), distortions' own options, and chains ``A+B``."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustbench_w.distortions import DISTORTIONS, get_distortion
from robustbench_w.distortions.pcm import NU_MU, NU_SIGMA, T0
from robustbench_w.errors import InvalidValueError, UnknownNameError

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def weights(draw, dtypes=(torch.float32, torch.float64, torch.bfloat16)):
    shape = draw(st.sampled_from([(7,), (4, 9), (3, 2, 3, 3), (16, 5)]))
    seed = draw(st.integers(0, 2**31 - 1))
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (w * draw(st.sampled_from([1e-3, 1.0, 30.0]))).to(draw(st.sampled_from(dtypes)))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", [n for n in DISTORTIONS.names() if DISTORTIONS.get(n).info.options])
def test_declared_option_defaults_are_the_arithmetic_defaults(name):
    definition = DISTORTIONS.get(name)
    params = inspect.signature(definition.fn).parameters
    for option in definition.info.options:
        assert params[option.name].default == option.default


# ----------------------------------------------------------------------------------------------- pcm

@SETTINGS
@given(w=weights(), t=st.sampled_from([1.0, 3600.0, 3.2e7]), seed=st.integers(0, 2**40),
       opts=st.sampled_from(["", ":compensate=none", ":granularity=channel", ":g_max=10,read=off"]))
def test_pcm_shape_dtype_determinism(w, t, seed, opts):
    dist = get_distortion("pcm" + opts)
    before = w.clone()
    first, second = dist(w, t, gen(seed)), dist(w, t, gen(seed))
    assert first.shape == w.shape and first.dtype == w.dtype and torch.equal(w, before)
    assert torch.equal(first, second) and torch.isfinite(first).all()


@SETTINGS
@given(w=weights(dtypes=(torch.float32, torch.float64)), t=st.sampled_from([1.0, 86400.0, 3.2e7]),
       comp=st.sampled_from(["global", "none"]))
def test_pcm_with_every_effect_off_is_the_identity(w, t, comp):
    dist = get_distortion(f"pcm:drift=off,read=off,prog=off,compensate={comp}")
    assert torch.equal(dist(w, t, gen(3)), w)


@SETTINGS
@given(w=weights(dtypes=(torch.float32, torch.float64)), t=st.sampled_from([1.0, 3.2e7]))
def test_pcm_keeps_signs_and_stays_near_the_scale(w, t):
    """Drift and read noise only shrink or spread each device of the pair; without programming noise a weight
    keeps its sign (or becomes 0) and, uncompensated, never grows beyond ``a`` by much."""
    out = get_distortion("pcm:prog=off,compensate=none")(w, t, gen(1))
    assert ((out * w) >= 0).all()
    a = w.abs().max()
    assert (out.abs() <= a * 2).all()


def test_pcm_drift_matches_the_closed_form_over_a_million_devices():
    """With drift only and ``x = 0.5``, ``nu ~ N(mu, s)`` (clipped values: mu 0.049, s 0.008; |.| is 6 s away)
    and ``g(t)/g(t0) = ((t + t0)/t0)^-nu`` is log-normal: mean ``exp(-mu L + s^2 L^2 / 2)``, variance
    ``(exp(s^2 L^2) - 1) exp(-2 mu L + s^2 L^2)`` with ``L = ln((t + t0)/t0)``."""
    x = 0.5
    mu = min(max(NU_MU[0] * math.log(x) + NU_MU[1], NU_MU[2]), NU_MU[3])
    s = min(max(NU_SIGMA[0] * math.log(x) + NU_SIGMA[1], NU_SIGMA[2]), NU_SIGMA[3])
    w = torch.full((1, 10**6), x, dtype=torch.float64)
    w[0, 0] = 1.0  # the scale a = 1: every other device is at x = 0.5
    dist = get_distortion("pcm:prog=off,read=off,compensate=none")
    for t in (3600.0, 3.2e7):
        ratio = dist(w, t, gen(7))[0, 1:] / x
        L = math.log((t + T0) / T0)
        mean = math.exp(-mu * L + s * s * L * L / 2)
        std = math.sqrt((math.exp(s * s * L * L) - 1) * math.exp(-2 * mu * L + s * s * L * L))
        assert ratio.mean().item() == pytest.approx(mean, abs=4 * std / 1e3)  # 4 standard errors
        assert ratio.std().item() == pytest.approx(std, rel=5e-3)


def test_pcm_error_grows_with_time_and_compensation_removes_the_mean_drift():
    w = torch.randn(256, 256, generator=gen(0))
    none, comp = get_distortion("pcm:compensate=none"), get_distortion("pcm")
    change = [((none(w, t, gen(1)) - w).norm() / w.norm()).item() for t in (1.0, 3600.0, 86400.0, 3.2e7)]
    assert change == sorted(change)
    at_year = comp(w, 3.2e7, gen(1))
    assert (at_year - w).norm() < (none(w, 3.2e7, gen(1)) - w).norm() / 2
    assert at_year.abs().mean().item() == pytest.approx(w.abs().mean().item(), rel=0.05)


def test_pcm_programming_noise_is_measured_in_microsiemens():
    """At x = 1 the programming spread is (0.26348 + 1.9650 - 1.1731) uS, i.e. 1.0554 / g_max of a; a wider
    window (g_max = 100) has a quarter of it. Read noise and drift off, compensation off."""
    w = torch.ones(1, 200_000, dtype=torch.float64)
    for g_max in (25.0, 100.0):
        out = get_distortion(f"pcm:read=off,drift=off,compensate=none,g_max={g_max:g}")(w, 1.0, gen(2))
        # the negative device (x = 0) is programmed to |N(0, 0.26348)|/g_max on average too: subtract its mean
        neg = 0.26348 / g_max * math.sqrt(2 / math.pi) / 2
        assert out.std().item() == pytest.approx(math.hypot(1.0554 / g_max, 0.26348 / g_max * 0.6), rel=0.1)
        assert out.mean().item() == pytest.approx(1.0 - neg, abs=2e-3)


def test_pcm_options_are_checked_and_canonical():
    assert get_distortion("pcm:compensate=global,g_max=25").spec == "pcm"
    assert get_distortion("PCM:Compensate=NONE,drift=off").spec == "pcm:compensate=none,drift=off"
    with pytest.raises(InvalidValueError, match="compensate must be one of global, none"):
        get_distortion("pcm:compensate=local")
    with pytest.raises(InvalidValueError, match="g_max="):
        get_distortion("pcm:g_max=-1")
    with pytest.raises(InvalidValueError, match="outside its valid range"):
        get_distortion("pcm")(torch.ones(3), 0.0)


# ------------------------------------------------------------------------------------------- stuckat

@SETTINGS
@given(w=weights(dtypes=(torch.float32, torch.float64)), p=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       value=st.sampled_from(["zero", "max", "random"]), seed=st.integers(0, 2**40))
def test_stuckat_values(w, p, value, seed):
    dist = get_distortion(f"stuckat:value={value}")
    out = dist(w, p, gen(seed))
    assert torch.equal(out, dist(w, p, gen(seed))) and out.dtype == w.dtype
    a = w.abs().max()
    stuck = out != w
    if value == "zero":
        assert (out[stuck] == 0).all()
    elif value == "max":
        assert torch.equal(out[stuck], torch.where(w[stuck] >= 0, a, -a))
    else:
        assert (out[stuck].abs() == a).all()
    if p == 0.0:
        assert torch.equal(out, w)


def test_stuckat_fraction_and_random_signs():
    w = torch.randn(400, 500, generator=gen(0))
    for value in ("zero", "max", "random"):
        out = get_distortion(f"stuckat:value={value}")(w, 0.1, gen(1))
        assert (out != w).float().mean().item() == pytest.approx(0.1, abs=0.003)
    out = get_distortion("stuckat:value=random")(w, 1.0, gen(2))
    assert (out > 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    assert ((out > 0) != (w > 0)).float().mean().item() == pytest.approx(0.5, abs=0.01)


# -------------------------------------------------------------------------------------------- chains

def test_chain_at_the_identity_of_its_last_part_is_the_other_parts():
    w = torch.randn(8, 9, generator=gen(0))
    chain = get_distortion("quantize:bits=4+noise")
    assert chain.spec == "quantize:bits=4+addnorm" and chain.info.strength == "sigma"
    assert torch.equal(chain(w, 0.0, gen(1)), get_distortion("quantize:bits=4")(w))
    assert not chain.is_identity(0.0) and not chain.is_random_at(0.0) and chain.is_random_at(0.1)
    assert chain.is_discrete_at(0.0) and not chain.is_discrete_at(0.1)
    noisy = get_distortion("quantize:bits=4")(w)
    expected = get_distortion("noise")(noisy, 0.1, gen(5))
    assert torch.equal(chain(w, 0.1, gen(5)), expected)


def test_chain_discreteness_and_identity_follow_the_parts():
    assert get_distortion("noise+quantize:bits=3").is_discrete_at(0.2)  # few values after a deterministic map
    assert get_distortion("noise:sigma=0+prune").is_identity(0.0)
    assert get_distortion("noise:sigma=0+prune").info.identity == 0.0
    assert get_distortion("sign+round").info.parameterless
    assert get_distortion("quantize:bits=4+pcm").strengths() == list(DISTORTIONS.get("pcm").info.grid)
    assert get_distortion("quantize:bits=4+pcm:t=60").with_strength(None).spec == "quantize:bits=4+pcm"
    assert get_distortion("pcm:t=1e+5").fixed_strength == 1e5  # an exponent's '+' does not split


@pytest.mark.parametrize("spec, error, match", [
    ("quantize:bits=4+nosie", UnknownNameError, r"part 2 of .* \('nosie'\).*did you mean 'noise'"),
    ("quantize:bit=4+noise", InvalidValueError, r"part 1 of .*'quantize:bit=4'.*unknown option 'bit'"),
    ("quantize+noise", InvalidValueError, r"part 1 .* \(quantize\) needs its bits in the spec"),
    ("noise++sign", InvalidValueError, "empty part"),
])
def test_chain_errors_name_the_part(spec, error, match):
    with pytest.raises(error, match=match):
        get_distortion(spec)
