"""The identity of a sweep point: a key from its canonical spec, strength and trial (and, later, its layer).

A point's random draws are seeded from the same parts (:mod:`.seeding`), never from the order in which points
are evaluated, so a point means the same numbers whichever process evaluates it and whenever: the key is
what a run log, a resumed run, a shard and a merge agree on. Strengths are written with ``repr`` (exact for a
float); ``nan`` (a parameterless distortion, the clean model) and ``inf`` are spelled as Python spells them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

SEP = "|"


def strength_text(strength: object) -> str:
    """The exact text of a strength: ``repr`` of the float, ``nan`` for a missing one (None, NaN)."""
    if strength is None:
        return "nan"
    value = float(strength)  # type: ignore[arg-type]
    return "nan" if math.isnan(value) else repr(value)


def point_key(spec: str, strength: object, trial: object, layer: str | None = None) -> str:
    """``SPEC|STRENGTH|TRIAL`` (``|LAYER`` appended for a point that distorts one layer only)."""
    key = f"{spec}{SEP}{strength_text(strength)}{SEP}{int(trial)}"  # type: ignore[call-overload]
    return key if not layer else f"{key}{SEP}{layer}"


def key_of(point: object) -> str:
    """The key of an engine point (anything with ``dist.spec``, ``strength``, ``trial`` and maybe ``layer``)."""
    return point_key(point.dist.spec, point.strength, point.trial, getattr(point, "layer", None))  # type: ignore[attr-defined]


def row_key(row: Mapping) -> str:
    """The key of a result row (a dict read from a log, a CSV, a JSON file, or made by the engine)."""
    layer = row.get("layer")
    layer = layer if isinstance(layer, str) and layer else None
    return point_key(row["spec"], row.get("strength"), row.get("trial", 0), layer)


def group_of(point: object) -> str:
    """The (distortion, strength[, layer]) a point belongs to: all its trials share it (shards keep them together)."""
    layer = getattr(point, "layer", None)
    group = f"{point.dist.spec}{SEP}{strength_text(point.strength)}"  # type: ignore[attr-defined]
    return group if not layer else f"{group}{SEP}{layer}"


def row_group(row: Mapping) -> str:
    """The group (:func:`group_of`) of a result row."""
    layer = row.get("layer")
    group = f"{row['spec']}{SEP}{strength_text(row.get('strength'))}"
    return group if not (isinstance(layer, str) and layer) else f"{group}{SEP}{layer}"


CLEAN_KEY = point_key("none", math.nan, 0)
