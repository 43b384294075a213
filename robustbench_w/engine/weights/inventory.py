"""Every parameter of a model with its role and whether it is a target: what ``wrobust targets`` lists.

:func:`list_targets` loads the model and its evaluation set as ``sweep`` does (``load.inputs.load_inputs``: the
probe batch runs once, and its forward pass is recorded), chooses the targets (:mod:`.targets`) and returns one
row per parameter (each tied parameter once): ``name, shape, role, weights, default`` (the default selects it)
and ``selected`` (the given ``include``/``exclude`` select it). A plain state dict without an architecture has
no module to run: its tensors are listed by shape (the rule of ``bits`` on such a file), and the coverage says
so.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch

from ...errors import MissingOptionsError
from ...load.checkpoints import NeedsArchitecture
from ...load.inputs import load_inputs
from .coverage import coverage, shape_notes
from .targets import Selection, choose_targets, choose_tensors

COLUMNS = ["name", "shape", "role", "weights", "default", "selected"]


def list_targets(model, dataset: object = None, *, include: Iterable[str] = (), exclude: Iterable[str] = (),
                 device: str | torch.device = "cpu", **options) -> pd.DataFrame:
    """One row per parameter of ``model`` (see the module docstring); ``.attrs["coverage"]`` is the coverage
    of the selection, ``.attrs["meta"]`` names the model and the data whose probe batch was recorded."""
    try:
        inputs = load_inputs(model, dataset, device=device, **options)
    except MissingOptionsError as exc:
        bare = exc if isinstance(exc, NeedsArchitecture) else exc.__cause__
        if not isinstance(bare, NeedsArchitecture):
            raise
        return target_frame(choose_tensors(bare.file.tensors, include, exclude), {"model": bare.file.name})
    sel = choose_targets(inputs.model.module, include, exclude, inputs.probed.uses)
    return target_frame(sel, {"model": inputs.model.name, "dataset": inputs.data.name})


def target_frame(sel: Selection, meta: dict) -> pd.DataFrame:
    """The rows of a selection, with its coverage and ``meta`` in ``.attrs``."""
    chosen, default = set(sel.names), set(sel.default)
    rows = [{"name": n, "shape": tuple(t.shape), "role": sel.roles.get(n, "other"), "weights": t.numel(),
             "default": n in default, "selected": n in chosen} for n, t in sel.params.items()]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.attrs["coverage"], frame.attrs["meta"] = coverage(sel), meta
    frame.attrs["notes"] = shape_notes(sel, meta.get("model", "the model"))
    return frame
