"""Phase-change memory (PCM): programming noise, conductance drift and read noise, with drift compensation.

The statistical PCM model of Nandakumar et al. (2019) and Joshi et al. (2020), as IBM's aihwkit implements it
in ``PCMLikeNoiseModel`` (``aihwkit/inference/noise/pcm.py``) with ``GlobalDriftCompensation``
(``aihwkit/inference/compensation/drift.py``). Our own code, in normalised conductances ``x = g / g_max``.

**Mapping** (aihwkit's ``SinglePairConductanceConverter``): each weight is a differential pair of devices,
``x+ = max(w, 0) / a`` and ``x- = max(-w, 0) / a`` (``a`` the scale of the row, ``max|w|`` by default, mapped
to ``g_max``; ``g_min = 0``), read back as ``w' = a (x+ - x-)``. Both devices of a pair get their own noise.

**Programming noise** (``prog``): ``x_p = max(x + sigma_p(x) / g_max * N(0, 1), 0)`` with
``sigma_p(x) = c0 + c1 x + c2 x^2`` in uS, ``(c0, c1, c2) = (0.26348, 1.9650, -1.1731)`` (aihwkit's default
``prog_coeff``, fitted at ``g_max = 25 uS``; Nandakumar et al. 2019). At the default ``g_max = 25`` this is
aihwkit's default model exactly; another ``g_max`` keeps the measured spread in uS (as aihwkit does for
coefficients given with ``prog_coeff_g_max_reference = g_max``), so a wider window gives relatively less noise.

**Drift** (``drift``): ``x_d = x_p ((t + t0) / t0)^(-nu)``, ``t`` the time since programming completed (the
strength, seconds), ``t0 = 20 s`` (aihwkit's ``t_0``, the first read after programming; ``t`` counts from it as
aihwkit's ``t_inference`` does, so the drift law ``g(T) = g(t0) (T / t0)^(-nu)`` holds at ``T = t + t0``).
``nu = |N(mu_nu(x), sigma_nu(x))|`` per device, drawn from the target ``x``:
``mu_nu = clip(-0.0155 ln x + 0.0244, 0.049, 0.1)``, ``sigma_nu = clip(-0.0125 ln x - 0.0059, 0.008, 0.045)``,
``x`` clipped below at ``1e-7`` (aihwkit's ``generate_drift_coefficients``; Joshi et al. 2020, Methods).

**Read noise** (``read``, 1/f noise accumulated up to the read): ``x_r = max(x_d + |x_d| sigma_r N(0, 1), 0)``,
``sigma_r = Q_s sqrt(ln((T + t_read) / (2 t_read)))``, ``Q_s = min(0.0088 / max(x_p^0.65, 1e-3), 0.2)``,
``t_read = 250 ns`` (aihwkit's ``t_read``; Nandakumar et al. 2019).

**Global drift compensation** (``compensate=global``, the default): the layer's outputs are multiplied by one
scalar ``alpha = readout(W_p) / readout(W_t)``, read through the layer at ``t0`` (after programming) and at
``t`` with a fixed calibration input. aihwkit's ``GlobalDriftCompensation`` feeds the one-hot vectors (the
identity matrix) and reads the mean absolute output, so ``readout(W) = mean|W|`` over the layer's whole
tensor: computable from the weights alone, and applied here to the weights (``w' = alpha a (x+_r - x-_r)``),
which for a layer whose output is linear in its weight is the same as scaling its output. (aihwkit's first
releases fed one all-ones vector and read the largest absolute output instead.)

References: S. R. Nandakumar et al., "Phase-change memory models for deep learning training and inference",
ICECS 2019; V. Joshi et al., "Accurate deep neural network inference using computational phase-change memory",
Nat. Commun. 11, 2473 (2020); M. J. Rasch et al., "A flexible and fast PyTorch toolkit for simulating training
and inference on analog crossbar arrays" (aihwkit), AICAS 2021.
"""

from __future__ import annotations

import math

from ..registry import LazyModule
from .base import Option, Range
from .catalog import register_distortion

torch = LazyModule("torch")  # imported at the first tensor operation, not at registration

PROG_COEFF = (0.26348, 1.9650, -1.1731)  # uS at g_max = 25 uS (aihwkit prog_coeff; Nandakumar et al. 2019)
G_MAX = 25.0  # uS (aihwkit's default g_max)
T0 = 20.0  # s (aihwkit t_0)
T_READ = 250e-9  # s (aihwkit t_read)
NU_MU = (-0.0155, 0.0244, 0.049, 0.1)  # mu_nu = clip(k ln x + c, lo, hi) (aihwkit; Joshi et al. 2020)
NU_SIGMA = (-0.0125, -0.0059, 0.008, 0.045)  # sigma_nu = clip(k ln x + c, lo, hi)
X_FLOOR = 1e-7  # x clipped below before its logarithm (aihwkit _ZERO_CLIP)
Q_S = (0.0088, 0.65, 1e-3, 0.2)  # Q_s = min(q / max(x^e, lo), hi)
ON_OFF = ("on", "off")
REFERENCE = ("Nandakumar et al. 2019 (ICECS); Joshi et al. 2020, Nat. Commun. 11:2473; "
             "as IBM aihwkit's PCMLikeNoiseModel and GlobalDriftCompensation document it")


def drift_factor(t: float, nu: torch.Tensor) -> torch.Tensor:
    """``g(t + t0) / g(t0) = ((t + t0) / t0)^(-nu)``."""
    return torch.exp(-nu * math.log((t + T0) / T0))


def drift_exponents(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``nu = |N(mu_nu(x), sigma_nu(x))|`` per device, from its target conductance ``x = g / g_max``."""
    log_x = torch.log(x.clamp(min=X_FLOOR))
    mu = (NU_MU[0] * log_x + NU_MU[1]).clamp_(NU_MU[2], NU_MU[3])
    sigma = (NU_SIGMA[0] * log_x + NU_SIGMA[1]).clamp_(NU_SIGMA[2], NU_SIGMA[3])
    return (mu + sigma * _normal(x, generator)).abs_()


def programmed(x: torch.Tensor, g_max: float, generator: torch.Generator | None) -> torch.Tensor:
    """``max(x + sigma_p(x) / g_max * N(0, 1), 0)``: the conductances after programming."""
    sigma = PROG_COEFF[0] + x * (PROG_COEFF[1] + x * PROG_COEFF[2])
    return (x + sigma / g_max * _normal(x, generator)).clamp_(min=0.0)


def read_noisy(x_d: torch.Tensor, x_p: torch.Tensor, t: float, generator: torch.Generator | None) -> torch.Tensor:
    """``max(x_d + |x_d| Q_s(x_p) sqrt(ln((t + t0 + t_read) / (2 t_read))) N(0, 1), 0)``."""
    q_s = (Q_S[0] / x_p.pow(Q_S[1]).clamp(min=Q_S[2])).clamp_(max=Q_S[3])
    spread = math.sqrt(math.log((t + T0 + T_READ) / (2 * T_READ)))
    return (x_d + x_d.abs() * (q_s * spread) * _normal(x_d, generator)).clamp_(min=0.0)


def _normal(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


@register_distortion(
    "pcm", family="hardware",
    formula="a (x+ - x-) after programming noise, drift ((t + t0)/t0)^-nu and read noise, x = g/g_max; "
            "global drift compensation by mean|w| at t0 over mean|w| at t",
    values="real", strength="t", valid=Range(0.0, math.inf, low_open=True, high_open=True),
    grid=(1.0, 60.0, 3600.0, 86400.0, 2.6e6, 3.2e7), random=True, reference=REFERENCE,
    options=(
        Option("compensate", "global", ("global", "none"), help="one output scale per layer (aihwkit global)"),
        Option("g_max", G_MAX, valid=Range(0.0, math.inf, low_open=True, high_open=True),
               help="conductance window in uS (programming noise is measured in uS)"),
        Option("prog", "on", ON_OFF, help="programming noise"),
        Option("read", "on", ON_OFF, help="read (1/f) noise"),
        Option("drift", "on", ON_OFF, help="conductance drift"),
    ),
)
def pcm(w: torch.Tensor, t: float, a: torch.Tensor, generator: torch.Generator | None, compensate: str = "global",
        g_max: float = G_MAX, prog: str = "on", read: str = "on", drift: str = "on") -> torch.Tensor:
    """PCM weights read ``t`` seconds after programming (see the module docstring for the model)."""
    if (prog, read, drift) == ("off", "off", "off"):
        return w.clone()
    x = torch.stack([w.clamp(min=0.0), (-w).clamp(min=0.0)]) / a  # the differential pair, (2, rows, n)
    x_p = programmed(x, g_max, generator) if prog == "on" else x
    x_t = x_p * drift_factor(t, drift_exponents(x, generator)) if drift == "on" else x_p
    if read == "on":
        x_t = read_noisy(x_t, x_p, t, generator)
    out = (x_t[0] - x_t[1]) * a
    if compensate == "global":
        out.mul_(compensation(((x_p[0] - x_p[1]) * a).abs().mean(), out.abs().mean()))
    return out


def compensation(at_t0: torch.Tensor, at_t: torch.Tensor) -> torch.Tensor:
    """aihwkit's global drift compensation ``alpha = readout(t0) / readout(t)`` (1 where nothing is read at t)."""
    return torch.where(at_t > 0, at_t0 / at_t.clamp(min=torch.finfo(at_t.dtype).tiny), torch.ones_like(at_t))
