"""Parsing of distortion spec strings ``NAME[:KEY=VALUE,...]``."""

from __future__ import annotations

from ..errors import InvalidValueError


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"quantize:granularity=channel,scale=mean"`` into a name and an options dict.

    Keys and the name are lower-cased; values are kept as written (stripped).
    """
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    if not name:
        raise InvalidValueError(f"empty distortion name in spec {spec!r}")
    opts: dict[str, str] = {}
    parts = [p.strip() for p in rest.split(",")] if rest.strip() else []
    if not all(parts):
        raise InvalidValueError(f"empty option in spec {spec!r} (two commas in a row, or one at an end)")
    for part in parts:
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not eq or not key or not value.strip():
            raise InvalidValueError(f"bad option {part!r} in spec {spec!r}: expected KEY=VALUE")
        if key in opts:
            raise InvalidValueError(f"option {key!r} given twice in spec {spec!r}")
        opts[key] = value.strip()
    return name, opts
