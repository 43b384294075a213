"""The paper's experiment (wing ``paper``): training with weight projections and the reproduce grid.

In: a dataset and training rules (Merolla et al. 2016, arXiv:1606.01981: none, clip, sign, round, power,
stoch, stochm). Out: trained checkpoints, and the grid of rule x test-time distortion with its report.
Files: :mod:`.projection` (training rules; hidden weights and their projection), :mod:`.train`
(BinaryConnect-style training: projected forward pass, straight-through gradient, clipping, the recipe),
:mod:`.grid` (what the grid runs: rules, recipe, seeds, curves, columns), :mod:`.reproduce` (the run),
:mod:`.resume` (``--resume``: reusing matching checkpoints, resuming the sweeps from their logs),
:mod:`.cells` (numbers over training seeds and trials, intervals), :mod:`.claims` (the five claims and their
verdicts), :mod:`.report` (``report.md``, ``claims.json`` and the other files), :mod:`.console` (the
terminal view), :mod:`.figure` (the figure).
"""

from ..registry import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "train": ("train", "TrainConfig", "TrainResult", "TrainProgress", "config_record"),
    "resume": ("check_reusable", "load_trained"),
    "grid": ("GridConfig",),
    "reproduce": ("reproduce", "GridResult"),
    "claims": ("Claim",),
    "report": ("write_grid",),
    "console": ("render_grid",),
})
