"""Where the clean weights live during a sweep: ``pristine=device|host|none`` (``--pristine``).

- ``device`` (default, :class:`.perturb.WeightPatch`): one pristine copy of every targeted tensor beside the
  model, on its device. Memory: the model plus the targeted tensors (about 2x for a model whose weights are
  its targets). Fastest: a point writes every tensor once.
- ``host`` (:class:`HostPatch`): the pristine copy lives in host memory (pinned where the model is on a GPU).
  A point stages each tensor's clean values into one device buffer (the size of the largest target), writes
  the distorted values from it, and restores each parameter by one copy from the host (asynchronous from
  pinned memory, so it overlaps the next tensor's work on the device's stream). On a CPU the host is the
  device: ``host`` is ``device``.
- ``none`` (:class:`LayerwisePatch`): no pristine copy. Layer at a time: a forward pre-hook on each module
  owning targeted weights saves its clean weights into a reused buffer (one per tensor the module holds,
  sized for the largest), writes the distorted values in place, and a forward post-hook (run also when the
  module raises) restores them. Every batch redraws the same values from the same seeds (the generator is
  reseeded per tensor and call), so the rows are identical to ``device`` mode; the extra memory is about one
  tensor, the cost is one draw of every targeted tensor per batch (and per call of a module called more than
  once per forward: shared weights and unrolled cells are distorted at every call with the same values, which
  is what ``device`` mode gives). A targeted tensor used outside its own module's call (a parent reading
  ``child.weight`` in its own arithmetic) would run clean: the first pass checks that every targeted tensor
  was written, and refuses the model naming the module otherwise.

In every mode the distorted values come from the same writers (:meth:`.Distortion.writer`) on the same clean
values with the same seeds and scales, and the weight change and effective bits are computed on the values
the model runs with; a half-precision model is distorted in float32 arithmetic and written back in its dtype
(see :mod:`.perturb`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ...distortions.base import Distortion
from ...distortions.scratch import Scratch
from ...errors import InvalidValueError
from ..defaults import PRISTINE_MODES
from .perturb import Applied, WeightPatch, _total_norm, change_norm, generators_of, norm_of
from .seeding import point_seeds, seed_spec



def check_pristine(mode: str) -> str:
    text = str(mode).strip().lower()
    if text not in PRISTINE_MODES:
        raise InvalidValueError(f"--pristine {mode!r}: choose one of {', '.join(PRISTINE_MODES)}")
    return text


def make_patch(targets: list[tuple[str, torch.Tensor]], model: nn.Module, mode: str = "device") -> WeightPatch:
    """The patch of ``targets`` (parameters of ``model``) keeping its clean values as ``mode`` says."""
    mode = check_pristine(mode)
    if mode == "none":
        return LayerwisePatch(targets, model)
    if mode == "host" and any(p.device.type != "cpu" for _, p in targets):
        return HostPatch(targets)
    return WeightPatch(targets)


class HostPatch(WeightPatch):
    """:class:`.perturb.WeightPatch` with the pristine copy in host memory and one device staging buffer."""

    mode = "host"

    def __init__(self, targets: list[tuple[str, torch.Tensor]]):
        pin = torch.cuda.is_available()
        super().__init__([])  # an empty base: the copy below goes to the host, not beside the model
        self.targets = targets
        self.pristine = {n: torch.empty(p.shape, dtype=p.dtype, pin_memory=pin).copy_(p.detach()) for n, p in targets}
        self._generators = generators_of(targets)
        self._norms = {n: norm_of(p.detach()) for n, p in targets}
        self.norm = _total_norm(list(self._norms.values()))
        self.staging = Scratch()  # one device buffer, the size of the largest target

    @property
    def clean_params(self) -> None:
        return None  # on the host: a clean rerun snapshots the model on its device (see the evaluator)

    def _staged(self, name: str, p: torch.Tensor) -> torch.Tensor:
        """The clean values of target ``name`` on its parameter's device (the staging buffer, reused)."""
        return self.staging.like(p).copy_(self.pristine[name], non_blocking=True)

    def _scale(self, dist: Distortion, name: str) -> torch.Tensor:
        key = (name, dist.scale, dist.granularity)
        if key not in self._scales:  # computed on the device, as device mode does (the same reduction)
            p = dict(self.targets)[name]
            self._scales[key] = dist.scale_of(self._staged(name, p))
        return self._scales[key]

    def write(self, dist: Distortion, strength: float, seed: int = 0, trial: int = 0, measure: bool = True) -> float:
        dist.check_strength(strength)
        if dist.is_identity(strength):
            self.restore()
            return 0.0
        norms = []
        with torch.no_grad():
            for (name, p), gen in zip(self.targets, self._seeded(seed_spec(dist), dist, strength, seed, trial)):
                scale = self._scale(dist, name)
                w = self._staged(name, p)
                norm = dist.writer(p, w, scale)(strength, gen, self.scratch)
                if measure:
                    norms.append(norm if norm is not None else change_norm(p, w, self.scratch))
        return self._relative_change(norms) if measure else math.nan

    def restore(self) -> None:
        with torch.no_grad():
            for name, p in self.targets:
                p.copy_(self.pristine[name], non_blocking=True)


class LayerwisePatch(WeightPatch):
    """The targeted parameters of ``model`` distorted layer at a time, with no pristine copy (module docstring)."""

    mode = "none"

    def __init__(self, targets: list[tuple[str, torch.Tensor]], model: nn.Module,
                 buffers: tuple[Scratch, Scratch] | None = None):
        self.targets, self.model = targets, model
        self.pristine = None  # nothing kept: a clean rerun snapshots the model (see the evaluator)
        self.scratch, self.saved = buffers or (Scratch(), Scratch())  # the writers' room; the saved clean values
        self._scales: dict[tuple[str, str, str], torch.Tensor] = {}
        self._generators = dict(zip((n for n, _ in targets), generators_of(targets)))
        self._norms = {n: norm_of(p.detach()) for n, p in targets}
        self.norm = _total_norm(list(self._norms.values()))
        self._point: tuple | None = None  # (dist, strength, seeds by name) while a point is applied
        self._active: dict[int, torch.Tensor] = {}  # id(parameter) -> its saved clean values
        self._written: set[str] = set()
        self._changes: dict[str, torch.Tensor] = {}  # target -> ||w' - w|| at the applied point
        self._owned: dict[nn.Module, list[tuple[str, torch.Tensor]]] = {}
        self._calls: list[tuple[nn.Module, torch.Tensor]] = []  # (module, parameter) distorted, innermost last

    @property
    def clean_params(self) -> None:
        return None

    def owners(self) -> dict[nn.Module, list[tuple[str, torch.Tensor]]]:
        """Each module that holds targeted parameters directly, with them (a tied tensor under every owner)."""
        by_id = {id(p): (n, p) for n, p in self.targets}
        found: dict[nn.Module, list[tuple[str, torch.Tensor]]] = {}
        for module in self.model.modules():
            for p in module._parameters.values():
                if p is not None and id(p) in by_id:
                    found.setdefault(module, []).append(by_id[id(p)])
        return found

    def _scale(self, dist: Distortion, name: str, clean: torch.Tensor) -> torch.Tensor:
        key = (name, dist.scale, dist.granularity)
        if key not in self._scales:
            self._scales[key] = dist.scale_of(clean)
        return self._scales[key]

    def _distort(self, name: str, p: torch.Tensor, slot: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Save ``p``'s clean values (buffer ``slot``) and write the point's distorted values into ``p``;
        return the saved values and what the writer returned (the norm of the change, or None)."""
        dist, strength, seeds = self._point
        clean = self.saved.like(p, slot=slot).copy_(p)
        gen = self._generators[name]
        if dist.is_random_at(strength):
            gen.manual_seed(seeds[name])
        norm = dist.writer(p, clean, self._scale(dist, name, clean))(strength, gen if dist.is_random_at(strength)
                                                                       else None, self.scratch)
        self._written.add(name)
        return clean, norm

    def _pre(self, module: nn.Module, args) -> None:
        with torch.inference_mode(False), torch.no_grad():  # buffers that outlive the pass are normal tensors
            for name, p in self._owned[module]:
                if id(p) not in self._active and any(q is p for q in module._parameters.values()):
                    clean, norm = self._distort(name, p, len(self._active))
                    if name not in self._changes:  # measured at its first write: no extra draw
                        self._changes[name] = norm if norm is not None else change_norm(p, clean, self.scratch)
                    self._active[id(p)] = clean
                    self._calls.append((module, p))

    def _post(self, module: nn.Module, args, output) -> None:
        with torch.inference_mode(False), torch.no_grad():
            while self._calls and self._calls[-1][0] is module:
                _, p = self._calls.pop()
                p.copy_(self._active.pop(id(p)))

    @contextmanager
    def applied(self, dist: Distortion, strength: float, seed: int = 0, trial: int = 0) -> Iterator[Applied]:
        """For the block, every owning module runs with its targeted weights distorted (module docstring). The
        weight change is measured at each tensor's first write in the pass and is set when the block ends."""
        dist.check_strength(strength)
        if dist.is_identity(strength):
            yield Applied(weight_change=0.0)
            return
        self._point = (dist, strength, dict(zip(self.names, point_seeds(seed, seed_spec(dist), strength, trial,
                                                                         self.names))))
        handles = self._hook()
        self._written, self._changes = set(), {}
        try:
            applied = Applied(weight_change=float("nan"))  # known once the pass has written every tensor
            yield applied
            self._check_written()
            applied.weight_change = self.change()
        finally:
            for h in handles:
                h.remove()
            self.restore()
            self._point = None

    def _hook(self) -> list:
        self._owned, self._calls, self._active = self.owners(), [], {}
        handles = []
        for module in self._owned:
            handles.append(module.register_forward_pre_hook(self._pre))
            handles.append(module.register_forward_hook(self._post, always_call=True))
        return handles

    def change(self) -> float:
        """The relative weight change of the applied point, from the norms measured at each tensor's first write."""
        return self._relative_change([self._changes[name] for name, _ in self.targets])

    def _check_written(self) -> None:
        missing = [n for n, _ in self.targets if n not in self._written]
        if missing:
            owner = next(m for m, ps in self.owners().items() if any(n == missing[0] for n, _ in ps))
            raise InvalidValueError(f"--pristine none: {missing[0]} (module {type(owner).__name__}) was not used in "
                                    f"its module's own forward, so it cannot be distorted layer at a time; use "
                                    f"--pristine device or host")

    def values_run(self) -> Iterator[torch.Tensor]:
        """Each targeted tensor with its distorted values, one at a time (restored when the next is taken)."""
        with torch.no_grad():
            for name, p in self.targets:
                clean, _ = self._distort(name, p, 0)
                try:
                    yield p
                finally:
                    p.copy_(clean)

    def write(self, dist: Distortion, strength: float, seed: int = 0, trial: int = 0, measure: bool = True) -> float:
        raise TypeError("--pristine none distorts layer at a time: use applied()")

    def restore(self) -> None:
        with torch.no_grad():
            for module, p in reversed(self._calls if self._point else []):
                p.copy_(self._active.pop(id(p)))
            self._calls, self._active = [], {}

    def subset(self, names) -> LayerwisePatch:
        wanted = set(names)
        return LayerwisePatch([(n, p) for n, p in self.targets if n in wanted], self.model,
                              (self.scratch, self.saved))
