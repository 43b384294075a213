"""Read noise at every forward: a random distortion drawn afresh for every batch (``--redraw batch``).

Analog hardware reads its noisy weights anew at every use; ``--redraw point`` (the default) draws once per
point, ``--redraw batch`` once per batch of every pass. Batch ``i`` of a point gets the draw seeded as the
point's own with the trial ``"{trial}/batch{i}"`` (batch 0: the point's draw itself, so a one-batch set gives
the ``point`` numbers), written from the pristine copy into the live weights before the batch runs; the clean
weights come back when the point ends (:meth:`WeightPatch.applied`). The same seed gives the same numbers,
and the row's ``weight_change`` is that of batch 0. Deterministic points, and a random distortion at its
identity strength, draw nothing and are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..defaults import REDRAW_MODES as MODES
from .perturb import WeightPatch


def batch_trial(trial: int, batch: int) -> int | str:
    """The trial key that seeds batch ``batch`` of a point (the point's own for batch 0)."""
    return trial if batch == 0 else f"{trial}/batch{batch}"


@contextmanager
def redrawing(hooks: list[Callable[[int], None]], patch: WeightPatch, dist, strength: float, seed: int,
              trial: int) -> Iterator[None]:
    """While the block runs, each batch (``hooks`` are the evaluator's batch hooks) rewrites the weights with its
    own draw; the point's draw (batch 0) must already be in place."""
    written = [0]  # the batch whose draw is in the weights

    def redraw(i: int) -> None:
        if i != written[0]:
            patch.write(dist, strength, seed, batch_trial(trial, i), measure=False)  # the row keeps batch 0's
            written[0] = i

    hooks.append(redraw)
    try:
        yield
    finally:
        hooks.remove(redraw)
