"""Typed values of a TOML table, checked one key at a time: each error names the key as a path
(``gate.require[2].strength: expected a number``) and says what was found instead.

Used by :mod:`.policy`; nothing here knows what a gate is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..errors import InvalidValueError, WrobustError


def optional(t: dict, name: str, key: str, check: Callable[[object, str], object], default: object = None):
    return check(t[name], f"{key}.{name}") if name in t else default


def as_table(value: object, key: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidValueError(f"{key}: expected a table, not {kind_of(value)}")
    return value


def no_unknown(t: dict, allowed: set[str], key: str, prefix: str = "") -> None:
    problems = unknown_keys(t, allowed, key, prefix)
    if problems:
        raise problems[0]


def unknown_keys(t: dict, allowed: set[str], key: str, prefix: str = "") -> list[InvalidValueError]:
    """One error per key of ``t`` that is not ``allowed`` (with the closest allowed key, if one is close)."""
    from ..registry import close_matches

    problems = []
    for name in t:
        if name not in allowed:
            close = close_matches(name, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = f"{key}.{name}" if key else name
            problems.append(InvalidValueError(f"{prefix}{where}: unknown key{hint} (keys: {', '.join(sorted(allowed))})"))
    return problems


def kind_of(value: object) -> str:
    names = {bool: "a boolean", str: "a string", list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def as_number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidValueError(f"{key}: expected a number, not {kind_of(value)} {value!r}")
    return float(value)


def as_integer(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValueError(f"{key}: expected an integer, not {kind_of(value)} {value!r}")
    return value


def as_count(value: object, key: str) -> int:
    n = as_integer(value, key)
    if n < 1:
        raise InvalidValueError(f"{key}: must be at least 1, not {n}")
    return n


def as_trials(value: object, key: str) -> int | str:
    """A number of trials, or ``"auto"``."""
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return "auto"
        raise InvalidValueError(f"{key}: expected an integer or \"auto\", not {value!r}")
    return as_count(value, key)


def as_fraction(value: object, key: str) -> float:
    x = as_number(value, key)
    if not 0.0 <= x <= 1.0:
        raise InvalidValueError(f"{key}: {x:g} is outside [0, 1]")
    return x


def as_string(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(f"{key}: expected a non-empty string, not {kind_of(value)} {value!r}")
    return value.strip()


def as_strings(value: object, key: str) -> list[str]:
    if isinstance(value, str):
        return [as_string(value, key)]
    if not isinstance(value, list):
        raise InvalidValueError(f"{key}: expected a string or an array of strings, not {kind_of(value)}")
    return [as_string(v, f"{key}[{i}]") for i, v in enumerate(value)]


class Problems:
    """The problems found so far; :meth:`attempt` runs one check and notes its error instead of raising."""

    def __init__(self):
        self.found: list[WrobustError] = []

    def add(self, exc: WrobustError) -> None:
        self.found.append(exc)

    def attempt(self, check, *args, default=None):
        try:
            return check(*args)
        except WrobustError as exc:
            self.add(exc)
            return default

    def raise_any(self, several: Callable[[list[WrobustError]], Exception]) -> None:
        """Raise the one problem found as itself, several as ``several(problems)``; nothing when none."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise several(self.found)
