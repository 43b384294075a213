"""The distortion registry: registration, look-up by spec string, listing, and plug-ins.

Families register their members where they are defined (``@register_distortion("power", ...)``); look-ups
go through :func:`get_distortion`, which takes a spec string ``NAME[:KEY=VALUE,...]``. Third-party packages
add distortions through the entry-point group ``robustbench_w.distortions`` (an entry point names a module
that registers on import, or a :class:`DistortionDef`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidValueError
from ..registry import Registry
from .base import Distortion, DistortionDef, DistortionInfo, Fn, Inplace
from .spec import parse_spec

ENTRY_POINT_GROUP = "robustbench_w.distortions"

DISTORTIONS: Registry[DistortionDef] = Registry("distortion", DistortionDef)


def register_distortion(name: str, *, inplace: Inplace | None = None, **info) -> Callable[[Fn], Fn]:
    """Decorator: register ``fn`` as distortion ``name`` with the metadata in ``info`` (see DistortionInfo),
    and optionally ``inplace``, the same arithmetic written into a given tensor (see :mod:`.base`)."""

    def decorate(fn: Fn) -> Fn:
        aliases = tuple(a.lower() for a in info.pop("aliases", ()))
        meta = DistortionInfo(name=name.lower(), aliases=aliases, **info)
        DISTORTIONS.register(meta.name, DistortionDef(meta, fn, inplace), aliases=aliases)
        return fn

    return decorate


def get_distortion(spec: str | Distortion, **options) -> Distortion:
    """A distortion by spec string (``"noise"``, ``"power:beta=0.5"``, ``"quantize:granularity=channel"``)."""
    if isinstance(spec, Distortion):
        return spec
    name, opts = parse_spec(spec)
    opts.update(options)
    definition = DISTORTIONS.get(name)
    return _bind(definition, opts)


def _bind(definition: DistortionDef, opts: dict[str, str]) -> Distortion:
    info = definition.info
    scale = opts.pop("scale", "max")
    granularity = opts.pop("granularity", "tensor")
    fixed = None
    if info.strength is not None and info.strength in opts:
        raw = opts.pop(info.strength)
        try:
            fixed = float(raw)
        except ValueError:
            raise InvalidValueError(f"{info.name}: {info.strength}={raw!r} is not a number") from None
    if opts:
        keys = ["scale", "granularity"] + ([info.strength] if info.strength else [])
        raise InvalidValueError(
            f"{info.name}: unknown option {next(iter(opts))!r} (options: {', '.join(keys)})"
        )
    return Distortion(definition, scale=str(scale).lower(), granularity=str(granularity).lower(), fixed_strength=fixed)


def list_distortions(include: str | None = None, exclude: str | None = None) -> list[DistortionInfo]:
    """Metadata of every registered distortion, sorted by name, filtered by wildcards."""
    return [DISTORTIONS.get(n).info for n in DISTORTIONS.names(include, exclude)]


DISTORTIONS.load_entry_points(ENTRY_POINT_GROUP)
