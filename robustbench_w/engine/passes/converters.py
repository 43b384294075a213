"""Converters around each distorted layer: DAC on its input, output noise and ADC on its output.

An analog in-memory layer receives its input through digital-to-analog converters and hands its output back
through analog-to-digital converters, with noise on the analog output in between (aihwkit's ``IOParameters``:
``inp_res``, ``out_res``, ``out_noise``; Rasch et al. 2021, AICAS; Joshi et al. 2020, Nat. Commun. 11:2473).
Forward hooks on every module that owns a targeted weight model them, in this order:

- ``--dac BITS``: the input ``x`` of the layer becomes ``q(x, r_in)``;
- ``--out-noise SIGMA``: the output ``y`` becomes ``y + N(0, SIGMA * r_out)`` (drawn for every batch, seeded from
  the run seed, the point, the batch index and the layer's name);
- ``--adc BITS``: then ``q(y, r_out)``;

with ``q(x, r) = r * clamp(round(x / r * L), -L, L) / L``, ``L = 2^(BITS-1) - 1`` (symmetric, zero a level, as
the ``quantize`` distortion). The ranges ``r_in``, ``r_out`` are each layer's largest ``|input|`` and ``|output|``
over the evaluation set in a calibration pass of the clean model without converters (``--dac-range static``,
the default), or the batch's own (``dynamic``: one range per batch and layer). The output noise and the ADC
quantize the output tensor in place (it is the layer's own fresh result); the DAC makes one new input tensor
(the layer's input may be a kept batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import InvalidValueError
from ...load.inputs import call_model
from ..defaults import CONVERTER_RANGES as RANGES
from ..defaults import CONVERTERS_APPLY as APPLY


@dataclass(frozen=True)
class ConverterSpec:
    """What ``--dac``, ``--adc``, ``--out-noise``, ``--dac-range`` and ``--converters`` asked for."""

    dac: int | None = None
    adc: int | None = None
    out_noise: float | None = None
    dac_range: str = "static"
    apply: str = "all"

    def __post_init__(self) -> None:
        for name, bits in (("dac", self.dac), ("adc", self.adc)):
            if bits is not None and not 2 <= bits <= 24:
                raise InvalidValueError(f"{name} must be a number of bits from 2 to 24, not {bits}")
        if self.out_noise is not None and not self.out_noise >= 0:
            raise InvalidValueError(f"out_noise must be at least 0, not {self.out_noise}")
        if self.dac_range not in RANGES:
            raise InvalidValueError(f"dac_range must be one of {', '.join(RANGES)}, not {self.dac_range!r}")
        if self.apply not in APPLY:
            raise InvalidValueError(f"converters must be one of {', '.join(APPLY)}, not {self.apply!r}")

    @property
    def active(self) -> bool:
        return self.dac is not None or self.adc is not None or bool(self.out_noise)

    def meta(self) -> dict:
        return {"dac": self.dac, "adc": self.adc, "out_noise": self.out_noise, "range": self.dac_range,
                "apply": self.apply}


def quantize_(x: torch.Tensor, r: torch.Tensor | float, bits: int) -> torch.Tensor:
    """``q(x, r)`` in place (see the module)."""
    levels = 2 ** (bits - 1) - 1
    return x.div_(r).mul_(levels).round_().clamp_(-levels, levels).mul_(r).div_(levels)


def owners(model: nn.Module, targets: list[str]) -> dict[str, nn.Module]:
    """The modules that own the targeted parameters, by name (the root module itself is left out)."""
    found = {}
    for name in targets:
        path = name.rpartition(".")[0]
        if path:
            found.setdefault(path, model.get_submodule(path))
    return found


class Converters:
    """The converter hooks of one model: calibrated once, attached while they apply, seeded per point."""

    def __init__(self, spec: ConverterSpec, model: nn.Module, targets: list[str], device: torch.device):
        self.spec, self.layers = spec, owners(model, targets)
        self.ranges: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.generator = torch.Generator(device=device)
        self.seeds: Callable[[int, str], int] | None = None  # (batch, layer) -> seed of the output noise
        self.batch = 0

    def calibrate(self, batches, forward: Callable, arithmetic: Callable) -> None:
        """The static ranges: each layer's largest ``|input|`` and ``|output|`` over ``batches``, clean."""
        if self.spec.dac_range != "static":
            return
        peaks: dict[str, list[torch.Tensor | None]] = {name: [None, None] for name in self.layers}

        def record(name: str) -> Callable:
            def hook(module, args, output) -> None:
                ins = [a.detach().abs().amax().float() for a in args if torch.is_tensor(a) and a.is_floating_point()]
                seen = (torch.stack(ins).amax() if ins else None, _out(output).detach().abs().amax().float())
                peaks[name] = [v if p is None else p if v is None else torch.maximum(p, v)
                               for p, v in zip(peaks[name], seen)]
            return hook

        handles = [m.register_forward_hook(record(n)) for n, m in self.layers.items()]
        try:
            with torch.inference_mode(), arithmetic():
                for x, _ in batches:
                    call_model(forward, x)
        finally:
            for h in handles:
                h.remove()
        zero = torch.zeros(())
        self.ranges = {n: tuple(_positive(zero if v is None else v) for v in p) for n, p in peaks.items()}

    def on_batch(self, i: int) -> None:
        self.batch = i

    @contextmanager
    def attached(self, seeds: Callable[[int, str], int]) -> Iterator[None]:
        """The hooks on every owning module while the block runs; ``seeds(batch, layer)`` seeds the output noise."""
        self.seeds = seeds
        handles = []
        try:
            for name, module in self.layers.items():
                if self.spec.dac is not None:
                    handles.append(module.register_forward_pre_hook(self._dac(name)))
                if self.spec.adc is not None or self.spec.out_noise:
                    handles.append(module.register_forward_hook(self._output(name)))
            yield
        finally:
            for h in handles:
                h.remove()

    def _range(self, name: str, side: int, x: torch.Tensor) -> torch.Tensor:
        if self.spec.dac_range == "dynamic":
            return _positive(x.detach().abs().amax().float())
        return self.ranges[name][side].to(x.device)

    def _dac(self, name: str) -> Callable:
        def hook(module, args):
            return tuple(quantize_(a.clone(), self._range(name, 0, a), self.spec.dac)
                         if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
        return hook

    def _output(self, name: str) -> Callable:
        def hook(module, args, output) -> None:
            y = _out(output)
            r = self._range(name, 1, y)
            if self.spec.out_noise:
                self.generator.manual_seed(self.seeds(self.batch, name))
                noise = torch.randn(y.shape, generator=self.generator, device=y.device, dtype=y.dtype)
                y.add_(noise.mul_(r * self.spec.out_noise))
            if self.spec.adc is not None:
                quantize_(y, r, self.spec.adc)
        return hook


def _out(output) -> torch.Tensor:
    """The tensor a layer returned (the first of a tuple, as ``nn.MultiheadAttention`` returns)."""
    if torch.is_tensor(output):
        return output
    if isinstance(output, (tuple, list)) and output and torch.is_tensor(output[0]):
        return output[0]
    raise InvalidValueError(f"converters: a layer returned {type(output).__name__}, not a tensor")


def _positive(r: torch.Tensor) -> torch.Tensor:
    """A range of at least the smallest normal float (a layer that only saw zeros quantizes to zero)."""
    return r.float().clamp(min=torch.finfo(torch.float32).tiny)
