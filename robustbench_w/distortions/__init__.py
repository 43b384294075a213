"""Distortions of weight tensors (wing ``distortions``): one family per file, registered by name.

In: a spec string ``NAME[:KEY=VALUE,...]`` (``"noise"``, ``"power:beta=0.5"``). Out: a :class:`Distortion`,
a pure function ``(tensor, strength, generator) -> tensor`` with frozen metadata (formula, valid strengths,
default grid, identity point, values). :mod:`.base` is the contract, :mod:`.catalog` the registry; the
families register on import::

    @register_distortion("power", strength="beta", valid=Range(0), grid=(...), identity=1.0, ...)
    def power(w, beta, a, generator): ...

A family may register an in-place form beside a pure function (``inplace=``): the same arithmetic written
into a given tensor, which the sweep engine uses to write straight into the weights (:mod:`.scratch` lends
it work buffers). Third-party packages add distortions through the entry-point group
``robustbench_w.distortions``.
"""

from . import faults, noise, pcm, projections, quantize  # noqa: F401  (the built-in families register on import)
from .base import Distortion, DistortionDef, DistortionInfo, Option, Range
from .catalog import DISTORTIONS, ENTRY_POINT_GROUP, get_distortion, list_distortions, register_distortion
from .spec import parse_spec

__all__ = [
    "DISTORTIONS",
    "ENTRY_POINT_GROUP",
    "Distortion",
    "DistortionDef",
    "DistortionInfo",
    "Option",
    "Range",
    "get_distortion",
    "list_distortions",
    "parse_spec",
    "register_distortion",
]
