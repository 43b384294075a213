"""robustbench_w (``wrobust``): how robust is a trained network to distortions of its weights?

Python API (everything returns plain objects or pandas DataFrames)::

    import robustbench_w as rw
    rows = rw.sweep("builtin:digits-mlp", distortions=["noise", "sign"], trials=3)
    rows = rw.sweep(module, batches, ["noise"], metric="cosine")  # any nn.Module, any batches, any metric
    summary = rw.summarize(rows)
    bits = rw.effective_bits("builtin:digits-mlp", "sign")
    result = rw.gate("model.pt", "robustness.toml")         # verdicts of a CI policy
    trained = rw.train(dataset="digits", projection="stoch")  # BinaryConnect-style training

The package is laid out in wings, one per stage of the data flow (SPEC section 4): :mod:`.distortions`,
:mod:`.datasets`, :mod:`.load`, :mod:`.engine`, :mod:`.bits`, :mod:`.report`, :mod:`.gate`, :mod:`.paper`
and :mod:`.cli`. The names below are imported on first use, so that ``import robustbench_w`` (and the
command line's start-up) does not import torch.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

from .registry import lazy_exports

__version__ = "0.1.0"

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "bits.model": ("effective_bits",),
    "load.checkpoints": ("load_model",),
    "datasets.base": ("load_dataset",),
    "distortions": ("get_distortion", "list_distortions", "register_distortion"),
    "engine.passes.metrics": ("get_metric", "list_metrics", "register_metric"),
    "engine.runs.stats": ("summarize",),
    "engine.runs.sweep": ("sweep",),
    "paper.train": ("train",),
    "paper.reproduce": ("reproduce",),
    "gate": ("gate",),
})
__all__ = ["__version__", *__all__]

# Import paths that the documentation of 0.1 showed, before the modules moved into wings.
MOVED = {f"{__name__}.data": f"{__name__}.datasets.base", f"{__name__}.checkpoints": f"{__name__}.load.checkpoints"}
# engine/ in sub-wings (0.2): the flat paths of 0.1 (``robustbench_w.engine.sweep``) still import.
_ENGINE = {"weights": "targets seeding perturb health layers",
           "passes": "batches batchsize evaluate outputs task metrics precision fastpath activations chance",
           "runs": "sweep points trials stats runlog resume shards signals distributed"}
MOVED.update({f"{__name__}.engine.{m}": f"{__name__}.engine.{wing}.{m}"
              for wing, names in _ENGINE.items() for m in names.split()})


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the moved paths (``robustbench_w.data``, ``robustbench_w.engine.sweep``, ...) as modules that hold
    the public names of their new homes, with a ``DeprecationWarning`` that names the new path."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return None  # the default: a fresh module

    def exec_module(self, module) -> None:
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new}", DeprecationWarning, stacklevel=2)
        home = importlib.import_module(new)
        module.__dict__.update({k: v for k, v in vars(home).items() if not k.startswith("__")})


sys.meta_path.append(_MovedModules())
