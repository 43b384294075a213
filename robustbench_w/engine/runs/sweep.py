"""The sweep engine: distortions x strengths x trials, applied in place, evaluated, restored.

Data flow: checkpoint -> module; dataset -> evaluation tensors; spec -> distortion; targets -> one pristine
copy of the targeted tensors; for each point: write the distorted values in place, evaluate, record a row,
restore. The clean model is always the first row (distortion ``none``). A point whose outcome cannot depend
on the seed (a deterministic distortion, or a random one at its identity strength) is evaluated once,
whatever ``trials`` says, and a point at its distortion's identity strength (which writes no weight) takes
the clean pass's numbers rather than running the same pass again; a random point gets a fixed number of trials, or (``trials="auto"``, the default)
as many as its 95% interval needs (:mod:`.trials`). How passes run (precision, channels-last layout,
``torch.compile``, the batch size) is :mod:`.fastpath` and :mod:`.batchsize`.

A per-layer sweep (``per_layer=True``, :mod:`.layers`) evaluates every point once per unit (a targeted tensor,
or a group of them), distorting that unit only; its rows carry a ``layer`` column (the unit's name; empty
for the clean model). On a chain of modules each unit's points run only the suffix of the chain
(:mod:`.activations`).

What is measured at each point is the task's metrics (:mod:`.task`): a classifier's ``error``, ``accuracy``,
``loss`` and ``agreement``, a language model's ``perplexity``, ... or those given with ``metric``. Rows always
have the columns of SPEC section 3 (``accuracy``, ``error``, ``loss``, ``agreement``: ``nan`` where not
measured) and one more column per other metric (``relative-l2`` in column ``relative_l2``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ...bits.tensor import sweep_bits
from ...datasets.base import EvalSet
from ...datasets.batches import BatchedSet
from ...distortions import Distortion, get_distortion
from ...errors import InvalidValueError, WrobustWarning
from ...load.checkpoints import LoadedModel
from ...load.inputs import Probe, check_fit, load_inputs
from ..passes.batches import data_budgets
from ..passes.batchsize import AUTO, BatchSize
from ..passes.converters import ConverterSpec
from ..passes.chance import clean_warnings
from ..defaults import DEFAULT_DISTORTIONS
from .distributed import current_world, process_group
from .hardware import Hardware, HardwareRun
from .meta import pass_meta, run_meta
from ..passes.evaluate import CORE, Evaluator, PassResult
from ..passes.fastpath import Compile, FastPath, to_channels_last
from ..weights.health import check_model, warn_if_broken
from ..weights.layers import LayerPlan, LayerRunner, is_auto, parse_groups, per_layer_points, plan_units
from ..weights.perturb import WeightPatch
from ..weights.pristine import check_pristine, make_patch
from .points import group_of
from .resume import run_resumable, run_setup
from .signals import Interrupted
from ..weights.coverage import coverage
from ..weights.targets import choose_targets
from ..passes.task import MetricSpec
from .trials import TrialRule, extend, trial_rule

ROW_COLUMNS = ["model", "dataset", "distortion", "spec", "strength_name", "strength", "trial", "seed", "n",
               "accuracy", "error", "loss", "agreement", "weight_change", "nonfinite", "stochastic"]

Progress = Callable[[int, int, str], None]  # (done, total, description)


@dataclass(frozen=True)
class Point:
    dist: Distortion
    strength: float
    trial: int
    stochastic: bool
    layer: str | None = None  # the unit a per-layer point distorts (None: every target)

    @property
    def label(self) -> str:
        s = "" if math.isnan(self.strength) else f" {self.dist.info.strength}={self.strength:g}"
        text = f"{self.dist.spec}{s}" + (f" trial {self.trial}" if self.stochastic else "")
        return f"{self.layer}: {text}" if self.layer else text


def plan(distortions: Sequence[Distortion], strengths: Sequence[float] | None = None,
         trials: int | str | TrialRule = 1) -> list[Point]:
    """Every point to evaluate, in order: distortion, strength, trial. With adaptive trials (``"auto"``) a
    random point's first trials; :meth:`SweepRunner.run` adds the others as they are needed."""
    first = trial_rule(trials).first
    if strengths is not None and distortions and all(d.info.parameterless for d in distortions):
        raise distortions[0].no_strength("-s " + ",".join(f"{s:g}" for s in strengths))  # else -s would be ignored
    points = []
    for dist in distortions:
        for s in dist.strengths(strengths):
            stochastic = dist.is_random_at(s)
            points.extend(Point(dist, s, t, stochastic) for t in range(first if stochastic else 1))
    return points


def parse_distortions(specs: Iterable[str | Distortion] | None) -> list[Distortion]:
    """Distortions from spec strings (the default set when none); repeated specs count once."""
    dists = [get_distortion(s) for s in (specs or DEFAULT_DISTORTIONS)]
    unique: dict[str, Distortion] = {}
    for d in dists:
        unique.setdefault(d.spec, d)
    return [d for d in unique.values() if d.name != "none"]


class SweepRunner:
    """A model, an evaluation set and the targeted tensors, ready to evaluate points.

    ``metric`` (names, :class:`Metric` objects or callables), ``output_key`` and ``pool`` choose what is
    measured (:mod:`.task`, :mod:`.outputs`); by default the task's metrics. ``extra_metrics`` are measured
    as well (a gate's requirements). ``per_layer`` makes it ready for per-layer points (:mod:`.layers`).
    ``fast`` and ``batch_size`` say how passes run (:mod:`.fastpath`); a channels-last model is converted before
    the pristine copy of its distorted tensors is taken. ``probed`` is the probe that checked model and data fit
    (``load_inputs``): the task is planned from its outputs instead of running the model again, and the default
    targets are the parameters its forward pass multiplied with data (``engine.weights.targets``); without one,
    the runner takes that probe itself."""

    def __init__(self, model: LoadedModel, data: EvalSet | BatchedSet, *, include: Iterable[str] = (),
                 exclude: Iterable[str] = (), batch_size: BatchSize = AUTO, device: torch.device | str = "cpu",
                 metric: MetricSpec | Iterable[MetricSpec] | None = None, extra_metrics: Iterable[MetricSpec] = (),
                 output_key: str | None = None, pool: str | None = None, per_layer: LayerPlan | None = None,
                 fast: FastPath | None = None, probed: Probe | None = None, hardware: Hardware | None = None,
                 seed: int = 0, pristine: str = "device", data_on: str = "device"):
        self.model, self.data, self.device = model, data, torch.device(device)
        self.fast = fast or FastPath()
        if self.fast.channels_last:
            to_channels_last(model.module, model.name)
        probed = (probed.of(model.module, data) if probed is not None else None) or check_fit(model, data, self.device)
        self.selection = choose_targets(model.module, include, exclude, probed.uses)
        self.coverage = coverage(self.selection)
        self.patch = make_patch(self.selection.targets, model.module, pristine)
        if hardware is not None and hardware.redraw == "batch" and self.patch.mode == "none":
            raise InvalidValueError("--redraw batch writes new weights from the pristine copy before every batch; "
                                    "--pristine none keeps none: use --pristine device or host with it")
        groups = () if per_layer is None else per_layer.groups_for(model.module, self.patch.names)
        self.layers = None if per_layer is None else \
            LayerRunner(plan_units(self.patch.names, groups), self.patch, model.module, per_layer)
        self.evaluator = Evaluator(model.module, data, batch_size, self.device, model.normalization, metric=metric,
                                   extra_metrics=extra_metrics, output_key=output_key, pool=pool, hint=model.task,
                                   name=model.name, fast=self.fast, clean_params=self.patch.clean_params,
                                   probed=probed, resizable=model.resizable, **data_budgets(data_on))
        self.task = self.evaluator.task
        if self.layers is not None:
            self.layers.attach(self.evaluator)
        clash = [c for c in self.columns if c in ROW_COLUMNS]
        if clash:
            raise InvalidValueError(f"metric column {clash[0]!r} is a column of every result row; name the metric "
                                    f"otherwise")
        self.hardware = HardwareRun(hardware or Hardware(), self.evaluator, self.patch.names, model.module, seed)
        with self.hardware.clean():
            self.clean = self.evaluator.run()
        self.health = check_model(model.module, self.clean, data)  # non-finite weights, clean outputs or inputs
        self.warnings = clean_warnings(self.clean, data, self.health.ok)  # a clean model at chance level
        self.warnings += [self.coverage["warning"]] if self.coverage["warning"] else []  # most weights left clean
        if per_layer is not None and per_layer.auto and not groups:  # said, not dropped silently
            self.warnings.append(f"--groups auto: {model.name} has no stack of blocks (an nn.ModuleList of two or more "
                                 "blocks holding targets): every targeted tensor is its own unit")

    @property
    def columns(self) -> list[str]:
        """The metric columns beyond the core ones, in the order of the metrics."""
        return [m.column for m in self.task.metrics if m.column not in CORE]

    def judged(self) -> list[tuple[str, tuple[float, float]]]:
        """``(column, bounds)`` of the metrics whose intervals the report shows (and adaptive trials judge): the
        task's shown metrics that are measured, the agreement only where there is no error."""
        measured = {m.name: m for m in self.task.metrics}
        names = [n for n in self.task.shown if n in measured]
        if "error" in names:
            names = [n for n in names if n != "agreement"]
        return [(measured[n].column, tuple(measured[n].info.bounds)) for n in names]

    def evaluate(self, point: Point, seed: int) -> dict:
        if point.dist.is_identity(point.strength) and not self.hardware.changes_identity:
            # the weights stay pristine: its pass would be the clean pass
            row = self.row(point.dist, point.strength, point.trial, seed, self.clean, 0.0, point.stochastic,
                           self.point_extras(point))
            return self.tagged(row, point.layer)
        patch = self.patch_for(point)
        with self.forward_for(point), patch.applied(point.dist, point.strength, seed, point.trial) as applied, \
                self.hardware.point(patch, point.dist, point.strength, seed, point.trial):
            result = self.evaluator.run()
            extras = self.point_extras(point)
        return self.tagged(self.row(point.dist, point.strength, point.trial, seed, result,
                                    float(applied.weight_change), point.stochastic, extras), point.layer)

    def patch_for(self, point: Point) -> WeightPatch:
        """What a point distorts: every target, or the unit of a per-layer point."""
        return self.patch if not point.layer else self.layers.patch_of(point.layer)

    def forward_for(self, point: Point) -> AbstractContextManager:
        """How a point's passes run: the whole model, or a per-layer unit's suffix of a chain."""
        return nullcontext() if not point.layer else self.layers.suffix(point.layer)

    def tagged(self, row: dict, layer: str | None) -> dict:
        """The row with its ``layer`` column in a per-layer sweep (empty for the clean model)."""
        return row if self.layers is None else {**row, "layer": layer or ""}

    def point_extras(self, point: Point | None) -> dict:
        """Columns computed from the distorted weights while they are in place (extension point):
        ``eff_bits`` and ``scale_bits`` (``bits.sweep_bits``) where the distortion is discrete at the strength."""
        if point is None:
            return {}
        return sweep_bits(self.patch_for(point).values_run(), point.dist, point.strength)

    def clean_row(self, seed: int) -> dict:
        row = self.row(get_distortion("none"), math.nan, 0, seed, self.clean, 0.0, False, self.point_extras(None))
        return self.tagged(row, None)

    def layer_meta(self) -> dict:
        """The units and the activation reuse of a per-layer sweep (nothing otherwise)."""
        return {} if self.layers is None else self.layers.meta()

    def row(self, dist: Distortion, strength: float, trial: int, seed: int, r: PassResult, change: float,
            stochastic: bool, extras: dict) -> dict:
        return {
            "model": self.model.name, "dataset": self.data.name, "distortion": dist.name, "spec": dist.spec,
            "strength_name": dist.info.strength or "", "strength": strength, "trial": trial, "seed": seed,
            "n": r.n, "accuracy": r.accuracy, "error": r.error, "loss": r.loss, "agreement": r.agreement,
            "weight_change": change, "nonfinite": r.nonfinite, "stochastic": stochastic,
            **{c: r.get(c) for c in self.columns}, **extras, **self.hardware.columns(dist, strength),
        }

    def run(self, points: Sequence[Point], seed: int = 0, progress: Progress | None = None, *,
            trials: TrialRule | None = None, known: Callable[[Point], dict | None] | None = None,
            on_row: Callable[[Point, dict], None] | None = None) -> list[dict]:
        """The clean row, then one row per point, in order. With an adaptive ``trials`` rule each random
        point's trials are followed by as many more as its interval needs (:mod:`.trials`). ``known(point)``
        may give a point's row without evaluating it (a resumed run's rows: the rule then continues from them);
        ``on_row(point, row)`` is called as each evaluated point finishes."""
        rows, groups = [self.clean_row(seed)], {}
        rule = None if trials is None or not trials.auto else trials.judging(self.judged())
        todo = points if rule is None else extend(points, rule, lambda p: groups.get(group_of(p), []))
        total = len(points)
        for i, point in enumerate(todo):
            total = max(total, i + 1)
            if progress:
                progress(i, total, point.label)
            row = known(point) if known is not None else None
            if row is None:
                row = self.evaluate(point, seed)
                if on_row is not None:
                    on_row(point, row)
            if rule is not None:  # what the adaptive rule judges
                groups.setdefault(group_of(point), []).append(row)
            rows.append(row)
        if progress:
            progress(len(rows) - 1, len(rows) - 1, "done")
        return rows


def sweep(
    model: str | LoadedModel | nn.Module,
    dataset: object = None,
    distortions: Iterable[str | Distortion] | None = None,
    strengths: Sequence[float] | None = None,
    trials: int | str = "auto",
    seed: int = 0,
    *,
    ci_width: float | None = None,
    max_trials: int | None = None,
    metric: MetricSpec | Iterable[MetricSpec] | None = None,
    output_key: str | None = None,
    pool: str | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    batch_size: BatchSize = AUTO,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    channels_last: bool = False,
    compile: Compile = False,
    limit: int | None = None,
    progress: Progress | None = None,
    log: str | Path | None = None,
    resume: bool = False,
    shard: str | None = None,
    per_layer: bool = False,
    groups: Iterable[str] | Mapping[str, str] | None = None,
    reuse_activations: bool = True,
    activation_budget: int | None = None,
    redraw: str = "point",
    converters: ConverterSpec | None = None,
    pristine: str = "device",
    data_on: str = "device",
    **options,
) -> pd.DataFrame:
    """Evaluate ``model`` under each distortion, strength and trial; one row per point (SPEC section 3).

    ``model`` is a model spec (a path, ``builtin:NAME``, ``hf:DIR``), a :class:`LoadedModel` or any
    ``nn.Module``. ``dataset`` is a dataset name, an :class:`EvalSet`, or any iterable of batches (a
    ``DataLoader``, a list of dicts of named tensors or of ``(inputs, labels)`` tuples); it defaults to the one
    the checkpoint was trained on. ``metric`` is a registered metric's name, a callable
    ``(outputs, clean_outputs, batch) -> per-input scores``, or a list of them (default: the task's);
    ``output_key`` and ``pool`` choose and pool the measured output. Other keyword ``options`` go to the model
    and dataset loaders (``arch``, ``num_classes``, ``data_root``, ``seq_len``, ...; see
    ``inputs.load_inputs``). The returned frame carries a ``meta`` dict in ``.attrs`` (versions, device, seed,
    model hash, targets, task and metrics, precision, batch size, trials, timing). ``engine.stats.summarize``
    gives the summary rows.

    ``trials`` is a number of trials per random point, or ``"auto"``: at least 3, then more until the 95%
    interval's half-width is at most ``ci_width`` (percentage points for fractions such as the error, else
    the metric's unit; default 2), at most ``max_trials`` (default 30) (:mod:`.trials`). ``precision``
    (``fp32``, ``tf32``, ``bf16``), ``channels_last`` and ``compile`` are the fast paths of
    :mod:`.fastpath`; ``batch_size`` is a number or ``"auto"`` (:mod:`.batchsize`).

    Long runs (docs/resume.md): ``log`` appends each finished point to a run log, ``resume`` evaluates only
    the points the log lacks, ``shard="I/N"`` takes one of N parts of the grid; under torchrun each process
    takes its share and every process returns all rows. SIGINT/SIGTERM raise
    :class:`~.signals.Interrupted` whose ``partial`` holds the rows of the finished points.

    Which layers are fragile (docs/layers.md): ``per_layer=True`` distorts one unit at a time, the others
    clean; units are the targeted tensors, or ``groups`` of them (``["layer1.*=layer1", ...]`` or
    ``{"layer1.*": "layer1"}``). Rows gain a ``layer`` column. On a chain of modules the clean activations in
    front of each unit are computed once (``reuse_activations``, within ``activation_budget`` bytes).

    Analog hardware (docs/hardware.md): ``redraw="batch"`` draws a random distortion afresh for every batch
    (:mod:`..weights.redraw`); ``converters`` (a :class:`ConverterSpec`: DAC and ADC bits, output noise) puts
    converters around every layer that owns a targeted weight (:mod:`..passes.converters`).

    Models that fill the device (docs/large-models.md): ``pristine`` says where the clean weights live,
    ``"device"`` (a copy beside the model), ``"host"`` (in host memory) or ``"none"`` (layer at a time: no copy,
    the same rows); ``data_on="host"`` keeps the evaluation set in host memory, moved one batch at a time.
    """
    started = time.perf_counter()
    setup = run_setup(log, resume, shard)
    layer_plan = plan_layers(per_layer, groups, reuse_activations, activation_budget)
    rule = trial_rule(trials, ci_width, max_trials)
    pristine = check_pristine(pristine)
    fast = FastPath(precision, channels_last, compile)
    points = plan(parse_distortions(distortions), strengths, rule)
    hardware = hardware_of(redraw, converters, per_layer)
    with process_group(device) as dev:
        inputs = load_inputs(model, dataset, device=dev, limit=limit, seed=seed, **options)
        runner = SweepRunner(inputs.model, inputs.data, include=include, exclude=exclude, batch_size=batch_size,
                             device=inputs.device, metric=metric, output_key=output_key, pool=pool,
                             per_layer=layer_plan, fast=fast, probed=inputs.probed, hardware=hardware, seed=seed,
                             pristine=pristine, data_on=data_on)
        if runner.layers is not None:
            points = per_layer_points(points, list(runner.layers.units.values()))
        if current_world().leader:  # under torchrun, said once
            warn_if_broken(runner.health)
            for warning in [*runner.warnings, *fast.notes(inputs.device)]:
                warnings.warn(warning, WrobustWarning, stacklevel=2)
        meta = run_meta(inputs.model, inputs.data, runner, inputs.device, seed, 0.0, rule)
        outcome = run_resumable(runner, points, seed, progress, setup, meta, trials=rule)
    rows = frame(outcome.rows, runner)
    rows.attrs["meta"] = {**meta, **pass_meta(runner, inputs.device),
                          "elapsed_s": round(time.perf_counter() - started, 3), **outcome.meta(), **runner.layer_meta()}
    if outcome.signal:
        raise Interrupted(outcome.signal, partial=rows)
    return rows


def frame(rows: list[dict], runner: SweepRunner) -> pd.DataFrame:
    """The rows as a frame, built in column order (SPEC's columns, ``layer`` after the spec in a per-layer
    sweep, then the metric and extra columns in the order they first appear): no reordering copy."""
    columns = ROW_COLUMNS if runner.layers is None else [*ROW_COLUMNS[:2], "layer", *ROW_COLUMNS[2:]]
    extra = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in columns]
    return pd.DataFrame(rows, columns=columns + extra)


def hardware_of(redraw: str, converters: ConverterSpec | None, per_layer: bool) -> Hardware:
    """The sweep's :class:`Hardware`; converters do not combine with a per-layer sweep (its reused clean
    activations would bypass them)."""
    hardware = Hardware(redraw, converters or ConverterSpec())
    if per_layer and hardware.converters.active:
        raise InvalidValueError("--dac, --adc and --out-noise do not apply to --per-layer (run them as a whole-model "
                                "sweep)")
    return hardware


def plan_layers(per_layer: bool, groups: Iterable[str] | Mapping[str, str] | None, reuse: bool,
                budget: int | None) -> LayerPlan | None:
    """The per-layer plan of a sweep (None for a whole-model sweep); groups without ``per_layer`` are an error."""
    auto = is_auto(groups)
    parsed = () if auto else parse_groups(groups)
    if not per_layer:
        if parsed or auto:
            raise InvalidValueError("--groups needs --per-layer (groups are the units of a per-layer sweep)")
        if not reuse or budget is not None:  # else silently ignored: say so
            raise InvalidValueError("--no-activation-reuse and activation_budget need --per-layer (activation "
                                    "reuse is how a per-layer sweep runs)")
        return None
    if budget is not None and budget < 0:
        raise InvalidValueError(f"activation_budget must be at least 0 bytes, not {budget}")
    return LayerPlan(parsed, reuse, budget, auto)
