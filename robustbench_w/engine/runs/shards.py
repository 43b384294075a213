"""Shards: a deterministic, balanced partition of a sweep's points over N independent jobs.

``--shard I/N`` (I counts from 1: Slurm ``--array=1-N``) takes the I-th of N parts; the N parts cover the grid
exactly once. All trials of one (distortion, strength) stay in one part, so whatever decides per strength
(a summary row, an adaptive number of trials) sees them together. The parts are balanced by expected cost,
not by count: each group of points costs its number of evaluation passes (a deterministic point is one
pass, a random one ``trials`` passes), or what a ``cost`` function says, and the groups are dealt out
longest first, each to the part with the least cost so far (ties to the lower part). The partition depends
only on the list of points, never on timing, so separate processes agree on it without talking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ...errors import InvalidValueError
from .points import group_of

P = TypeVar("P")


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | Shard) -> Shard:
    """``"I/N"`` with 1 <= I <= N; anything else is a usage error."""
    if isinstance(text, Shard):
        return check_shard(text)
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise InvalidValueError(f"--shard {text!r}: expected I/N, for example 1/4 (part I of N, I from 1 to N)")
    return check_shard(Shard(int(match[1]), int(match[2])))


def check_shard(shard: Shard) -> Shard:
    if shard.count < 1 or not 1 <= shard.index <= shard.count:
        raise InvalidValueError(f"--shard {shard}: I must be between 1 and N (N >= 1); parts count from 1")
    return shard


def partition(points: Sequence[P], parts: int, cost: Callable[[P], float] | None = None) -> list[list[P]]:
    """``parts`` lists of points, each in the order of ``points``; groups of one (distortion, strength) whole."""
    cost = cost or (lambda p: 1.0)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(group_of(p), []).append(i)
    weights = {g: sum(cost(points[i]) for i in idx) for g, idx in groups.items()}
    order = sorted(groups, key=lambda g: (-weights[g], groups[g][0]))  # heaviest first; ties by position
    loads, owner = [0.0] * parts, {}
    for g in order:
        part = min(range(parts), key=lambda k: (loads[k], k))
        owner[g] = part
        loads[part] += weights[g]
    chosen: list[list[int]] = [[] for _ in range(parts)]
    for g, idx in groups.items():
        chosen[owner[g]].extend(idx)
    return [[points[i] for i in sorted(idx)] for idx in chosen]


def take_shard(points: Sequence[P], shard: Shard | None, cost: Callable[[P], float] | None = None) -> list[P]:
    """The points of one shard (all of them without one)."""
    if shard is None or shard.count == 1:
        return list(points)
    return partition(points, shard.count, cost)[shard.index - 1]
