"""Gate verdicts: evaluate a policy's requirement points with the sweep engine and judge each limit.

The model and data are loaded once; every distinct (distortion, strength) point of the policy is evaluated
with ``policy.trials`` trials (deterministic points once; ``trials = "auto"``, the default: until every
requirement on the point is decided, at most ``max_trials``, :mod:`.decide`) by one
:class:`SweepRunner`, and summarised with
:func:`..engine.runs.stats.summarize`. A limit is judged on the mean over trials (``judge = "mean"``) or on the
conservative end of the 95% confidence interval of the mean (``judge = "ci"``, the default): the upper end
for ``max_error``, ``max_drop``, ``max_bits``, ``max`` and ``max_increase``, the lower end for
``min_agreement``, ``min`` and ``min_ratio``. A deterministic point is exact, so both rules give the same value
there. ``max``/``min`` bound a requirement's ``metric`` (any metric: ``perplexity``, ``cosine``, ...),
``max_increase`` its rise over the clean model's value, ``min_ratio`` its ratio to the clean model's value.
The gate measures the task's default metrics plus every metric a requirement names (and ``--metric``).

With a baseline (a results file written earlier by ``gate -o`` or ``sweep -o FILE.json``), every
requirement's point also fails when its mean error rose by more than ``max_regression`` over the
baseline's. A point the baseline lacks is reported, not failed. Regressions compare means, because the
baseline file may hold only a mean and a point compared with itself must pass.

A broken model never passes: non-finite weights or a clean pass with non-finite outputs
(:mod:`..engine.weights.health`) fail the gate with their own verdict, ``clean model: 12 non-finite weights in
fc1.weight``, whatever the requirements say; nor does a clean model at chance level (a constant output, weights
that do nothing), whose drop under any distortion is nought: verdict ``clean model at chance level: ...``,
unless the policy says ``allow_chance = true``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from torch import nn

from ..distortions import get_distortion
from ..engine.runs.distributed import process_group
from ..engine.passes.fastpath import FastPath
from ..engine.weights.health import Health
from ..engine.runs.resume import run_resumable, run_setup
from ..engine.runs.signals import Interrupted
from ..engine.runs.stats import summarize, t_interval
from ..engine.passes.converters import ConverterSpec
from ..engine.runs.hardware import Hardware
from ..engine.runs.meta import run_meta
from ..engine.runs.sweep import ROW_COLUMNS, Point, Progress, SweepRunner, plan
from ..errors import InputFileError, InvalidValueError, MissingValueError, WrobustError, permission_denied
from ..load.checkpoints import LoadedModel
from ..load.inputs import Inputs, load_inputs
from .decide import UNDECIDED, _float, decision_rule, limit_decided, measures, stop_reason
from .policy import LIMIT_KINDS, Policy, Requirement, load_policy, point_name
from .settings import SETTINGS

TOLERANCE = 1e-9  # a value equal to its limit passes, whatever the rounding of k/n
Key = tuple[str, float]  # (canonical spec without a fixed strength, strength or nan)


@dataclass(frozen=True)
class Check:
    """One limit of one requirement, judged. ``passed`` is None when it could not be checked (no baseline point)."""

    limit: str  # max_error, max_drop, min_agreement, max_bits, max, min, max_increase, min_ratio or max_regression
    threshold: float
    value: float  # the judged value (nan when not measured)
    judged_on: str  # "mean", "95% CI high", "95% CI low", "exact", "mean vs baseline"
    passed: bool | None
    mean: float = math.nan  # the mean over trials (equal to value when judged on the mean)
    note: str = ""
    metric: str = ""  # the metric that max, min, max_increase and min_ratio bound

    @property
    def relation(self) -> str:
        kind = LIMIT_KINDS.get(self.limit)  # max_regression is no kind: an upper bound
        return "<=" if kind is None or kind.upper else ">="


@dataclass(frozen=True)
class Verdict:
    """A requirement with its checks and the measured summary row of its point."""

    requirement: Requirement
    checks: tuple[Check, ...]
    measured: dict
    trials: int = 1  # of its point
    stopped: str = ""  # why its point has these trials: decided, undecided at cap, fixed trials, ...

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]


@dataclass
class GateResult:
    """Everything a gate run produced: verdicts, the measured rows and summary, and notes for the reader."""

    policy: Policy
    verdicts: list[Verdict]
    rows: pd.DataFrame
    summary: pd.DataFrame
    meta: dict
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)
    health: Health = field(default_factory=Health)  # the clean model's; not ok: the gate fails
    warnings: list[str] = field(default_factory=list)  # about the run itself (a clean model at chance level)
    chance: str = ""  # the clean model is at chance level (and the policy does not allow it): why, in one line

    @property
    def passed(self) -> bool:
        return self.health.ok and not self.chance and all(v.passed for v in self.verdicts)

    @property
    def broken(self) -> str:
        """The clean model's own failure (``clean model: 12 non-finite weights in fc1.weight``, ``clean model at
        chance level: accuracy 9.86% with 10 classes ...``), or ''."""
        if self.health.ok:
            return f"clean model at chance level: {self.chance}" if self.chance else ""
        whose = "evaluation data" if self.health.subject == "evaluation data" else "clean model"
        return f"{whose}: {self.health.problem()}"

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.passed]


def run_gate(model: str | LoadedModel | nn.Module, policy: Policy | str | Path, baseline: Path | str | None = None, *,
             progress: Progress | None = None, log: str | Path | None = None, resume: bool = False,
             trust_checkpoint: bool = False, **settings) -> GateResult:
    """Evaluate ``model`` against ``policy`` (a :class:`Policy` or a policy file; and ``baseline``, if given)
    and return the verdicts. ``settings`` take the place of the policy's (any key of ``[gate]`` but
    ``require``: ``image_size``, ``device``, ``trials``, ...; :mod:`.settings`), as the command line's do
    (recorded as ``argument`` in ``sources``).
    ``log``/``resume``: a run log, as for a sweep (docs/resume.md); an interrupted gate raises
    :class:`~..engine.runs.signals.Interrupted` (no verdict on part of the points)."""
    policy = policy if isinstance(policy, Policy) else load_policy(Path(policy))
    policy = policy.given(settings)
    check_supported(policy)
    base = load_baseline(Path(baseline)) if baseline is not None else None
    setup = run_setup(log, resume, kind="gate")
    get = policy.get
    fast = FastPath(get("precision", "fp32"), get("channels_last", False), get("compile", False))
    started = time.perf_counter()
    with process_group(get("device", "auto")) as dev:
        inputs = gate_inputs(model, policy, dev, trust_checkpoint)
        runner = SweepRunner(inputs.model, inputs.data, include=policy.include, exclude=policy.exclude,
                             batch_size=get("batch_size", "auto"), device=inputs.device,
                             extra_metrics=[*get("metric", ()), *policy.metrics], output_key=get("output_key"),
                             pool=get("pool"), fast=fast, probed=inputs.probed, hardware=hardware_of(policy),
                             seed=policy.seed, pristine=get("pristine", "device"), data_on=get("data_on", "device"))
        rule = policy.trial_rule if not policy.trial_rule.auto else decision_rule(policy, runner.clean_row(0))
        head = run_meta(inputs.model, inputs.data, runner, inputs.device, policy.seed, 0.0, rule)
        outcome = run_resumable(runner, gate_points(policy), policy.seed, progress, setup, head, trials=rule)
    if outcome.signal:
        raise Interrupted(outcome.signal)
    rows = pd.DataFrame(outcome.rows)
    rows = rows[ROW_COLUMNS + [c for c in rows.columns if c not in ROW_COLUMNS]]
    bits = measure_bits(policy, inputs, rows)
    meta = run_meta(inputs.model, inputs.data, runner, inputs.device, policy.seed, time.perf_counter() - started,
                    rule)
    rows.attrs["meta"] = meta
    summary = summarize(rows)
    verdicts = [judge(r, summary, bits, base, broken=not runner.health.ok, policy=policy)
                for r in policy.requirements]
    notes = baseline_notes(verdicts, base, meta)
    return GateResult(policy, verdicts, rows, summary, meta, None if base is None else base.source, notes,
                      runner.health, list(meta.get("warnings", [])), at_chance(runner.warnings, policy))


def gate_inputs(model: str | LoadedModel | nn.Module, policy: Policy, device: object, trust_checkpoint: bool
                ) -> Inputs:
    """The model and data of the policy (``load.inputs.load_inputs``); a value they need and lack is named as
    the policy's key too (``input_shape in [gate] of p.toml``), the place a gate also reads it from."""
    try:
        return load_inputs(model, policy.dataset, device=device, trust_checkpoint=trust_checkpoint,
                           **policy.load_options())
    except MissingValueError as exc:
        if exc.option not in SETTINGS:
            raise
        raise exc.adding(f"{exc.option} in [{policy.table}] of {policy.source}") from None


def at_chance(warnings: Sequence[str], policy: Policy) -> str:
    """Why the clean model fails the gate for being at chance level ('' when it is not, or the policy says
    ``allow_chance = true``): a model that does not work passes no requirement, however small its drop."""
    found = [w for w in warnings if "at chance level" in w]
    if not found or policy.allow_chance:
        return ""
    return f"{found[0].split(': ', 1)[-1]} (allow_chance = true in the policy gates it anyway)"


def hardware_of(policy: Policy) -> Hardware:
    """The policy's ``redraw`` and converters (docs/hardware.md), as sweep's options of the same names."""
    get = policy.get
    converters = ConverterSpec(get("dac"), get("adc"), get("out_noise"), get("dac_range", "static"),
                               get("converters", "all"))
    return Hardware(get("redraw", "point"), converters)


def check_supported(policy: Policy) -> None:
    """Refuse, before any work, a policy this installation cannot measure."""
    for r in policy.requirements:
        if "max_bits" in r.limits and not bits_available():
            raise InvalidValueError(f"{r.key}.max_bits: effective bits are not available in this installation "
                                    "(robustbench_w.bits is missing)")


def bits_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("robustbench_w.bits") is not None


def gate_points(policy: Policy) -> list[Point]:
    """The points to evaluate: each distinct requirement point once (the clean model is always evaluated)."""
    seen: dict[Key, Requirement] = {}
    for r in policy.requirements:
        if r.distortion.name != "none" and not any(same_point(r.point, k) for k in seen):
            seen[r.point] = r
    points: list[Point] = []
    for r in seen.values():
        points += plan([r.distortion], None if math.isnan(r.strength) else [r.strength], policy.trial_rule)
    return points


def same_point(a: Key, b: Key) -> bool:
    """Same spec and the same strength (nan equals nan: parameterless distortions)."""
    return a[0] == b[0] and (a[1] == b[1] or (math.isnan(a[1]) and math.isnan(b[1])))


def point_mask(frame: pd.DataFrame, key: Key) -> pd.Series:
    strength = frame["strength"].astype(float)
    match = strength.isna() if math.isnan(key[1]) else (strength == key[1])
    return (frame["spec"] == key[0]) & match


# ------------------------------------------------------------------ judging

def judge(r: Requirement, summary: pd.DataFrame, bits: dict, base: Baseline | None, broken: bool = False,
          policy: Policy | None = None) -> Verdict:
    """All checks of one requirement: its limits, then the regression over the baseline (if any). On a
    ``broken`` clean model (non-finite weights or outputs) a limit relative to the clean model fails unjudged:
    a drop from a 100%-error model is no drop. With the ``policy``, the verdict says why its point has the
    trials it has (:func:`.decide.stop_reason`); a limit left undecided is judged on the mean."""
    row = summary[point_mask(summary, r.point)].iloc[0].to_dict()
    clean = summary[summary["distortion"] == "none"].iloc[0].to_dict()
    stopped = "" if policy is None else stop_reason(r, policy, row, clean)
    undecided = stopped if stopped in UNDECIDED else ""
    checks = [broken_check(r, key) if broken and LIMIT_KINDS[key].measure in RELATIVE
              else judge_limit(r, key, row, clean, bits.get(r.point), undecided)
              for key in LIMIT_KINDS if key in r.limits]
    if base is not None:
        checks.append(regression_check(r, row, base))
    return Verdict(r, tuple(checks), row, int(row.get("trials", 1)), stopped)


RELATIVE = ("drop", "increase", "ratio")  # measures taken against the clean model


def broken_check(r: Requirement, key: str) -> Check:
    """A limit relative to the clean model, on a broken one: failed, not measured."""
    metric = r.metric if LIMIT_KINDS[key].on_metric else ""
    return Check(key, r.limits[key], math.nan, "-", False, note="not judged: the clean model is broken", metric=metric)


def judge_limit(r: Requirement, key: str, row: dict, clean: dict, bits: tuple | None, undecided: str = "") -> Check:
    """Judge one limit: take the mean or the conservative end of the interval, compare with the threshold
    (the mean, marked, when adaptive trials stopped with this limit ``undecided``)."""
    kind = LIMIT_KINDS[key]
    mean, low, high, draws = measures(kind, row, clean, bits, r.metric)
    if not r.distortion.is_random_at(r.strength):
        value, on = mean, "exact"
    elif draws == 1:
        value, on = mean, "one draw"
    elif undecided and not limit_decided(r, key, row, clean):
        value, on = mean, f"mean, {undecided}"
    elif r.judge == "mean":
        value, on = mean, "mean"
    else:
        value, on = (high, "95% CI high") if kind.upper else (low, "95% CI low")
    threshold, metric = r.limits[key], r.metric if kind.on_metric else ""
    if math.isnan(value):
        why = unmeasured(kind.measure, metric) if math.isnan(mean) else "no 95% interval from one trial"
        return Check(key, threshold, math.nan, on, False, mean, f"not measured: {why}", metric)
    passed = value <= threshold + TOLERANCE if kind.upper else value >= threshold - TOLERANCE
    return Check(key, threshold, value, on, passed, mean, metric=metric)


def unmeasured(measure: str, metric: str = "") -> str:
    if metric:
        return f"no {metric}, or the clean model's {metric} is 0" if measure == "ratio" else f"no {metric}"
    return {"bits": "no effective bits", "agreement": "no agreement"}.get(measure, "the evaluation set has no labels")


def regression_check(r: Requirement, row: dict, base: Baseline) -> Check:
    """Fail when the mean error rose over the baseline's by more than ``max_regression``."""
    before = base.error(r.point)
    now = _float(row.get("error_mean"))
    if before is None:
        return Check("max_regression", r.max_regression, math.nan, "mean vs baseline", None, now,
                     "not in the baseline")
    rise = now - before
    note = f"error {100 * before:.2f}% -> {100 * now:.2f}%"
    passed = bool(rise <= r.max_regression + TOLERANCE)
    return Check("max_regression", r.max_regression, rise, "mean vs baseline", passed, now, note)


# ------------------------------------------------------------------ effective bits

def measure_bits(policy: Policy, inputs: Inputs, rows: pd.DataFrame) -> dict[Key, tuple[float, float, float, int]]:
    """``(mean, low, high, draws)`` effective bits per weight of the distorted weights, for each point with max_bits.

    Per-trial ``eff_bits`` of the sweep rows are used when the engine records them; otherwise
    ``bits.effective_bits`` measures the point once (one draw of a random distortion).
    """
    out: dict[Key, tuple[float, float, float, int]] = {}
    for r in policy.requirements:
        if "max_bits" in r.limits and r.point not in out:
            out[r.point] = bits_from_rows(rows, r.point) or bits_from_module(policy, inputs, r)
    return out


def bits_from_rows(rows: pd.DataFrame, key: Key) -> tuple[float, float, float, int] | None:
    if "eff_bits" not in rows.columns:
        return None
    g = rows[point_mask(rows, key)]
    values = g["eff_bits"].astype(float).dropna().to_numpy()
    if len(values) == 0:
        return None
    if not bool(g["stochastic"].any()) or len(values) == 1:
        return float(values.mean()), float(values.mean()), float(values.mean()), len(values)
    mean, _, low, high = t_interval(values)
    return mean, low, high, len(values)


def bits_from_module(policy: Policy, inputs: Inputs, r: Requirement) -> tuple[float, float, float, int]:
    from ..bits.model import effective_bits

    strength = None if math.isnan(r.strength) else r.strength
    spec = None if r.distortion.name == "none" else r.distortion.spec
    frame = effective_bits(inputs.model, spec, strength, seed=policy.seed, include=policy.include,
                           exclude=policy.exclude)
    value = float(frame.attrs["total"]["bits_per_weight"])
    return value, value, value, 1


# ------------------------------------------------------------------ baselines

@dataclass
class Baseline:
    """The mean error of each point of an earlier results file."""

    source: str
    errors: dict[Key, float | None]
    meta: dict = field(default_factory=dict)

    def error(self, key: Key) -> float | None:
        """The baseline's mean error at ``key``; None when the file lacks the point (or it has no error)."""
        for k, v in self.errors.items():
            if same_point(k, key):
                return v
        return None


def load_baseline(path: Path) -> Baseline:
    """Read a JSON results file of ``gate -o`` or ``sweep -o``: its ``summary`` rows give the errors."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError:
        raise permission_denied(path, "cannot read the baseline") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the baseline: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: the baseline is not valid JSON: {exc}") from None
    summary = doc.get("summary") if isinstance(doc, dict) else None
    if not isinstance(summary, list):
        raise InputFileError(f"{path}: not a wrobust results file (no 'summary' list); "
                             "write one with 'wrobust gate -o FILE.json' or 'wrobust sweep -o FILE.json'")
    errors: dict[Key, float | None] = {}
    for i, row in enumerate(summary):
        key, err = baseline_row(row, f"{path}: summary[{i}]")
        errors.setdefault(key, err)
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    return Baseline(str(path), errors, meta)


def baseline_row(row: object, where: str) -> tuple[Key, float | None]:
    """One summary row as ``(key, mean error)``; the spec is made canonical, without a fixed strength."""
    if not isinstance(row, dict) or not isinstance(row.get("spec"), str):
        raise InputFileError(f"{where}: expected a summary row with a 'spec'")
    strength, err = row.get("strength"), row.get("error_mean")
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in (strength, err)):
        raise InputFileError(f"{where}: 'strength' and 'error_mean' must be numbers or null")
    if isinstance(err, float) and math.isnan(err):  # NaN: not measured (no labels)
        err = None
    spec = row["spec"]
    try:
        spec = get_distortion(spec).with_strength(None).spec
    except WrobustError:
        pass  # a distortion this installation lacks: it can only fail to match
    return (spec, math.nan if strength is None else float(strength)), None if err is None else float(err)


def baseline_notes(verdicts: Sequence[Verdict], base: Baseline | None, meta: dict) -> list[str]:
    """What the reader should know about the comparison: points the baseline lacks, another dataset."""
    if base is None:
        return []
    notes = [f"the baseline has no point {point_name(v.requirement.distortion, v.requirement.strength)}: "
             f"{v.requirement.name} not compared (not a failure)"
             for v in verdicts for c in v.checks if c.limit == "max_regression" and c.passed is None]
    theirs = base.meta.get("dataset")
    if theirs and theirs != meta.get("dataset"):
        notes.append(f"the baseline was measured on {theirs}, this run on {meta.get('dataset')}")
    return notes
