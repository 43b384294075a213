"""The distortion registry: registration, look-up by spec string, listing, and plug-ins.

Families register their members where they are defined (``@register_distortion("power", ...)``); look-ups
go through :func:`get_distortion`, which takes a spec string ``NAME[:KEY=VALUE,...]``. Third-party packages
add distortions through the entry-point group ``robustbench_w.distortions`` (an entry point names a module
that registers on import, or a :class:`DistortionDef`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidValueError, UnknownNameError
from ..registry import Registry
from .base import Distortion, DistortionDef, DistortionInfo, Fn, Inplace
from .chain import Chain, split_chain
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


def get_distortion(spec: str | Distortion | Chain, **options) -> Distortion | Chain:
    """A distortion by spec string (``"noise"``, ``"power:beta=0.5"``, ``"quantize:granularity=channel"``), or a
    chain of them (``"quantize:bits=4+pcm"``, :mod:`.chain`); an error in a part of a chain names the part."""
    if isinstance(spec, (Distortion, Chain)):
        return spec
    parts = split_chain(spec)
    if len(parts) == 1:
        return _one(spec, options)
    return Chain(tuple(_part(i, part, spec, options) for i, part in enumerate(parts)))


def _part(i: int, part: str, spec: str, options: dict) -> Distortion:
    try:
        return _one(part, dict(options))
    except (InvalidValueError, UnknownNameError) as exc:
        raise type(exc)(f"part {i + 1} of {spec!r} ({part.strip()!r}): {exc}") from None


def _one(spec: str, options: dict) -> Distortion:
    name, opts = parse_spec(spec)
    opts.update(options)
    definition = DISTORTIONS.get(name)
    return _bind(definition, opts)


def _bind(definition: DistortionDef, opts: dict[str, str]) -> Distortion:
    info = definition.info
    scale = opts.pop("scale", "max")
    granularity = opts.pop("granularity", "tensor")
    fixed, grid = None, None
    if info.strength is not None and info.strength in opts:
        raw = opts.pop(info.strength)
        values = _numbers(info, raw)
        fixed, grid = (values[0], None) if "/" not in raw else (None, values)
    own = _own_options(info, opts)
    if opts:
        keys = ["scale", "granularity"] + ([info.strength] if info.strength else []) + [o.name for o in info.options]
        raise InvalidValueError(
            f"{info.name}: unknown option {next(iter(opts))!r} (options: {', '.join(keys)})"
        )
    return Distortion(definition, scale=str(scale).lower(), granularity=str(granularity).lower(), fixed_strength=fixed,
                      options=own, grid=grid)


def _own_options(info: DistortionInfo, opts: dict[str, str]) -> tuple[tuple[str, str | float], ...]:
    """The distortion's own options taken from ``opts``, parsed, in the order it declares them, those equal to
    their default left out (so that the canonical spec names each setting one way)."""
    own = []
    for option in info.options:
        if option.name in opts:
            value = option.parse(info.name, opts.pop(option.name))
            if value != option.default:
                own.append((option.name, value))
    return tuple(own)


def _numbers(info: DistortionInfo, raw: str) -> tuple[float, ...]:
    """The strength in a spec: one number (``sigma=0.1``) or the list form ``sigma=0/0.01/0.05``, this
    distortion's own grid."""
    try:
        return tuple(float(v) for v in raw.split("/"))
    except ValueError:
        raise InvalidValueError(f"{info.name}: {info.strength}={raw!r} is not a number or a list of numbers "
                                f"separated by / ({info.strength}=0/0.01/0.05)") from None


def list_distortions(include: str | None = None, exclude: str | None = None) -> list[DistortionInfo]:
    """Metadata of every registered distortion, sorted by name, filtered by wildcards."""
    return [DISTORTIONS.get(n).info for n in DISTORTIONS.names(include, exclude)]


DISTORTIONS.load_entry_points(ENTRY_POINT_GROUP)
