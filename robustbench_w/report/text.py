"""How numbers and names read on the terminal and in Markdown: percentages, plain numbers, intervals, strengths,
names fitted to a width, lines packed to a width."""

from __future__ import annotations

import math
from collections.abc import Callable


def pct(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def num(x: float) -> str:
    """A metric's value with four significant digits (``23.41``, ``0.9987``, ``inf``); ``-`` when missing."""
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3e}" if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-4) else f"{x:.4g}"


def ci_text(low: float, high: float, fmt: Callable[[float], str] = pct) -> str:
    if any(v is None or math.isnan(v) for v in (low, high)):
        return "-"
    return f"[{fmt(low)}, {fmt(high)}]"


def strength_text(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:g}"


def shorten_name(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, keeping its distinguishing end: the dotted parts before the
    last are abbreviated from the left (``layer4.0.downsample.0.weight`` -> ``l4.0.d.0.weight``; numbers stay
    whole), and what is still too long loses its middle (``…``)."""
    if len(name) <= width:
        return name
    parts = name.split(".")
    for i in range(len(parts) - 1):
        parts[i] = _initial(parts[i])
        if len(".".join(parts)) <= width:
            return ".".join(parts)
    text = ".".join(parts)
    if len(text) <= width:
        return text
    head = max(0, (width - 1) // 3)
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _initial(part: str) -> str:
    """``layer4`` -> ``l4``, ``downsample`` -> ``d``; numbers and one-letter parts stay as they are."""
    if part.isdigit() or len(part) <= 1:
        return part
    digits = len(part) - len(part.rstrip("0123456789"))
    return part[0] + (part[-digits:] if digits else "")


def fit_names(names: list[str], width: int) -> list[str]:
    """Every name in ``width`` characters (see :func:`shorten_name`), unless two would then read the same:
    then the names are left whole (the table wraps them)."""
    short = [shorten_name(n, max(width, 1)) for n in names]
    return short if len(set(short)) == len(set(names)) else list(names)


def pack(pieces: list[str], width: int, sep: str = "; ") -> list[str]:
    """The pieces joined by ``sep`` into as few lines of at most ``width`` characters as the pieces allow
    (a piece longer than the width stands on a line of its own)."""
    lines: list[str] = []
    for piece in pieces:
        if lines and len(lines[-1]) + len(sep) + len(piece) <= width:
            lines[-1] += sep + piece
        else:
            lines.append(piece)
    return lines
