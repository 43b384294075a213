"""Datasets: evaluation sets held in memory as tensors (wing ``datasets``).

In: a dataset name (``digits``, ``cifar10``, ``imagefolder:PATH``, ``tensors:FILE``, ...) and data options.
Out: an :class:`EvalSet` (raw inputs, labels, the normalisation that makes them model input).
:mod:`.base` holds the evaluation set, the normalisation and the registry; each other file is one loader
that registers itself on import:

- :mod:`.digits`: ``digits``, scikit-learn's 8x8 digits (built in, nothing downloaded);
- :mod:`.torchvision_sets`: ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, ``svhn`` from
  ``--data-root`` in torchvision's own layout (``--download`` is the only way anything is fetched);
- :mod:`.imagefolder`: ``imagefolder:PATH``, ImageNet-style class folders of images;
- :mod:`.tensors`: ``tensors:FILE``, a ``.pt`` file with inputs (one tensor or named tensors) and labels;
- :mod:`.text`: ``text:FILE`` and ``jsonl:FILE``, text tokenised with the model's tokenizer;
- :mod:`.synthetic`: ``synthetic``, seeded random inputs without labels (only agreement is measured).

:mod:`.batches` holds an evaluation set given as batches (a ``DataLoader``, a list of dicts or tuples).
"""

from . import digits, imagefolder, synthetic, tensors, text, torchvision_sets  # noqa: F401  (they register)
from .base import (
                   DATASETS,
                   DatasetDef,
                   EvalSet,
                   Normalization,
                   limit_subset,
                   load_dataset,
                   register_dataset,
                   subset_index,
)
from .batches import BatchedSet, from_batches

__all__ = ["BatchedSet", "from_batches", "DATASETS", "DatasetDef", "EvalSet", "Normalization", "limit_subset", "load_dataset",
           "register_dataset", "subset_index"]
