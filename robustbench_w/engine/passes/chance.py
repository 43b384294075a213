"""The clean model at chance level: a warning that the inputs may not be what the model expects.

A clean accuracy within ``MARGIN`` (5 points) of ``1 / classes``, or below it, almost always means that the
inputs were prepared differently from training: a normalisation applied twice (a ``tensors:`` file that is
already normalised, evaluated with the checkpoint's normalisation), or not at all, or the wrong dataset.
The sweep and the gate put the warning in their meta, the terminal and the gate summary; it names the
normalisation in use and where it came from, since that is the usual cause. A broken model (non-finite
weights or outputs, :mod:`.health`) has its own warning and does not get this one as well.
"""

from __future__ import annotations

import math

MARGIN = 0.05


def chance_warning(accuracy: float, classes: int | None, normalization: str, source: str) -> str | None:
    """A one-line warning when ``accuracy`` is at or near chance level for ``classes`` classes, else None."""
    if classes is None or classes < 2 or accuracy is None or math.isnan(accuracy):
        return None
    chance = 1.0 / classes
    if accuracy > chance + MARGIN:
        return None
    head = (f"the clean model is at chance level: accuracy {100 * accuracy:.2f}% with {classes} classes "
            f"(chance {100 * chance:.2f}%)")
    if not normalization:  # named inputs or the user's batches: nothing is normalised
        return f"{head}; check the inputs and their labels"
    fix = "" if source == "--normalize none" else "--normalize none if they are already model-ready, or "
    return f"{head}; check the inputs: normalisation in use {normalization} (from {source}); pass {fix}--mean/--std"


def clean_warnings(clean, data, healthy: bool = True) -> list[str]:
    """The warnings about a clean pass (an engine ``PassResult``) on ``data`` (an ``EvalSet`` or given batches):
    at most the chance-level one, and none for a broken model."""
    if not healthy:
        return []
    normalised = not getattr(data, "named", False) and hasattr(data, "x")  # one input tensor, normalised
    norm = data.normalization.describe() if normalised else ""
    warning = chance_warning(clean.accuracy, data.classes(), norm, data.normalization_source)
    return [warning] if warning else []
