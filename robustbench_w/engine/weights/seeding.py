"""Seeds for every random draw, derived from (run seed, distortion, strength, trial, parameter name).

The distortion is named by its canonical spec without a strength (name and non-default options, aliases
resolved), so that a point's noise does not depend on how the spec was spelled: ``-d noise:sigma=0.2``,
``-d addnorm -s 0.2`` and a gate requirement at that point draw the same weights.

The same command gives the same numbers; two layers never share a noise stream (their names differ),
and neither do two trials or two strengths. The derivation is a hash, so it does not depend on the order
in which points are evaluated. :func:`seed_spec` is the distortion's part, :func:`point_seed` one tensor's seed.
"""

from __future__ import annotations

import hashlib

import torch

from ...distortions.base import Distortion


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts (floats by their exact ``repr``)."""
    digest = hashlib.blake2b(_text(*parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _text(*parts: object) -> str:
    return "\x1f".join(repr(float(p)) if isinstance(p, float) else str(p) for p in parts)


def seed_spec(dist: Distortion) -> str:
    """The distortion's part of a seed: its canonical spec without the fixed strength."""
    return dist.with_strength(None).spec if dist.fixed_strength is not None else dist.spec


def point_seed(seed: int, dist: Distortion | str, strength: float, trial: int, param: str) -> int:
    """The seed of one tensor (``param``) at one sweep point; ``dist`` may be given as its :func:`seed_spec`."""
    spec = dist if isinstance(dist, str) else seed_spec(dist)
    return derive_seed(seed, spec, float(strength), trial, param)


def point_seeds(seed: int, dist: Distortion | str, strength: float, trial: int, params: list[str]) -> list[int]:
    """:func:`point_seed` of each of ``params`` (the same numbers; the shared part is hashed once)."""
    spec = dist if isinstance(dist, str) else seed_spec(dist)
    prefix = hashlib.blake2b(_text(seed, spec, float(strength), trial, "").encode(), digest_size=8)
    seeds = []
    for param in params:
        h = prefix.copy()
        h.update(str(param).encode())
        seeds.append(int.from_bytes(h.digest(), "little") >> 1)
    return seeds


def point_generator(seed: int, dist: Distortion | str, strength: float, trial: int, param: str,
                    device: torch.device | str) -> torch.Generator:
    """A new generator for one tensor at one sweep point (the engine reseeds one generator per device instead)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(point_seed(seed, dist, strength, trial, param))
    return gen
