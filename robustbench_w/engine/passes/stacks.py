"""Clean activations reused on a stack of blocks: the entries of one ``nn.ModuleList`` run in order once per
forward (GPT-2 ``transformer.h``, Llama ``model.layers``, BERT ``encoder.layer``, timm ViT ``blocks``).

**Detection.** The probe batch is traced (:func:`find_stack`): hooks record every call of every entry of every
``nn.ModuleList`` of two or more modules. A list is a stack when each entry was called exactly once, in order,
and the first input of entry ``k`` (its first positional argument, else its first keyword tensor) is the
output of entry ``k - 1`` (or that output's first element, for blocks that return tuples). The longest such list
is taken; a model without one runs the naive path, with the reason in ``meta.activation_reuse``.

**Suffix passes.** The clean output of block ``k - 1`` is computed once per batch and kept (within the
activation budget, as for chains: :mod:`.activations`). A point distorting a unit that starts at block ``k``
then runs the model with blocks ``0 .. k - 1`` skipped: each returns the kept output (their own ``forward``
is replaced for the pass), so block ``k`` gets the clean hidden states it always gets. The model's own code
around the blocks still runs (embeddings, the attention mask, position ids or rotary embeddings, the final
norm and head): block keyword inputs are therefore computed as always and passed again by the model itself.
Blocks ``0 .. k - 1`` cost nothing; everything else costs what it costs in a naive pass.

**Check.** Before a stack is used, the suffix path from its middle block is run once on the probe batch with
clean weights and must give the clean outputs bit for bit; a model whose output depends on what a skipped
block does besides its output (per-block hidden states requested as the output, a cache) fails the check
and runs the naive path (reason in meta).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn

from ...datasets.base import inputs_len
from ...load.inputs import call_model
from .activations import BoundaryCache, activation_budget


class _Stop(Exception):
    """Raised by a capture hook to end a prefix pass once the wanted block has run."""


def first_input(args: tuple, kwargs: dict) -> object:
    if args:
        return args[0]
    return next((v for v in kwargs.values() if torch.is_tensor(v)), None)


def hidden_of(output: object) -> object:
    """A block's hidden-state output: the output, or its first element (blocks returning tuples)."""
    if torch.is_tensor(output):
        return output
    if isinstance(output, (tuple, list)) and output:
        return output[0]
    return None


def stack_candidates(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 1]


def find_stack(model: nn.Module, x: object) -> tuple[str, nn.ModuleList] | str:
    """The stack of ``model`` traced on inputs ``x`` (see the module docstring): ``(name, list)``, or why none."""
    candidates = stack_candidates(model)
    if not candidates:
        return "no nn.ModuleList of blocks"
    calls: dict[str, list[tuple[int, object, object]]] = {name: [] for name, _ in candidates}
    handles = []
    for name, blocks in candidates:
        for i, block in enumerate(blocks):
            def record(module, args, kwargs, output, name=name, i=i):
                calls[name].append((i, first_input(args, kwargs), output))
            handles.append(block.register_forward_hook(record, with_kwargs=True))
    try:
        with torch.inference_mode():
            call_model(model, x)
    finally:
        for h in handles:
            h.remove()
    found = [(name, blocks) for name, blocks in candidates if _in_order(calls[name], len(blocks))]
    if not found:
        return "no nn.ModuleList whose blocks run in order once per forward, each on the previous one's output"
    return max(found, key=lambda nb: len(nb[1]))


def _in_order(calls: list[tuple[int, object, object]], n: int) -> bool:
    if [i for i, _, _ in calls] != list(range(n)):
        return False
    return all(h is not None and h is hidden_of(calls[k - 1][2]) for k, (_, h, _) in enumerate(calls) if k)


class StackCache(BoundaryCache):
    """The clean output of one block of a stack, for every batch of ``batches``; the interface of
    :class:`.activations.ChainCache` (``start_of``, ``prepare``, ``forward``, ``refused``, ``budget``)."""

    def __init__(self, model: nn.Module, name: str, blocks: nn.ModuleList, batches, device: torch.device, n: int,
                 budget: int | None = None, arithmetic: Callable[[], AbstractContextManager] = nullcontext):
        self.model, self.prefix, self.blocks, self.batches, self.n = model, name, blocks, batches, n
        self.budget = activation_budget(torch.device(device), budget)
        self.arithmetic = arithmetic
        self.at: int | None = None  # the block whose inputs the kept outputs are (the first block that runs)
        self.kept: list[object] = []
        self.refused: dict[int, str] = {}
        self.batch_size = None
        self.block_calls = 0  # forwards of blocks run (skipped ones not counted): what reuse saves

    def start_of(self, tensors: Iterable[str]) -> int | None:
        """The index of the first block holding one of ``tensors``; None when one lies outside the stack."""
        lead = f"{self.prefix}." if self.prefix else ""
        found = []
        for t in tensors:
            head, _, _ = t[len(lead):].partition(".") if t.startswith(lead) else ("", "", "")
            if not head.isdigit():
                return None
            found.append(int(head))
        return min(found) if found else None

    @contextmanager
    def skipping(self, stop: int, kept: object | None) -> Iterable[None]:
        """Blocks ``0 .. stop - 1`` return ``kept`` instead of running (nothing skipped when ``stop`` is 0)."""
        own = [block.__dict__.get("forward") for block in self.blocks[:stop]]  # an instance's own forward, if any
        for block in self.blocks[:stop]:
            block.forward = _returning(kept)
        try:
            yield
        finally:
            for block, forward in zip(self.blocks[:stop], own):
                if forward is None:
                    del block.forward
                else:
                    block.forward = forward

    def _counting(self) -> list:
        def count(module, args):
            if not getattr(module.forward, "skipped", False):
                self.block_calls += 1
        return [b.register_forward_pre_hook(count) for b in self.blocks]

    def run(self, x: object, stop: int, kept: object | None, capture: int | None = None) -> object:
        """The model on ``x`` with blocks before ``stop`` skipped; with ``capture``, block ``capture``'s output
        (the pass ends there)."""
        got = []
        handles = self._counting()
        if capture is not None:
            def grab(module, args, output):
                got.append(output)
                raise _Stop
            handles.append(self.blocks[capture].register_forward_hook(grab))
        try:
            with self.skipping(stop, kept):
                out = call_model(self.model, x)
        except _Stop:
            return got[0]
        finally:
            for h in handles:
                h.remove()
        return out

    def _compute_in(self, start: int) -> str:
        """Keep the clean output of block ``start - 1`` for every batch (see :meth:`.BoundaryCache.prepare`)."""
        base = self.at if self.at is not None and self.at < start else 0
        new = []
        for i, (x, _) in enumerate(self.batches):
            out = self.run(x, base, self.kept[i] if base else None, capture=start - 1)
            if i == 0:
                need = math.ceil(_nbytes(out) / max(inputs_len(x), 1) * self.n)
                if need > self.budget:
                    return f"activations of {need:,} bytes exceed the budget of {self.budget:,}"
                if base and need + sum(map(_nbytes, self.kept)) > self.budget:
                    self.kept, self.at, base = [], None, 0
                    out = self.run(x, 0, None, capture=start - 1)
            new.append(out)
        self.kept, self.at, self.batch_size = new, start, getattr(self.batches, "batch_size", None)
        return ""

    def forward(self, batch: int, x: object) -> object:
        """The model's output on batch ``batch``: blocks before the kept boundary skipped (the whole model where
        the batches no longer match the kept ones, after an out-of-memory halving)."""
        if self.at is not None and getattr(self.batches, "batch_size", None) != self.batch_size:
            self.kept, self.at, self.refused = [], None, {}
        if self.at is None or batch >= len(self.kept):
            return self.run(x, 0, None)
        return self.run(x, self.at, self.kept[batch])


def _returning(kept: object) -> Callable:
    def skipped(*args, **kwargs):
        return kept
    skipped.skipped = True
    return skipped


def _nbytes(obj: object) -> int:
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o) for o in obj)
    return 0


def check_suffix(cache: StackCache, x: object, reduce: Callable[[object], torch.Tensor]) -> str:
    """An empty string when the suffix path from the middle block gives the clean outputs on ``x`` bit for bit,
    else why not."""
    k = len(cache.blocks) // 2
    with torch.inference_mode(), cache.arithmetic():
        clean = reduce(cache.run(x, 0, None))
        kept = cache.run(x, 0, None, capture=k - 1)
        again = reduce(cache.run(x, k, kept))
    calls = cache.block_calls
    cache.block_calls = 0
    if not torch.equal(clean, again):
        return "skipping the blocks in front of a unit changes the clean outputs"
    return "" if calls else "the blocks did not run"
