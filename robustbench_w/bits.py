"""Effective bits per weight: the Shannon entropy of the values of each weight tensor (SPEC section 2).

For one tensor with distinct values ``v`` occurring with frequencies ``p_v``::

    H = -sum_v p_v * log2(p_v)                       bits per weight

and for a model, the count-weighted mean over the targeted tensors (total bits / total weights)::

    H_model = sum_k n_k * H_k / sum_k n_k

A binarized tensor has at most 1 bit; a ternary tensor with many zeros has less (Merolla et al. 2016,
arXiv:1606.01981: "11% CIFAR-10 error at 0.68 effective bits per weight").

A tensor with more than ``max_distinct`` distinct values (default 2^16) is *continuous*: it has no finite
entropy, so its entropy is computed after uniform quantisation to ``2^B`` levels over ``[-a, a]``
(``B = resolution``, ``a = max|w|`` of the tensor) and labelled with that resolution, never silently.

For additive Gaussian noise (``addnorm``) the capacity of a Gaussian channel,
``0.5 * log2(1 + var(w) / (sigma * a)^2)``, is offered as a separate, labelled estimate.

NaN and Inf are not values: they are left out of the counts (``weights`` counts the finite values; a
``nonfinite`` column and a note say how many were left out), and a model with non-finite weights is
reported in one warning line before anything is measured. A plain state dict or safetensors file needs no
architecture here: its targets are then chosen by shape (``engine.targets.select_tensors``), and the output
says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from .distortions import Distortion, get_distortion
from .engine.health import Health, nonfinite_counts, warn_if_broken
from .engine.perturb import WeightPatch
from .engine.targets import select_targets, select_tensors
from .errors import InvalidValueError

DEFAULT_RESOLUTION = 8
MAX_RESOLUTION = 24
DEFAULT_MAX_DISTINCT = 1 << 16
SAMPLE = (1 << 16) + 1  # elements sampled to find the candidate values (and to detect continuous tensors)
FEW = 4  # up to this many candidate values are counted by comparison, beyond by binary search
CHUNK = 1 << 22  # elements per step when counting quantisation levels (bounds the temporary memory)
COLUMNS = ["name", "shape", "weights", "distinct", "bits_per_weight", "resolution", "storage_bits", "compression"]


@dataclass(frozen=True)
class TensorBits:
    """The entropy of one tensor: ``bits`` per weight over ``distinct`` values (occupied levels when
    ``resolution`` is set: the tensor was continuous and quantised to ``2^resolution`` levels first)."""

    weights: int
    distinct: int
    bits: float
    resolution: int | None = None


# ------------------------------------------------------------------ entropy of one tensor

def entropy(counts: torch.Tensor) -> float:
    """``H = -sum p log2 p`` in bits, with ``p = counts / counts.sum()``; zero counts contribute nothing."""
    c = counts.to(torch.float64)
    c = c[c > 0]
    if c.numel() <= 1:
        return 0.0
    p = c / c.sum()
    return max(0.0, float(-(p * torch.log2(p)).sum()))


def tensor_bits(w: torch.Tensor, resolution: int = DEFAULT_RESOLUTION,
                max_distinct: int | None = DEFAULT_MAX_DISTINCT) -> TensorBits:
    """Entropy of the values of ``w``: exact over its distinct values when there are at most
    ``max_distinct`` of them (``None``: always exact), else over ``2^resolution`` levels on ``[-a, a]``."""
    x = _flat(w)
    counts = value_counts(x, max_distinct)
    if counts is not None:
        return TensorBits(x.numel(), int((counts > 0).sum()), entropy(counts))
    counts = grid_counts(x, resolution)
    return TensorBits(x.numel(), int((counts > 0).sum()), entropy(counts), resolution)


def value_counts(x: torch.Tensor, max_distinct: int | None = None) -> torch.Tensor | None:
    """How often each distinct value of the flat tensor ``x`` occurs (all NaNs count as one value), or
    ``None`` when there are more than ``max_distinct`` distinct values.

    A strided sample of ``2 * max_distinct`` elements gives the candidate values (and shows most continuous
    tensors at once); the whole tensor is then counted against them (one comparison pass per value for a few
    values, a binary search otherwise), and only the values the sample missed are sorted."""
    limit = math.inf if max_distinct is None else max_distinct
    size = SAMPLE if max_distinct is None else max(SAMPLE, 2 * min(max_distinct, 1 << 20) + 1)
    if x.numel() <= size:
        return _unique_counts(x, limit)
    sample = _unique_counts(x[:: x.numel() // size][:size], limit, values=True)
    if sample is None:
        return None  # the sample alone has too many values
    counts = _count_candidates(x, sample[~torch.isnan(sample)])
    return counts if len(counts) <= limit else None


def _unique_counts(x: torch.Tensor, limit: float = math.inf, values: bool = False) -> torch.Tensor | None:
    """Counts (or the sorted values) of the distinct values of ``x`` by a full sort; NaNs merged."""
    v, c = torch.unique(x, return_counts=True)
    nan = torch.isnan(v)
    if bool(nan.any()):
        v, c = v[~nan], torch.cat([c[~nan], c[nan].sum().reshape(1)])
        v = torch.cat([v, v.new_full((1,), math.nan)])
    if len(c) > limit:
        return None
    return v if values else c


def _count_candidates(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Counts of the sorted values ``v`` in ``x``, followed by those of the values of ``x`` not in ``v``."""
    if 0 < len(v) <= FEW:
        counts = torch.stack([torch.count_nonzero(torch.eq(x, value)) for value in v])
        if int(counts.sum()) == x.numel():
            return counts
    if len(v) == 0:
        return _unique_counts(x)
    idx = torch.searchsorted(v, x).clamp_(max=len(v) - 1)
    miss = v[idx] != x
    counts = torch.bincount(idx.masked_fill_(miss, len(v)), minlength=len(v) + 1)
    if int(counts[-1]) == 0:
        return counts[:-1]
    return torch.cat([counts[:-1], _unique_counts(x[miss])])


def grid_counts(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Counts over a uniform grid of ``L = 2^resolution`` levels on ``[-a, a]``, ``a = max|x|`` over the
    finite values: level ``k = round((x / a + 1) * (L - 1) / 2)``; infinities saturate at the end levels and
    NaNs get a level of their own."""
    levels = 1 << resolution
    lo, hi = torch.aminmax(x) if x.numel() else (x.new_zeros(()), x.new_zeros(()))
    finite = math.isfinite(float(lo)) and math.isfinite(float(hi))
    a = max(-float(lo), float(hi))
    if not finite:
        kept = x[torch.isfinite(x)]
        a = float(kept.abs().amax()) if kept.numel() else 0.0
    step = (levels - 1) / (2 * a) if a > 0 else 0.0
    codes = torch.uint8 if finite and levels <= 256 else torch.int16 if levels < 32767 else torch.int32
    counts = torch.zeros(levels + 1, dtype=torch.long, device=x.device)
    middle = x.new_tensor((levels - 1) / 2)
    for chunk in x.split(CHUNK):
        y = torch.add(middle, chunk, alpha=step).round_()  # one pass: middle + step * chunk
        if not finite:
            y = y.clamp_(0, levels - 1).nan_to_num_(levels)
        counts += torch.bincount(y.to(codes), minlength=levels + 1)
    return counts


def _flat(w: torch.Tensor) -> torch.Tensor:
    """A flat, contiguous view of ``w`` in a dtype every kernel supports (half types widen exactly)."""
    x = w.detach().reshape(-1)
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def model_bits(layers: Iterable[TensorBits]) -> float:
    """The model figure: ``sum n_k H_k / sum n_k`` (total bits / total weights)."""
    layers = list(layers)
    total = sum(t.weights for t in layers)
    return sum(t.bits * t.weights for t in layers) / total if total else math.nan


def discrete_bits(tensors: Iterable[torch.Tensor]) -> float:
    """Exact effective bits of discrete tensors (no resolution limit): the sweep's ``eff_bits``."""
    return model_bits(tensor_bits(t, max_distinct=None) for t in tensors)


def gaussian_channel_bits(w: torch.Tensor, a: torch.Tensor, sigma: float) -> float:
    """Gaussian channel estimate ``0.5 * log2(1 + var(w) / (sigma * a)^2)`` per scale group (rows of ``a``),
    averaged over the groups; infinite at ``sigma = 0``. An estimate, not an entropy."""
    rows = w.detach().double().reshape(a.shape[0], -1)
    noise = (sigma * a.double().reshape(-1)) ** 2
    ratio = rows.var(dim=1, unbiased=False) / noise
    return float((0.5 * torch.log2(1 + ratio)).mean())


# Channel estimates by distortion name: (pristine tensor, its scale, strength) -> bits per weight.
CHANNEL_ESTIMATES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], float]] = {"addnorm": gaussian_channel_bits}
CHANNEL_COLUMN = "channel_estimate_bits"


# ------------------------------------------------------------------ the model figure

def effective_bits(model: str | nn.Module, distortion: str | Distortion | None = None, strength: float | None = None,
                   *, seed: int = 0, resolution: int = DEFAULT_RESOLUTION, include: Iterable[str] = (),
                   exclude: Iterable[str] = (), max_distinct: int | None = DEFAULT_MAX_DISTINCT,
                   **load_options) -> pd.DataFrame:
    """Effective bits per weight of each targeted tensor of ``model``, optionally after ``distortion``.

    One row per tensor: ``name, shape, weights, distinct, bits_per_weight, resolution, storage_bits,
    compression`` (``resolution`` is ``None`` where the values were discrete, else the grid they were
    quantised to; ``compression = storage_bits / bits_per_weight``), plus ``channel_estimate_bits`` for
    ``addnorm``. ``.attrs["total"]`` holds ``weights, bits_per_weight`` (``sum n_k H_k / sum n_k``),
    ``resolution, kib_entropy, kib_float32``; ``.attrs["meta"]`` says what was measured. The distorted
    weights are those of sweep trial 0 with the same ``seed``; the model is not changed. Other keyword
    options go to the model loader (``arch``, ``num_classes``, ``device``, ...); data options are ignored.
    """
    started = time.perf_counter()
    resolution = check_resolution(resolution)
    dist, strength = resolve_distortion(distortion, strength)
    loaded, by_shape = _load(model, load_options)  # by_shape: a bare state dict, no module
    targets = select_tensors(loaded.tensors, include, exclude) if by_shape else select_targets(loaded.module, include, exclude)
    health = Health(nonfinite_counts(targets))
    warn_if_broken(health, "non-finite values are left out of the counts")
    rows = [_row(name, w, resolution, max_distinct) for name, w in _weights(targets, dist, strength, seed)]
    frame = pd.DataFrame(rows, columns=COLUMNS + (["nonfinite"] if any(r["nonfinite"] for r in rows) else []))
    frame["resolution"] = pd.Series([r["resolution"] for r in rows], dtype=object)
    estimate = CHANNEL_ESTIMATES.get(dist.name) if dist is not None else None
    if estimate is not None:
        frame[CHANNEL_COLUMN] = [estimate(p.detach(), dist.scale_of(p.detach()), strength) for _, p in targets]
    frame.attrs["total"] = totals(frame)
    frame.attrs["meta"] = {**_meta(loaded, dist, strength, seed, resolution, max_distinct, frame,
                                   time.perf_counter() - started), **health.to_meta(),
                           "targets_chosen_by": "shape" if by_shape else "layer type",
                           "notes": _notes(loaded, by_shape, frame)}
    return frame


def _notes(loaded, by_shape: bool, frame: pd.DataFrame) -> list[str]:
    """What the reader of the figures must know: how the targets were chosen, values left out, loading notes."""
    notes = list(getattr(loaded, "notes", []))
    if by_shape:
        notes.append(f"no --arch: the targets are the floating-point tensors with 2 or more dimensions (matrix and "
                     f"convolution weights) of {loaded.name}, chosen by shape and named by their keys")
    if "nonfinite" in frame:
        bad = frame[frame["nonfinite"] > 0]
        count = int(bad["nonfinite"].sum())
        notes.append(f"{count:,} non-finite value{'s' * (count != 1)} (NaN/Inf) in {len(bad)} tensor(s) left out of the "
                     f"counts: 'weights' counts the finite values")
    return notes


def check_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 1 <= resolution <= MAX_RESOLUTION:
        raise InvalidValueError(f"--resolution must be a whole number of bits from 1 to {MAX_RESOLUTION}, not {resolution!r}")
    return resolution


def resolve_distortion(distortion: str | Distortion | None, strength: float | None) -> tuple[Distortion | None, float]:
    """The distortion and the strength to apply: ``strength`` if given, else the spec's own
    (``power:beta=0.5``); a distortion that takes a strength and has neither is an error."""
    if distortion is None:
        if strength is not None:
            raise InvalidValueError("--strength needs a distortion (-d SPEC)")
        return None, math.nan
    dist = get_distortion(distortion)
    info = dist.info
    if info.parameterless:
        if strength is not None:
            raise dist.no_strength(f"--strength {strength:g}")
        return dist, math.nan
    value = float(strength) if strength is not None else dist.fixed_strength
    if value is None:
        example = info.grid[len(info.grid) // 2] if info.grid else 1.0
        raise InvalidValueError(f"{dist.name} needs a strength: pass --strength X ({info.strength} in {info.valid}) "
                                f"or put it in the spec ({dist.name}:{info.strength}={example:g})")
    dist.check_strength(value)
    return dist, value


def _load(model, load_options: dict) -> tuple[object, bool]:
    """``(a loaded model, False)``; a module given directly is used where it is (not moved, not put in eval
    mode). A plain state dict without ``--arch`` gives ``(its tensors alone, True)``: a ``TensorsOnly``."""
    from .load.checkpoints import LoadedModel, NeedsArchitecture, file_sha256
    from .load.device import resolve_device
    from .load.inputs import as_loaded, split_options

    if isinstance(model, LoadedModel):
        return model, False
    if isinstance(model, nn.Module):
        return LoadedModel(module=model, name=type(model).__name__), False
    model_options, _ = split_options(load_options)
    try:
        return as_loaded(model, resolve_device(load_options.get("device") or "cpu"), **model_options), False
    except NeedsArchitecture as exc:  # effective bits need only the tensors
        exc.file.sha256 = file_sha256(exc.file.path)
        return exc.file, True


def _weights(targets: list[tuple[str, torch.Tensor]], dist: Distortion | None, strength: float,
             seed: int) -> Iterator[tuple[str, torch.Tensor]]:
    if dist is None:
        return ((name, p.detach()) for name, p in targets)
    return WeightPatch(targets).distorted(dist, strength, seed, trial=0)


def _row(name: str, w: torch.Tensor, resolution: int, max_distinct: int | None) -> dict:
    finite = torch.isfinite(w)
    bad = int(finite.numel() - finite.sum())  # NaN and Inf are not values: left out of the counts
    t = tensor_bits(w[finite] if bad else w, resolution, max_distinct)
    storage = w.element_size() * 8
    return {"name": name, "shape": tuple(w.shape), "weights": t.weights, "distinct": t.distinct,
            "bits_per_weight": t.bits, "resolution": t.resolution, "storage_bits": storage,
            "compression": storage / t.bits if t.bits > 0 else math.inf, "nonfinite": bad}


def totals(frame: pd.DataFrame) -> dict:
    """The total row: weights, count-weighted bits per weight, and the sizes in KiB."""
    n = int(frame["weights"].sum())
    bits = float((frame["bits_per_weight"] * frame["weights"]).sum() / n) if n else math.nan
    grids = [r for r in frame["resolution"] if r is not None]
    total = {"weights": n, "bits_per_weight": bits, "resolution": max(grids) if grids else None,
             "kib_entropy": bits * n / 8 / 1024, "kib_float32": n * 4 / 1024}
    if CHANNEL_COLUMN in frame:
        total[CHANNEL_COLUMN] = float((frame[CHANNEL_COLUMN] * frame["weights"]).sum() / n)
    return total


def _meta(loaded, dist: Distortion | None, strength: float, seed: int, resolution: int,
          max_distinct: int | None, frame: pd.DataFrame, elapsed: float) -> dict:
    import platform
    import sys

    from . import __version__

    command = ["wrobust", *sys.argv[1:]] if sys.argv[0].endswith("wrobust") else sys.argv
    return {
        "package": "robustbench_w", "version": __version__, "torch": torch.__version__,
        "python": platform.python_version(), "command": " ".join(command), "model": loaded.name,
        "model_sha256": loaded.sha256, "distortion": dist.with_strength(None).spec if dist else None,
        "strength_name": dist.info.strength if dist else None, "random": bool(dist and dist.is_random_at(strength)),
        "strength": None if math.isnan(strength) else strength, "seed": seed, "trial": 0,
        "resolution": resolution, "max_distinct": max_distinct, "targets": len(frame),
        "elapsed_s": round(elapsed, 3),
    }


def bits_document(frame: pd.DataFrame) -> dict:
    """The ``-o bits.json`` document: ``{"meta", "layers": [{name, shape, weights, distinct,
    bits_per_weight, resolution}, ...], "total": {weights, bits_per_weight, ...}}``."""
    keys = ["name", "shape", "weights", "distinct", "bits_per_weight", "resolution"]
    keys += [CHANNEL_COLUMN] if CHANNEL_COLUMN in frame else []
    layers = [{k: (list(r[k]) if k == "shape" else r[k]) for k in keys} for r in frame.to_dict(orient="records")]
    return {"meta": frame.attrs.get("meta", {}), "layers": layers, "total": frame.attrs["total"]}


# ------------------------------------------------------------------ error vs. bits

LOWEST_COLUMNS = ["spec", "distortion", "strength_name", "strength", "eff_bits", "error_mean", "met"]


def lowest_bits(summary: pd.DataFrame, max_error: float) -> pd.DataFrame:
    """Per distortion spec with effective bits (the discrete ones), the summary point with the fewest
    ``eff_bits`` whose ``error_mean <= max_error`` (ties: the lower error), with ``met=True``. Where no point
    meets it, the point of lowest error instead, with ``met=False``."""
    if "eff_bits" not in summary:
        return pd.DataFrame(columns=LOWEST_COLUMNS)
    out = []
    for _, g in summary[summary["eff_bits"].notna()].groupby("spec", sort=False):
        ok = g[g["error_mean"] <= max_error]
        met = len(ok) > 0
        order = ["eff_bits", "error_mean"] if met else ["error_mean", "eff_bits"]
        pick = (ok if met else g).sort_values(order, kind="stable").iloc[0]
        out.append({**{c: pick[c] for c in LOWEST_COLUMNS[:-1]}, "met": met})
    return pd.DataFrame(out, columns=LOWEST_COLUMNS)


def frontier(summary: pd.DataFrame) -> pd.DataFrame:
    """The error-vs-bits Pareto frontier over every summary point with effective bits: the points that no
    other point beats on both (fewer or equal bits and lower error), by increasing bits."""
    if "eff_bits" not in summary:
        return summary.iloc[0:0]
    points = summary[summary["eff_bits"].notna() & summary["error_mean"].notna()]
    points = points.sort_values(["eff_bits", "error_mean"], kind="stable")
    best = points["error_mean"].cummin().shift(fill_value=math.inf)
    return points[points["error_mean"] < best]
