"""One fast pass over the evaluation set: every metric of the task, reduced on the device.

A pass runs the model on each batch (:mod:`.batches` keeps them; named inputs go in as keyword arguments),
reduces its return value to the measured output (:mod:`.outputs`: ``--output-key``, ``--pool``), and lets
each metric (:mod:`.metrics`) compute per-input statistics that are summed on the device; the sums are read
once per pass. Statistics that several metrics share (``error`` and ``accuracy``) are computed once.

**Fast path.** A pass does what a plain loop does (forward, the metric's arithmetic, a sum per batch) plus
one sum of the outputs per batch. Only when that sum, or a total, is not finite is the pass redone with a
check per input: an input whose outputs (or whose clean outputs) are not all finite takes each metric's
``bad`` values: it counts as an error and never as an agreement (see :mod:`.metrics.base`).

**Clean references** (what fidelity metrics compare with) are computed on the first pass, the clean model's,
and kept on the device only in reduced form: the clean argmax for ``agreement`` and ``token-agreement``, the
per-input vectors for ``cosine``, ``relative-l2`` and ``snr-db``, the log-probabilities for ``kl``, the
measured outputs for a custom metric. They are kept when they take at most ``reference_budget`` bytes
(1 GiB); otherwise nothing is kept and each batch is run a second time with the clean weights
(``torch.func.functional_call`` with the pristine copy of the distorted tensors, so no model is copied). For
example ``kl`` on a 32k-token vocabulary over 1,000 windows of 128 tokens would need 16 GB of
log-probabilities: it reruns; ``token-agreement`` on the same set keeps 1 MB of argmaxes.

**Suffix passes.** While ``suffix`` is set (a per-layer sweep of a chain of modules, :mod:`.activations`),
batch ``i`` gives ``suffix(i, inputs)`` in place of the model's output on it: the clean activations in front
of the distorted unit, run through the rest of the chain.

**Fast paths** (:mod:`.fastpath`): every pass runs in the run's precision (:mod:`.precision`: fp32, tf32 or
bf16 autocast), through the compiled forward when ``compile`` is on, on channels-last batches when the model
was converted. The batch size is given or ``auto`` (:mod:`.batchsize`); a pass that runs out of memory halves
every batch (and splits the kept references alike) and runs again, saying so in one line.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch
from torch import nn

from ...datasets.base import EvalSet, Normalization, inputs_len, take
from ...datasets.batches import BatchedSet
from ...errors import InvalidValueError, WrobustWarning
from ...load.inputs import Probe, call_model, check_classes, probe
from .batches import PREPARE_BUDGET, Batches
from .batchsize import (
    AUTO,
    AUTO_CAP,
    CPU_BATCH,
    BatchSize,
    auto_batch_size,
    check_batch_size,
    cuda_peak,
    free_cached,
    halved_text,
    is_out_of_memory,
    too_large,
)
from .fastpath import FastPath, forward_of
from .metrics import Metric
from .outputs import Kept, View, plan_outputs
from .precision import precision_context
from .task import MetricSpec, Task, plan_task

REFERENCE_BUDGET = 1 << 30  # bytes of clean references kept on the device; beyond it, the clean model reruns
CORE = ("accuracy", "error", "loss", "agreement")


@dataclass(frozen=True)
class PassResult:
    """One pass: the number of inputs, each metric's value (by column), the inputs with non-finite outputs."""

    n: int
    values: dict[str, float] = field(default_factory=dict)
    nonfinite: int = 0

    def get(self, column: str) -> float:
        return self.values.get(column, math.nan)

    @property
    def accuracy(self) -> float:
        return self.get("accuracy")

    @property
    def error(self) -> float:
        return self.get("error")

    @property
    def loss(self) -> float:
        return self.get("loss")

    @property
    def agreement(self) -> float:
        return self.get("agreement")


class Statistics:
    """The distinct statistics of a task's metrics (shared ones once), and the guard for non-finite inputs."""

    def __init__(self, metrics: Iterable[Metric]):
        self.fns: list[Callable] = []
        self.bads: list[tuple[float | None, ...]] = []
        self.slot: dict[str, int] = {}
        self._guards: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for m in metrics:
            key = (m.stats, m.info.bad)
            found = next((i for i, k in enumerate(zip(self.fns, self.bads)) if k == key), None)
            if found is None:
                found = len(self.fns)
                self.fns.append(m.stats)
                self.bads.append(m.info.bad)
            self.slot[m.name] = found

    def guard(self, i: int, stats: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        """``stats`` with the rows of non-finite inputs (``ok`` false) replaced by the ``bad`` values."""
        if i not in self._guards:
            bad = self.bads[i]
            keep = torch.tensor([b is None for b in bad], device=stats.device)
            self._guards[i] = keep, torch.tensor([0.0 if b is None else b for b in bad], device=stats.device)
        keep, values = self._guards[i]
        if stats.dim() == 1:
            return stats if bool(keep[0]) else torch.where(ok, stats, values[0])
        return torch.where(ok.unsqueeze(1) | keep.unsqueeze(0), stats, values.unsqueeze(0))


class Evaluator:
    """Evaluates one model on one evaluation set, again and again, as its weights change."""

    def __init__(self, model: nn.Module, data: EvalSet | BatchedSet, batch_size: BatchSize = 1024,
                 device: torch.device | str = "cpu", normalization: Normalization | None = None,
                 prepare_budget: int = PREPARE_BUDGET, budget: int | None = None, *,
                 metric: MetricSpec | Iterable[MetricSpec] | None = None, extra_metrics: Iterable[MetricSpec] = (),
                 output_key: str | None = None, pool: str | None = None, hint: str | None = None,
                 name: str | None = None, fast: FastPath | None = None,
                 clean_params: dict[str, torch.Tensor] | None = None, reference_budget: int = REFERENCE_BUDGET,
                 probed: Probe | None = None, resizable: bool = False):
        self.model, self.device, self.name = model, torch.device(device), name or type(model).__name__
        self.resizable = resizable  # --num-classes can change the model's outputs (said when they do not fit)
        self.n, self.has_labels = len(data), data.has_labels
        self.fast = fast or FastPath()
        self.forward = forward_of(model, self.fast, self.device)
        requested = check_batch_size(batch_size)
        self.batches = Batches(data, self._first_size(requested), self.device, normalization, prepare_budget, budget,
                               channels_last=self.fast.channels_last)
        self.task = self._plan(data, (metric, tuple(extra_metrics)), output_key, pool, hint, probed)
        self.halvings: list[str] = []  # one line per out-of-memory halving
        if requested == AUTO and not isinstance(data, BatchedSet):
            self._fit_batches()
        self.stats = Statistics(self.task.metrics)
        self.clean_params, self.reference_budget = clean_params, reference_budget
        self.references: list[Kept] | None = None  # set by the first pass; [] when the clean model reruns
        self.clean_finite = True  # whether every clean output was finite
        self.suffix: Callable[[int, object], object] | None = None  # see "Suffix passes"
        self.widths: list[int] = []  # the number of columns of each statistic (set by the first pass)
        self.batch_hooks: list[Callable[[int], None]] = []  # called with each batch's index before it runs

    @property
    def mode(self) -> str:
        return self.batches.mode

    @property
    def batch_size(self) -> int:
        """The batch size in use (after ``auto`` and any halving)."""
        return self.batches.batch_size

    def _first_size(self, requested: BatchSize) -> int:
        """The batches the set is first cut into: the given size; for ``auto``, the CPU's default or, on a GPU,
        the cap (the measured size is reached by halving, :meth:`_fit_batches`)."""
        if requested != AUTO:
            return int(requested)
        return max(1, min(AUTO_CAP if self.device.type == "cuda" else CPU_BATCH, self.n))

    def _fit_batches(self) -> None:
        """``auto``: halve the batches until they are no larger than the size measured for this device."""
        x, _ = next(iter(self.batches))

        def peak(k: int) -> int:
            part = take(x, slice(0, min(k, inputs_len(x))))
            with torch.inference_mode(), self.arithmetic():
                return cuda_peak(self.device, lambda: call_model(self.model, part))

        size = auto_batch_size(self.device, self.n, peak)
        while self.batches.batch_size > size:
            self.batches.halve()

    @property
    def rerun(self) -> bool:
        """Whether the clean references did not fit and the clean model runs beside the distorted one."""
        return self.references == [] and bool(self.task.clean_kinds)

    def _plan(self, data, metrics: tuple, output_key: str | None, pool: str | None, hint: str | None,
              probed: Probe | None = None) -> Task:
        """Probe two inputs (or take ``probed``, the probe that ``load_inputs`` ran of this model on this set):
        choose the output, the task and its metrics, and check them (one line, exit 2)."""
        probed = probed.of(self.model, data) if probed is not None else None
        raw, x, y = (probed.raw, probed.inputs, probed.labels) if probed is not None else \
            probe(self.model, self.name, data, self.device)
        plan = plan_outputs(raw, output_key, pool, self.name)
        view = View(plan.reduce(raw, x), x, y)
        try:
            task = plan_task(view, plan, metrics[0], also=metrics[1], hint=hint, model=self.name, data=data.name)
        except InvalidValueError:  # a metric failed on outputs that do not fit the classes: say that instead
            if view.out.dim() == 2 and y is not None and not y.is_floating_point():
                check_classes(self.name, data, int(view.out.shape[1]), raw, self.resizable)
            raise
        if any(m.info.outputs == "classes" for m in task.metrics):
            check_classes(self.name, data, int(view.out.shape[1]), raw, self.resizable)
        return task

    def arithmetic(self) -> AbstractContextManager:
        """The passes' arithmetic: the run's precision on its device (:mod:`.precision`)."""
        return precision_context(self.fast.precision, self.device)

    def view(self, x, y, params: dict[str, torch.Tensor] | None = None, batch: int | None = None) -> View:
        """One batch (number ``batch``) through the model (with ``params`` in place of its own, for the clean
        rerun; through :attr:`suffix` while it is set)."""
        if params is None and self.suffix is not None and batch is not None:
            raw = self.suffix(batch, x)
        elif params is None:
            raw = call_model(self.forward, x)
        else:
            args, kwargs = ((), x) if isinstance(x, dict) else ((x,), {})
            raw = torch.func.functional_call(self.model, params, args, kwargs)
        return View(self.task.plan.reduce(raw, x), x, y)

    def _clean(self, i: int, x, y) -> object:
        """The clean reference of batch ``i``: kept, or the clean model rerun on it."""
        if not self.task.clean_kinds:
            return None
        if self.references:
            return self.references[i]
        return self.view(x, y, self.clean_params)

    @torch.inference_mode()
    def _pass(self, checked: bool) -> tuple[torch.Tensor, list[Kept]]:
        """:meth:`_totals` in the run's precision; on out-of-memory, every batch halved and the pass run again."""
        while True:
            try:
                with self.arithmetic():
                    return self._totals(checked)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; everything else goes on
                if not is_out_of_memory(exc):
                    raise
            self._halve()  # outside the except block: the failed pass's tensors are freed first

    def _halve(self) -> None:
        """Every batch split in two, the kept clean references alike; one line says so."""
        before = self.batches.batch_size
        if before <= 1:
            raise too_large(self.device)
        free_cached(self.device)
        cuts = self.batches.halve()
        if self.references:
            self.references = [part for ref, cut in zip(self.references, cuts)
                               for part in ((ref,) if cut is None else ref.split(cut))]
        self.halvings.append(halved_text(before, self.batches.batch_size, self.device))
        warnings.warn(self.halvings[-1], WrobustWarning, stacklevel=2)

    def _totals(self, checked: bool) -> tuple[torch.Tensor, list[Kept]]:
        """The totals of the pass in one float64 vector: every statistic's (in the order of ``stats.fns``, a
        statistic of ``k`` columns taking ``k`` entries), then the check: the sum of all outputs (fast pass:
        finite when every output is) or the number of inputs with non-finite outputs (checked pass); and the
        clean references (first pass; ``[]`` when they would not fit the budget). Each batch's statistics are
        summed in one reduction (:func:`batch_sums`); nothing is read from the device here."""
        first = self.references is None
        keeper = Keeper(self.task.clean_kinds if first else (), self.n, self.reference_budget)
        total = None
        for i, (x, y) in enumerate(self.batches):
            for hook in self.batch_hooks:  # per-batch redraws and converter noise (engine.weights.redraw, .converters)
                hook(i)
            view = self.view(x, y, batch=i)
            clean = view if first else self._clean(i, x, y)
            stats = [fn(view, clean) for fn in self.stats.fns]
            if checked:
                ok = view.finite if clean is None or clean is view else view.finite & clean.finite
                stats = [self.stats.guard(j, s, ok) for j, s in enumerate(stats)]
                stats.append(~ok)
            else:
                stats.append(per_input_sum(view.out))
            sums = batch_sums(stats)
            total = sums if total is None else total.add_(sums)
            keeper.add(view)
        self.widths = self.widths or [1 if s.dim() == 1 else s.shape[1] for s in stats[:-1]]
        return total, keeper.kept

    def run(self) -> PassResult:
        """One pass; the first pass is the clean model's and defines the references metrics compare with. The
        totals are read from the device once (twice when a non-finite sum calls for the checked pass)."""
        total, kept = self._pass(checked=False)
        *values, check = total.tolist()
        nonfinite = 0
        if not all(map(math.isfinite, values)) or not math.isfinite(check) or not self.clean_finite:
            total, kept = self._pass(checked=True)
            *values, bad = total.tolist()
            nonfinite = int(bad)
        if self.references is None:
            self.references = kept
            self.clean_finite = nonfinite == 0
            if self.rerun and self.clean_params is None:  # no pristine copy from a sweep: snapshot the clean weights
                self.clean_params = {k: v.detach().clone() for k, v in self.model.named_parameters()}
        return PassResult(self.n, self.finish(values, nonfinite), nonfinite)

    def finish(self, values: list[float], nonfinite: int) -> dict[str, float]:
        """Each metric's value (by column) from the totals of its statistic."""
        offsets = [0]
        for width in self.widths:
            offsets.append(offsets[-1] + width)
        out = {}
        for m in self.task.metrics:
            i = self.stats.slot[m.name]
            out[m.column] = float(m.finish(values[offsets[i]:offsets[i + 1]], self.n, nonfinite))
        return out


def per_input_sum(out: torch.Tensor) -> torch.Tensor:
    """The sum of each input's outputs ``(batch,)``: finite when all of them are (or, rarely, ``inf`` when a
    finite sum overflows: the checked pass then finds every input finite)."""
    return out.sum(dim=1) if out.dim() == 2 else out.reshape(len(out), -1).sum(dim=1)


def batch_sums(stats: list[torch.Tensor]) -> torch.Tensor:
    """The sums over one batch of per-input statistics ``(batch,)`` or ``(batch, k)``, concatenated, in float64.
    One reduction of the statistics side by side when their common dtype holds each of them exactly (booleans
    and floats, or booleans and integers); else one per statistic."""
    floats = any(s.dtype.is_floating_point for s in stats)
    integers = any(not s.dtype.is_floating_point and s.dtype != torch.bool for s in stats)
    if not (floats and integers):  # an integer beside a float would be rounded to the float's precision
        return torch.column_stack(stats).sum(dim=0, dtype=torch.float64)
    return torch.cat([s.sum(dim=0, dtype=torch.float64).reshape(-1) for s in stats])


class Keeper:
    """Collects the clean references of the first pass while the whole set's would fit ``budget`` bytes."""

    def __init__(self, kinds: tuple[str, ...], n: int, budget: int):
        self.kinds, self.n, self.budget = kinds, n, budget
        self.kept: list[Kept] = []
        self.fits = bool(kinds)

    def add(self, view: View) -> None:
        if not self.fits:
            return
        ref = Kept(view, self.kinds)
        if ref.nbytes / len(view.out) * self.n > self.budget:
            self.fits, self.kept = False, []  # too large: the clean model reruns beside the distorted one
        else:
            self.kept.append(ref)
