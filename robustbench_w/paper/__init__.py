"""The paper's experiment (wing ``paper``): training with weight projections and the reproduce grid.

In: a dataset and training rules (Merolla et al. 2016, arXiv:1606.01981: none, clip, sign, round, power,
stoch, stochm). Out: trained checkpoints, and the grid of rule x test-time distortion with its report.
Files: :mod:`.train` (BinaryConnect-style training: hidden weights, projected forward pass,
straight-through gradient, clipping), :mod:`.reproduce` (the grid), :mod:`.report` (its tables, findings
and files), :mod:`.figure` (its figure).
"""

from ..registry import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "train": ("train", "TrainConfig", "TrainResult", "TrainProgress"),
    "reproduce": ("reproduce", "GridConfig", "GridResult"),
    "report": ("write_grid", "render_grid"),
})
