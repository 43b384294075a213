"""Per-layer sweeps: which units are distorted one at a time, their points, and how each is evaluated.

A per-layer sweep distorts one **unit** at a time and leaves every other tensor clean. A unit is one targeted
tensor (named by the tensor, ``features.0.weight``), or a group of them given with ``--groups GLOB=NAME``
(named ``NAME``: a block, an attention layer):

- a tensor that no group matches stays a unit of its own;
- several ``GLOB=NAME`` with the same ``NAME`` make one unit (the union of what they match);
- a tensor that two different groups match, a group that matches no targeted tensor, and a group named like an
  ungrouped tensor are usage errors (exit 2).

Units come in the model's order (of their first tensor), and the points unit by unit: every point of the
whole-model grid (distortion x strength x trial) for the first unit, then for the next. A tensor's random
draws are seeded by its own name (:mod:`.seeding`), so the noise a unit gets at a point is exactly the noise
its tensors get at that point of a whole-model sweep with the same seed: the two can be compared.

Where the model is a chain of modules, each unit's points run only the suffix of the chain from the unit on,
on the clean activations in front of it, computed once (:mod:`.activations`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from torch import nn

from ...errors import InvalidValueError
from ..passes.activations import ChainCache, chain_of
from ..passes.stacks import StackCache, check_suffix, find_stack, stack_candidates
from .perturb import WeightPatch

Group = tuple[str, str]  # (glob on tensor names, unit name)


@dataclass(frozen=True)
class Unit:
    """What one per-layer point distorts: a name and the tensors (targeted parameter names) it holds."""

    name: str
    tensors: tuple[str, ...]

    @property
    def text(self) -> str:
        """``1.weight`` for a tensor of its own, ``hidden=1.weight+3.weight`` for a group."""
        return self.name if self.tensors == (self.name,) else f"{self.name}={'+'.join(self.tensors)}"


@dataclass(frozen=True)
class LayerPlan:
    """How to sweep per layer: the groups, whether to reuse clean activations, and their budget in bytes (None:
    :data:`.activations.ACTIVATION_BUDGET`, at most a quarter of a GPU's free memory)."""

    groups: tuple[Group, ...] = ()
    reuse: bool = True
    budget: int | None = None
    auto: bool = False  # --groups auto: one unit per block of the model's stack of blocks

    def groups_for(self, module: nn.Module, targets: Sequence[str]) -> tuple[Group, ...]:
        """The groups, or with ``auto`` one per block of the longest ``nn.ModuleList`` holding targets (none
        where there is no such list: every tensor is a unit)."""
        return block_groups(module, targets) if self.auto else self.groups


def block_groups(module: nn.Module, targets: Sequence[str]) -> tuple[Group, ...]:
    best: tuple[Group, ...] = ()
    for name, blocks in stack_candidates(module):
        lead = f"{name}." if name else ""
        found = tuple((f"{lead}{i}.*", f"{lead}{i}") for i in range(len(blocks))
                      if any(t.startswith(f"{lead}{i}.") for t in targets))
        if len(found) > len(best):
            best = found
    return best


def is_auto(groups: object) -> bool:
    """Whether ``groups`` says ``auto`` (the string, or a list of just it)."""
    items = [groups] if isinstance(groups, str) else list(groups) if isinstance(groups, (list, tuple)) else []
    return [str(g).strip().lower() for g in items] == ["auto"]


def parse_groups(groups: Iterable[str] | Mapping[str, str] | None) -> tuple[Group, ...]:
    """``GLOB=NAME`` strings (or a ``{glob: name}`` mapping) as ``(glob, name)`` pairs."""
    if groups is None:
        return ()
    if isinstance(groups, Mapping):
        pairs = [(str(g), str(n)) for g, n in groups.items()]
    else:
        pairs = []
        for text in [groups] if isinstance(groups, str) else groups:
            glob, eq, name = str(text).rpartition("=")
            if not eq or not glob.strip() or not name.strip():
                raise InvalidValueError(f"--groups {text!r}: give GLOB=NAME (for example 'layer1.*=layer1')")
            pairs.append((glob.strip(), name.strip()))
    for glob, name in pairs:
        if not glob or not name:
            raise InvalidValueError(f"--groups {glob}={name}: give GLOB=NAME (for example 'layer1.*=layer1')")
    return tuple(pairs)


def plan_units(targets: Sequence[str], groups: Sequence[Group] = ()) -> list[Unit]:
    """The units of a per-layer sweep over the targeted tensors ``targets`` (see the module docstring)."""
    owner: dict[str, str] = {}
    for glob, name in groups:
        matched = [t for t in targets if fnmatch.fnmatchcase(t, glob)]
        if not matched:
            raise InvalidValueError(f"--groups {glob}={name}: {glob!r} matches no targeted tensor "
                                    f"(targets: {_listing(targets)})")
        for t in matched:
            if owner.setdefault(t, name) != name:
                raise InvalidValueError(f"--groups: {t} is in two groups, {owner[t]} and {name}; a tensor can "
                                        f"belong to one group only")
    names = {name for _, name in groups}
    clash = [t for t in targets if t not in owner and t in names]
    if clash:
        raise InvalidValueError(f"--groups: the group name {clash[0]} is also an ungrouped tensor's; name the "
                                f"group otherwise")
    units: dict[str, list[str]] = {}
    for t in targets:
        units.setdefault(owner.get(t, t), []).append(t)
    return [Unit(name, tuple(tensors)) for name, tensors in units.items()]


def _listing(names: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def per_layer_points(points: Sequence, units: Sequence[Unit]) -> list:
    """Every point for every unit, unit by unit (the point's ``layer`` names the unit)."""
    return [replace(p, layer=u.name) for u in units for p in points]


class LayerRunner:
    """The units of a per-layer sweep with their patches (views of the sweep's pristine copy), and the chain
    cache that lets a unit's points run only the suffix of the model (when the model is a chain and
    ``plan.reuse``)."""

    def __init__(self, units: Sequence[Unit], patch: WeightPatch, module: nn.Module, plan: LayerPlan):
        self.units = {u.name: u for u in units}
        self.plan, self.patch = plan, patch
        self._patches: dict[str, WeightPatch] = {}
        self.module = module
        self.chain = plan.reuse and chain_of(module) is not None
        self.cache: ChainCache | StackCache | None = None
        self.stack: str | None = None  # the stack of blocks reused (its name), or why none (see _attach_stack)
        self.evaluator = None  # bound by attach()
        self.reused: dict[str, int] = {}  # unit -> index of the first module of its suffix
        self.naive: dict[str, str] = {}  # unit -> why it ran the whole model

    def attach(self, evaluator) -> None:
        """Bind the evaluator whose passes the chain cache shortens (its batches are the cached inputs)."""
        self.evaluator = evaluator
        if self.chain:
            self.cache = ChainCache(self.module, evaluator.batches, evaluator.device, evaluator.n, self.plan.budget,
                                    arithmetic=evaluator.arithmetic, forward=evaluator.forward)
        elif self.plan.reuse:
            self._attach_stack(evaluator)

    def _attach_stack(self, evaluator) -> None:
        """A stack of blocks traced on the first batch and checked (:mod:`.stacks`), or why not in ``stack``."""
        x, _ = next(iter(evaluator.batches))
        found = find_stack(self.module, x)
        if isinstance(found, str):
            self.stack = found
            return
        cache = StackCache(self.module, found[0], found[1], evaluator.batches, evaluator.device, evaluator.n,
                           self.plan.budget, arithmetic=evaluator.arithmetic)
        wrong = check_suffix(cache, x, lambda raw: evaluator.task.plan.reduce(raw, x))
        self.stack, self.cache = (wrong, None) if wrong else (found[0], cache)

    def patch_of(self, layer: str) -> WeightPatch:
        if layer not in self._patches:
            self._patches[layer] = self.patch.subset(self.units[layer].tensors)
        return self._patches[layer]

    @contextmanager
    def suffix(self, layer: str) -> Iterator[None]:
        """For the block, the evaluator's passes run the unit's suffix on the cached clean activations in front
        of it, where the chain cache can give them; otherwise the whole model (the naive path)."""
        start, why = self._start(layer)
        if start is None:
            self.naive.setdefault(layer, why)
            yield
            return
        self.reused[layer] = start
        self.evaluator.suffix = self.cache.forward
        try:
            yield
        finally:
            self.evaluator.suffix = None

    def _start(self, layer: str) -> tuple[int | None, str]:
        if self.cache is None:
            return None, "off" if not self.plan.reuse else "not a chain of modules"
        start = self.cache.start_of(self.units[layer].tensors)
        where = "chain's modules" if self.chain else "stack's blocks"
        if start is None:
            return None, f"a tensor outside the {where}"
        if start == 0:
            return None, f"first {'module of the chain' if self.chain else 'block of the stack'}"
        ready = self.cache.prepare(start)
        return (start, "") if ready is True else (None, ready)

    def meta(self) -> dict:
        """What a result file says about the units and the activation reuse."""
        units, params = list(self.units.values()), dict(self.patch.targets)
        stacked = isinstance(self.cache, StackCache)
        reuse = {"enabled": self.plan.reuse, "chain": chain_of(self.module) is not None,
                 "stack": self.stack if stacked else None, **({} if stacked or self.stack is None
                                                             else {"stack_reason": self.stack}),
                 "budget_bytes": None if self.cache is None else self.cache.budget,
                 "reused": dict(self.reused), "naive": dict(self.naive)}
        return {"per_layer": True, "units": [u.text for u in units],
                "unit_weights": {u.name: sum(params[t].numel() for t in u.tensors) for u in units},
                "groups": [f"{g}={n}" for g, n in self.plan.groups], "activation_reuse": reuse}
