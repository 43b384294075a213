"""The model figure: effective bits per weight of every targeted tensor of a model, as a table (``wrobust bits``).

One row per tensor (:func:`.tensor.tensor_bits` of its weights, after a distortion when one is given), the
count-weighted total ``sum n_k H_k / sum n_k``, what was measured (``meta``), and the ``bits.json`` document.

NaN and Inf are not values: they are left out of the counts (``weights`` counts the finite values; a
``nonfinite`` column and a note say how many were left out), and a model with non-finite weights is
reported in one warning line before anything is measured. A plain state dict or safetensors file needs no
architecture here: its targets are then chosen by shape (``engine.weights.targets.choose_tensors``), and the output
says so in its header, naming the chosen tensors that look like embedding tables (with the ``--exclude`` that drops
them). With a module the targets are a sweep's (``engine.weights.targets.choose_targets``): the weights that
multiply an input, recorded on a zero batch of the checkpoint's input shape where it records one and the model is in
eval mode (no forward pass changes it), else by module type. ``meta.coverage`` is the coverage of the selection.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator

import pandas as pd
import torch
from torch import nn

from ..distortions import Distortion, get_distortion
from ..engine.weights.health import Health, nonfinite_counts, warn_if_broken
from ..engine.weights.perturb import WeightPatch
from ..engine.weights.coverage import coverage, coverage_text, shape_notes
from ..engine.weights.targets import Selection, choose_targets, choose_tensors
from ..errors import InvalidValueError
from ..load.uses import Uses, recording
from .counting import GRID_SPAN
from .defaults import MAX_RESOLUTION
from .tensor import (
    CHANNEL_COLUMN,
    CHANNEL_ESTIMATES,
    DEFAULT_MAX_DISTINCT,
    DEFAULT_RESOLUTION,
    scale_bits,
    tensor_bits,
)

COLUMNS = ["name", "shape", "weights", "groups", "distinct", "bits_per_weight", "scale_bits", "resolution",
           "storage_bits", "compression"]


def effective_bits(model: str | nn.Module, distortion: str | Distortion | None = None, strength: float | None = None,
                   *, seed: int = 0, resolution: int = DEFAULT_RESOLUTION, include: Iterable[str] = (),
                   exclude: Iterable[str] = (), max_distinct: int = DEFAULT_MAX_DISTINCT,
                   **load_options) -> pd.DataFrame:
    """Effective bits per weight of each targeted tensor of ``model``, optionally after ``distortion``.

    One row per tensor: ``name, shape, weights, groups, distinct, bits_per_weight, scale_bits, resolution,
    storage_bits, compression`` (``bits_per_weight`` is the code entropy per scale group of the distortion's
    granularity, count-weighted; ``scale_bits`` the side information of its scales per weight where the
    distortion is discrete at this strength (a code times scales), else NaN; ``resolution`` is ``None`` where the values were counted exactly, else the grid;
    ``compression = storage_bits / bits_per_weight``), plus ``channel_estimate_bits`` for ``addnorm``.
    ``.attrs["total"]`` holds ``weights, bits_per_weight`` (``sum n_k H_k / sum n_k``), ``kind`` (exact,
    grid or mixed), ``exact_weights, resolution, scale_bits, kib_entropy, kib_float32``; ``.attrs["meta"]``
    says what was measured. The distorted weights are those of sweep trial 0 with the same ``seed``; the
    model is not changed. Other keyword options go to the model loader (``arch``, ``num_classes``,
    ``device``, ...); data options are ignored.
    """
    started = time.perf_counter()
    resolution = check_resolution(resolution)
    dist, strength = resolve_distortion(distortion, strength)
    loaded, by_shape = _load(model, load_options)  # by_shape: a bare state dict, no module
    sel = choose_tensors(loaded.tensors, include, exclude) if by_shape else \
        choose_targets(loaded.module, include, exclude, zero_batch_uses(loaded))
    targets = sel.targets
    health = Health(nonfinite_counts(targets))
    warn_if_broken(health, "non-finite values are left out of the counts")
    rows = [_row(name, w, dist, strength, resolution, max_distinct)
            for name, w in _weights(targets, dist, strength, seed)]
    frame = pd.DataFrame(rows, columns=COLUMNS + (["nonfinite"] if any(r["nonfinite"] for r in rows) else []))
    frame["resolution"] = pd.Series([r["resolution"] for r in rows], dtype=object)
    estimate = CHANNEL_ESTIMATES.get(dist.name) if dist is not None else None
    if estimate is not None:
        frame[CHANNEL_COLUMN] = [estimate(p.detach(), dist.scale_of(p.detach()), strength) for _, p in targets]
    frame.attrs["total"] = totals(frame)
    frame.attrs["meta"] = {**_meta(loaded, dist, strength, seed, resolution, max_distinct, frame,
                                   time.perf_counter() - started), **health.to_meta(),
                           "targets_chosen_by": sel.rule, "coverage": coverage(sel),
                           "selection": selection_lines(loaded.name, sel, "distorted" if dist else "measured"),
                           "notes": _notes(loaded, frame)}
    return frame


def zero_batch_uses(loaded) -> Uses:
    """How a forward pass on two zero inputs of the checkpoint's recorded input shape uses the parameters (the
    sweep's rule, ``load.uses``); not traced (``why``) where no shape is recorded, the model is in training mode (a
    pass would change its batch-norm statistics) or does not run on it: then the targets are chosen by module type."""
    module, shape = loaded.module, getattr(loaded, "input_shape", None)
    first = next(module.parameters(), None)
    why = "no input shape recorded, so no forward pass" if not shape else \
        "the module is in training mode, so no forward pass" if module.training else \
        "no floating-point parameters" if first is None or not first.is_floating_point() else ""
    if why:
        return Uses(traced=False, why=why)
    x = torch.zeros(2, *shape, device=first.device, dtype=first.dtype)
    try:
        with torch.inference_mode(), recording(module) as uses:
            module(x)
    except Exception as exc:  # noqa: BLE001 - a model that does not run on zeros is measured by module type
        return Uses(traced=False, why=f"the model did not run on zeros of its input shape ({type(exc).__name__})")
    return uses


def selection_lines(name: str, sel: Selection, verb: str) -> list[str]:
    """The header's lines on the selection: the coverage and, by shape, the rule and the chosen tensors that look
    like embedding tables (``engine.weights.coverage.shape_notes``)."""
    return [coverage_text(coverage(sel), verb), *shape_notes(sel, name)]


def _notes(loaded, frame: pd.DataFrame) -> list[str]:
    """What the reader of the figures must know: values left out, loading notes."""
    notes = list(getattr(loaded, "notes", []))
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
    dist.one_strength("-d")
    info = dist.info
    if info.parameterless:
        if strength is not None:
            raise dist.no_strength(f"--strength {strength:g}")
        return dist, math.nan
    if strength is not None and dist.fixed_strength is not None:  # as sweep: the strength is given once
        raise InvalidValueError(f"{dist.spec} fixes {dist.info.strength}; give the strength once "
                                f"(in the spec or with --strength, not both)")
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
    from ..load.checkpoints import LoadedModel, NeedsArchitecture, file_sha256
    from ..load.device import resolve_device
    from ..load.inputs import as_loaded, split_options

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


def _row(name: str, w: torch.Tensor, dist: Distortion | None, strength: float, resolution: int,
         max_distinct: int) -> dict:
    exact = dist is not None and dist.is_discrete_at(strength)
    finite = torch.isfinite(w)
    bad = int(finite.numel() - finite.sum())  # NaN and Inf are not values: left out of the counts
    values = torch.where(finite, w, torch.nan) if bad else w  # NaN is never counted; the groups keep their rows
    t = tensor_bits(values, resolution, max_distinct, granularity=dist.granularity if dist else "tensor", exact=exact)
    storage = w.element_size() * 8
    return {"name": name, "shape": tuple(w.shape), "weights": t.weights, "groups": t.groups, "distinct": t.distinct,
            "bits_per_weight": t.bits, "resolution": t.resolution, "storage_bits": storage,
            "scale_bits": scale_bits(t, storage) if exact else math.nan,
            "compression": storage / t.bits if t.bits > 0 else math.inf, "nonfinite": bad}


def totals(frame: pd.DataFrame) -> dict:
    """The total row: weights, count-weighted bits per weight, which kind of figure it is (``exact``, ``grid``
    or ``mixed``), the count-weighted side information of the scales, and the sizes in KiB."""
    n = int(frame["weights"].sum())
    bits = float((frame["bits_per_weight"] * frame["weights"]).sum() / n) if n else math.nan
    grids = [r for r in frame["resolution"] if r is not None]
    exact_n = int(frame.loc[frame["resolution"].isna(), "weights"].sum())
    kind = "grid" if exact_n == 0 and n else "exact" if exact_n == n else "mixed"
    scaled = frame[frame["scale_bits"].notna()]
    scales = float((scaled["scale_bits"] * scaled["weights"]).sum() / n) if len(scaled) and n else math.nan
    total = {"weights": n, "bits_per_weight": bits, "kind": kind, "exact_weights": exact_n,
             "resolution": max(grids) if grids else None, "scale_bits": scales,
             "kib_entropy": bits * n / 8 / 1024, "kib_float32": n * 4 / 1024}
    if CHANNEL_COLUMN in frame:
        total[CHANNEL_COLUMN] = float((frame[CHANNEL_COLUMN] * frame["weights"]).sum() / n)
    return total


def _meta(loaded, dist: Distortion | None, strength: float, seed: int, resolution: int,
          max_distinct: int, frame: pd.DataFrame, elapsed: float) -> dict:
    import platform
    import sys

    from .. import __version__

    command = ["wrobust", *sys.argv[1:]] if sys.argv[0].endswith("wrobust") else sys.argv
    return {
        "package": "robustbench_w", "version": __version__, "torch": torch.__version__,
        "python": platform.python_version(), "command": " ".join(command), "model": loaded.name,
        "model_sha256": loaded.sha256, "distortion": dist.with_strength(None).spec if dist else None,
        "strength_name": dist.info.strength if dist else None, "random": bool(dist and dist.is_random_at(strength)),
        "strength": None if math.isnan(strength) else strength, "seed": seed, "trial": 0,
        "granularity": dist.granularity if dist else "tensor", "resolution": resolution,
        "max_distinct": max_distinct, "grid_span_std": GRID_SPAN, "targets": len(frame),
        "elapsed_s": round(elapsed, 3),
    }


def bits_document(frame: pd.DataFrame) -> dict:
    """The ``-o bits.json`` document: ``{"meta", "layers": [{name, shape, weights, groups, distinct,
    bits_per_weight, scale_bits, resolution}, ...], "total": {weights, bits_per_weight, kind, ...}}``."""
    keys = ["name", "shape", "weights", "groups", "distinct", "bits_per_weight", "scale_bits", "resolution"]
    keys += [CHANNEL_COLUMN] if CHANNEL_COLUMN in frame else []
    layers = [{k: (list(r[k]) if k == "shape" else r[k]) for k in keys} for r in frame.to_dict(orient="records")]
    return {"meta": frame.attrs.get("meta", {}), "layers": layers, "total": frame.attrs["total"]}
