"""The distortion contract: frozen metadata, the arithmetic, and one checked entry point.

A distortion's arithmetic is a pure function ``fn(w, strength, scale, generator) -> Tensor`` that sees a
2-D view of the weight tensor, one row per scale group (a single row for ``granularity=tensor``, one row
per output channel for ``granularity=channel``), and ``scale`` of shape ``(rows, 1)``. Everything else -
validating the strength, computing the scale, the identity shortcut, dtypes and shapes - is done once,
here, in :meth:`Distortion.__call__`.

A distortion may also offer an in-place form of the same arithmetic, ``inplace(out, w, strength, scale,
generator, scratch)``, which writes the result into ``out`` (a 2-D view of the destination, shaped like
``w``) drawing random numbers straight into it and taking any intermediate room from a
:class:`~.scratch.Scratch`. It must give bit for bit what the pure function gives for the same generator
state (a test checks this for every distortion that has one). It returns ``None``, or, where it has it
for free, the norm of the change it made, ``||out - w||`` as a 0-d tensor: an additive form knows the norm
of what it adds before adding it, which differs from the norm of the stored difference only by the
rounding of that last addition (at most ``2^-24 * ||out||`` in float32). The sweep engine writes distorted
weights through :meth:`Distortion.writer`, which uses the in-place form where there is one and the tensors
allow it (contiguous float32/float64), and otherwise the pure function and one copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

from ..errors import InvalidValueError
from ..registry import LazyModule
from .scale import GRANULARITIES, SCALE_RULES, scale_of
from .scratch import Scratch

torch = LazyModule("torch")  # imported at the first tensor operation, not at registration

Fn = Callable[["torch.Tensor", float, "torch.Tensor", "torch.Generator | None"], "torch.Tensor"]
# (out, w, strength, scale, generator, scratch) -> None: writes fn(w, strength, scale, generator) into out
Inplace = Callable[["torch.Tensor", "torch.Tensor", float, "torch.Tensor", "torch.Generator | None", Scratch],
                   "torch.Tensor | None"]
# (strength, generator, scratch) -> None, or ||out - w|| where the in-place form has it (see above)
Writer = Callable[[float, "torch.Generator | None", Scratch], "torch.Tensor | None"]


def in_place_dtype(dtype: torch.dtype) -> bool:
    """Whether the pure arithmetic works on a tensor of ``dtype`` in its own dtype (float32, float64)."""
    return dtype in (torch.float32, torch.float64)


@dataclass(frozen=True)
class Range:
    """An interval of valid strengths, closed unless a side is marked open."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def __contains__(self, x: float) -> bool:
        if math.isnan(x) or (self.integer and math.isfinite(x) and x != int(x)):
            return False
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    def __str__(self) -> str:
        lo = "(" if self.low_open or self.low == -math.inf else "["
        hi = ")" if self.high_open or self.high == math.inf else "]"
        text = f"{lo}{_num(self.low)}, {_num(self.high)}{hi}"
        return f"{text} (integers)" if self.integer else text


def _num(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


@dataclass(frozen=True)
class Option:
    """A distortion's own option (``pcm:compensate=none``): its name, its default and either its choices or,
    for a number, its valid range. The arithmetic receives every option as a keyword argument."""

    name: str
    default: str | float
    choices: tuple[str, ...] = ()
    valid: Range | None = None  # a number option
    help: str = ""

    def parse(self, owner: str, raw: str) -> str | float:
        """The value of ``raw`` (a choice, lower-cased, or a number in range); a bad one is a usage error."""
        if self.valid is None:
            value = raw.strip().lower()
            if value not in self.choices:
                raise InvalidValueError(f"{owner}: {self.name} must be one of {', '.join(self.choices)}, not {raw!r}")
            return value
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if number not in self.valid:
            raise InvalidValueError(f"{owner}: {self.name}={raw!r} is not a number in {self.valid}")
        return number

    def describe(self) -> str:
        shown = "|".join(self.choices) if self.valid is None else f"number in {self.valid}"
        return f"{self.name}={shown} (default {self.default:g})" if isinstance(self.default, float) else \
            f"{self.name}={shown} (default {self.default})"


@dataclass(frozen=True)
class DistortionInfo:
    """Frozen metadata of one registered distortion."""

    name: str
    formula: str
    values: str  # the set the outputs lie in, as text ("{-a, +a}", "real", ...)
    reference: str
    family: str = ""
    aliases: tuple[str, ...] = ()
    strength: str | None = None  # name of the strength parameter; None: the distortion has none
    valid: Range = field(default_factory=Range)
    grid: tuple[float, ...] = ()  # default strength grid
    identity: float | None = None  # strength at which the output equals the input, if any
    random: bool = False
    discrete: bool = False  # outputs take few distinct values at every strength (effective bits are exact)
    # discrete only at some strengths (power at beta = 0 is sign): a predicate of the strength, or None
    discrete_when: Callable[[float], bool] | None = None
    # at most this many distinct values per scale group: a number, a function of the strength, or None
    max_values: int | Callable[[float], int] | None = None
    native_dtype: bool = False  # arithmetic on the tensor's own dtype (else half types compute in float32)
    options: tuple[Option, ...] = ()  # the distortion's own options, passed to its arithmetic by keyword

    @property
    def parameterless(self) -> bool:
        return self.strength is None

    def is_discrete(self, strength: float) -> bool:
        """Whether the outputs at this strength take few distinct values per scale group (exact bits)."""
        return self.discrete or (self.discrete_when is not None and bool(self.discrete_when(strength)))

    def value_bound(self, strength: float) -> int | None:
        """At most how many distinct values one scale group has after the distortion (None: no bound)."""
        return self.max_values(strength) if callable(self.max_values) else self.max_values


@dataclass(frozen=True)
class DistortionDef:
    """A registered distortion: its metadata, its arithmetic and, optionally, the same arithmetic in place."""

    info: DistortionInfo
    fn: Fn
    inplace: Inplace | None = None

    def bind(self, scale: str = "max", granularity: str = "tensor") -> Distortion:
        return Distortion(self, scale=scale, granularity=granularity)


@dataclass(frozen=True)
class Distortion:
    """A distortion with its options fixed (scale rule, granularity, optionally a fixed strength or its own grid
    of strengths, the spec's list form ``noise:sigma=0/0.01/0.05``)."""

    definition: DistortionDef
    scale: str = "max"
    granularity: str = "tensor"
    fixed_strength: float | None = None
    options: tuple[tuple[str, str | float], ...] = ()  # the distortion's own options that differ from their defaults
    grid: tuple[float, ...] | None = None  # the spec's own strengths (not part of :attr:`spec`: rows carry them)

    def __post_init__(self) -> None:
        if self.scale not in SCALE_RULES:
            raise InvalidValueError(f"scale must be one of {', '.join(SCALE_RULES)}, not {self.scale!r}")
        if self.granularity not in GRANULARITIES:
            raise InvalidValueError(
                f"granularity must be one of {', '.join(GRANULARITIES)}, not {self.granularity!r}"
            )
        if self.fixed_strength is not None:
            self.check_strength(self.fixed_strength)
        for s in self.grid or ():
            self.check_strength(s)

    @property
    def info(self) -> DistortionInfo:
        return self.definition.info

    @property
    def name(self) -> str:
        return self.info.name

    @cached_property
    def spec(self) -> str:
        """Canonical spec string: the name plus every option that differs from its default (computed once: the
        options are frozen)."""
        opts = []
        if self.scale != "max":
            opts.append(f"scale={self.scale}")
        if self.granularity != "tensor":
            opts.append(f"granularity={self.granularity}")
        opts.extend(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.options)
        if self.fixed_strength is not None:
            opts.append(f"{self.info.strength}={self.fixed_strength:g}")
        return self.name + (":" + ",".join(opts) if opts else "")

    @cached_property
    def keywords(self) -> dict[str, str | float]:
        """Every option of the distortion's own, with its value (the default where not given)."""
        given = dict(self.options)
        return {o.name: given.get(o.name, o.default) for o in self.info.options}

    def with_strength(self, strength: float | None) -> Distortion:
        return replace(self, fixed_strength=strength, grid=None)

    def one_strength(self, where: str = "") -> None:
        """Refuse the list form where one strength is needed (``bits -d``, a gate requirement, a projection)."""
        if self.grid is not None:
            raise InvalidValueError(f"{where + ': ' if where else ''}{self.name} takes one {self.info.strength} here, not a list "
                                    f"({'/'.join(f'{s:g}' for s in self.grid)})")

    def strengths(self, override: tuple[float, ...] | list[float] | None = None) -> list[float]:
        """The strengths to sweep: ``override``, else the fixed strength or the spec's own grid, else the default
        grid.

        A parameterless distortion has the single strength ``nan`` (``override`` does not apply to it); an
        ``override`` for a spec that fixes its strength or gives its own grid is an error.
        """
        if self.info.parameterless:
            return [math.nan]
        if override is not None and (self.fixed_strength is not None or self.grid is not None):
            how = "fixes" if self.grid is None else "lists its own grid of"
            raise InvalidValueError(f"{self.spec} {how} {self.info.strength}; give the strength once "
                                    f"(in the spec or with --strengths, not both)")
        if override is not None:
            values = [float(s) for s in override]
        elif self.fixed_strength is not None:
            values = [self.fixed_strength]
        elif self.grid is not None:
            values = list(self.grid)
        else:
            values = list(self.info.grid)
        for s in values:
            self.check_strength(s)
        return values

    def no_strength(self, given: str) -> InvalidValueError:
        """The error for a strength given to a parameterless distortion (the same words in every command)."""
        return InvalidValueError(f"{self.name} takes no strength (got {given}): leave the strength out")

    def check_strength(self, strength: float) -> None:
        info = self.info
        if info.parameterless:
            return
        if strength not in info.valid:
            raise InvalidValueError(
                f"{info.name}: {info.strength}={strength:g} is outside its valid range {info.valid}"
            )

    def is_identity(self, strength: float) -> bool:
        ident = self.info.identity
        return ident is not None and (strength == ident)

    def is_discrete_at(self, strength: float) -> bool:
        """Whether the outputs at this strength take few distinct values per scale group (exact bits)."""
        return self.info.is_discrete(strength)

    def is_random_at(self, strength: float) -> bool:
        """Whether the output at this strength depends on the generator."""
        return self.info.random and not self.is_identity(strength)

    def scale_of(self, w: torch.Tensor) -> torch.Tensor:
        """The scale ``a`` of ``w`` under this distortion's rule, shape ``(rows, 1)``."""
        return scale_of(rows_of(w, self.granularity), self.scale)

    def __call__(
        self,
        w: torch.Tensor,
        strength: float | None = None,
        generator: torch.Generator | None = None,
        scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return the distorted copy of ``w`` (same shape, dtype and device); ``w`` is not changed.

        ``scale`` may be passed precomputed (from :meth:`scale_of` on the undistorted tensor).
        """
        strength = self._checked(strength)
        if not self.info.parameterless and self.is_identity(strength):
            return w.detach().clone()
        if not w.is_floating_point():
            raise InvalidValueError(f"{self.name}: can only distort floating-point tensors, not {w.dtype}")
        rows = rows_of(w.detach(), self.granularity)
        native = self.info.native_dtype or in_place_dtype(rows.dtype)
        work = rows if native else rows.float()
        a = self.scale_of(w.detach()) if scale is None else scale
        a = a.to(device=work.device, dtype=work.dtype).reshape(-1, 1)
        out = self.definition.fn(work, float(strength), a, generator, **self.keywords)
        return out.to(w.dtype).reshape(w.shape)

    def can_write_in_place(self, out: torch.Tensor, w: torch.Tensor) -> bool:
        """Whether :meth:`write` uses the in-place arithmetic for these tensors: the distortion has one, and
        both tensors are contiguous, of one shape, dtype and device, float32 or float64 (any floating dtype
        for a distortion whose arithmetic works on the native dtype)."""
        return (self.definition.inplace is not None and out.shape == w.shape and out.dtype == w.dtype
                and out.device == w.device and out.is_contiguous() and w.is_contiguous()
                and (in_place_dtype(out.dtype) or self.info.native_dtype))

    def write(
        self,
        out: torch.Tensor,
        w: torch.Tensor,
        strength: float | None = None,
        generator: torch.Generator | None = None,
        scale: torch.Tensor | None = None,
        scratch: Scratch | None = None,
    ) -> None:
        """Write the distorted value of ``w`` into ``out`` (same shape, dtype and device; not overlapping ``w``):
        bit for bit ``self(w, strength, generator, scale)`` for the same generator state, without the new
        tensors. ``scratch`` lends work buffers (a fresh one is used when none is given)."""
        strength = self._checked(strength)
        if not self.info.parameterless and self.is_identity(strength):
            out.copy_(w)
        else:
            self.writer(out, w, scale)(strength, generator, Scratch() if scratch is None else scratch)

    def writer(self, out: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None = None) -> Writer:
        """:meth:`write` for one pair of tensors written again and again (the sweep engine's targets): the
        views, the scale and the choice of form are made once; the returned ``(strength, generator, scratch)``
        function writes, and returns what the in-place form returns (``None``, or the norm of the change).
        It checks nothing: the caller checks the strength once (:meth:`check_strength`) and handles the
        identity strength."""
        if not self.can_write_in_place(out, w):
            def copy_pure(strength: float, generator: torch.Generator | None, scratch: Scratch) -> None:
                out.copy_(self(w, strength, generator, scale))
            return copy_pure
        rows_out, rows_w = rows_of(out, self.granularity), rows_of(w, self.granularity)
        a = (self.scale_of(w) if scale is None else scale).to(device=out.device, dtype=out.dtype).reshape(-1, 1)
        inplace, keywords = self.definition.inplace, self.keywords

        def in_place(strength: float, generator: torch.Generator | None, scratch: Scratch) -> torch.Tensor | None:
            return inplace(rows_out, rows_w, float(strength), a, generator, scratch, **keywords)
        return in_place

    def _checked(self, strength: float | None) -> float:
        if strength is None:
            strength = self.fixed_strength if self.fixed_strength is not None else math.nan
        if not self.info.parameterless:
            if math.isnan(strength):
                raise InvalidValueError(f"{self.name}: a strength ({self.info.strength}) is required")
            self.check_strength(strength)
        return strength


def rows_of(w: torch.Tensor, granularity: str) -> torch.Tensor:
    """A 2-D view of ``w``: one row (tensor) or one row per output channel (channel)."""
    if granularity == "channel" and w.dim() >= 2:
        return w.reshape(w.shape[0], -1)
    return w.reshape(1, -1)
