"""Composed distortions: a spec ``A+B+...`` applies its parts in order to the same tensor.

``quantize:bits=4+pcm`` quantizes each weight, then maps the quantized weights to PCM conductances. The
sweep's strength goes to the **last part that takes one** (``pcm``'s ``t`` there); every other part that takes
a strength has it in the spec (``quantize:bits=4``). A :class:`Chain` offers what a :class:`Distortion` offers
(canonical spec, strengths, identity, randomness, discreteness), derived from its parts:

- spec: the parts' canonical specs joined by ``+`` (so seeds do not depend on how a part was spelled);
- identity at a strength: every part is the identity at its strength;
- random at a strength: some part is random at its strength (all parts draw from one generator, in order);
- discrete at a strength (effective bits exact): some part is discrete there and every part after it that is
  not the identity is deterministic (an elementwise map of few values gives few values);
- scale: the first part gets the scale computed from the pristine tensor; each later part computes its own
  from the values it receives (a hardware part maps what the parts before it produced).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import cached_property

from ..errors import InvalidValueError
from ..registry import LazyModule
from .base import Distortion, DistortionInfo, Writer
from .scratch import Scratch

torch = LazyModule("torch")  # imported at the first tensor operation, not at registration

_SPLIT = re.compile(r"(?<![0-9.][eE])\+")  # every '+' but an exponent's (1e+5)


def split_chain(spec: str) -> list[str]:
    """The parts of a spec ``A+B+...`` (one part for a plain spec); an empty part is an error."""
    parts = _SPLIT.split(spec)
    if len(parts) > 1 and not all(p.strip() for p in parts):
        raise InvalidValueError(f"empty part in the chain {spec!r}")
    return parts


@dataclass(frozen=True)
class Chain:
    """Distortions applied one after the other; the strength goes to part :attr:`swept` (see the module)."""

    parts: tuple[Distortion, ...]

    def __post_init__(self) -> None:
        open_parts = [i for i, p in enumerate(self.parts) if not p.info.parameterless and p.fixed_strength is None]
        for i in open_parts[:-1]:
            part = self.parts[i]
            raise InvalidValueError(f"part {i + 1} of {self.spec!r} ({part.name}) needs its {part.info.strength} "
                                    f"in the spec ({part.name}:{part.info.strength}=...): the sweep's strength "
                                    f"goes to one part only")

    @cached_property
    def swept(self) -> int | None:
        """The index of the part that takes the sweep's strength: the one whose strength the spec leaves open,
        else the last that takes one (None: no part takes one)."""
        takes = [i for i, p in enumerate(self.parts) if not p.info.parameterless]
        open_parts = [i for i in takes if self.parts[i].fixed_strength is None]
        return open_parts[-1] if open_parts else (takes[-1] if takes else None)

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.parts)

    @cached_property
    def spec(self) -> str:
        return "+".join(p.spec for p in self.parts)

    @cached_property
    def info(self) -> DistortionInfo:
        """Metadata of the whole chain: the strength, range and grid of the swept part, the rest derived."""
        last = self.parts[-1].info if self.swept is None else self.parts[self.swept].info
        formula = " then ".join(f"{p.spec}: {p.info.formula}" for p in self.parts)
        refs = "; ".join(dict.fromkeys(p.info.reference for p in self.parts))
        ident = last.identity if self.swept is not None and self._rest_identity() else None
        return DistortionInfo(name=self.name, formula=formula, values=self.parts[-1].info.values, reference=refs,
                              family="chain", strength=last.strength, valid=last.valid, grid=last.grid,
                              identity=ident, random=any(p.info.random for p in self.parts),
                              discrete_when=self.is_discrete_at)

    def _rest_identity(self) -> bool:
        return all(p.is_identity(self._strength_of(i, math.nan)) for i, p in enumerate(self.parts) if i != self.swept)

    @property
    def scale(self) -> str:
        return self.parts[0].scale

    @property
    def granularity(self) -> str:
        return self.parts[0].granularity

    @property
    def fixed_strength(self) -> float | None:
        return None if self.swept is None else self.parts[self.swept].fixed_strength

    def with_strength(self, strength: float | None) -> Chain:
        if self.swept is None:
            return self
        parts = list(self.parts)
        parts[self.swept] = parts[self.swept].with_strength(strength)
        return replace(self, parts=tuple(parts))

    def strengths(self, override: tuple[float, ...] | list[float] | None = None) -> list[float]:
        return [math.nan] if self.swept is None else self.parts[self.swept].strengths(override)

    def one_strength(self, where: str = "") -> None:
        """Refuse a part's list form where one strength is needed (see :meth:`Distortion.one_strength`)."""
        for part in self.parts:
            part.one_strength(where)

    def no_strength(self, given: str) -> InvalidValueError:
        return InvalidValueError(f"{self.name} takes no strength (got {given}): leave the strength out")

    def check_strength(self, strength: float) -> None:
        if self.swept is not None:
            self.parts[self.swept].check_strength(strength)

    def _strength_of(self, i: int, strength: float) -> float:
        """Part ``i``'s strength when the chain's is ``strength``."""
        part = self.parts[i]
        if i == self.swept and not math.isnan(strength):
            return strength
        return part.fixed_strength if part.fixed_strength is not None else math.nan

    def _at(self, strength: float | None) -> list[float]:
        s = math.nan if strength is None else strength
        return [self._strength_of(i, s) for i in range(len(self.parts))]

    def is_identity(self, strength: float) -> bool:
        return all(p.is_identity(s) for p, s in zip(self.parts, self._at(strength)))

    def is_random_at(self, strength: float) -> bool:
        return any(p.is_random_at(s) for p, s in zip(self.parts, self._at(strength)))

    def is_discrete_at(self, strength: float) -> bool:
        discrete = False
        for p, s in zip(self.parts, self._at(strength)):
            if p.is_identity(s):
                continue
            discrete = p.is_discrete_at(s) or (discrete and not p.is_random_at(s))
        return discrete

    def scale_of(self, w: torch.Tensor) -> torch.Tensor:
        return self.parts[0].scale_of(w)

    def __call__(self, w: torch.Tensor, strength: float | None = None, generator: torch.Generator | None = None,
                 scale: torch.Tensor | None = None) -> torch.Tensor:
        """Each part applied to what the one before it gave (see the module); ``w`` is not changed."""
        if strength is None:
            strength = self.fixed_strength if self.fixed_strength is not None else math.nan
        self.check_strength(strength)
        x = w
        for i, (part, s) in enumerate(zip(self.parts, self._at(strength))):
            x = part(x, s, generator, scale=scale if i == 0 else None)
        return x

    def writer(self, out: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None = None) -> Writer:
        """The chain's value of ``w`` copied into ``out`` (parts have no common in-place form)."""
        def copy_chain(strength: float, generator: torch.Generator | None, scratch: Scratch) -> None:
            out.copy_(self(w, strength, generator, scale))
        return copy_chain

    def write(self, out: torch.Tensor, w: torch.Tensor, strength: float | None = None,
              generator: torch.Generator | None = None, scale: torch.Tensor | None = None,
              scratch: Scratch | None = None) -> None:
        out.copy_(self(w, strength, generator, scale))
