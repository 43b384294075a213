"""robustbench_w (``wrobust``): how robust is a trained network to distortions of its weights?

Python API (everything returns plain objects or pandas DataFrames)::

    import robustbench_w as rw
    rows = rw.sweep("builtin:digits-mlp", distortions=["noise", "sign"], trials=3)
    summary = rw.summarize(rows)
"""

__version__ = "0.1.0"

from .bits import effective_bits
from .checkpoints import load_model
from .data import load_dataset
from .distortions import get_distortion, list_distortions, register_distortion
from .stats import summarize
from .sweep import sweep

__all__ = [
    "__version__",
    "effective_bits",
    "get_distortion",
    "list_distortions",
    "load_dataset",
    "load_model",
    "register_distortion",
    "summarize",
    "sweep",
]
