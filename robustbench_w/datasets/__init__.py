"""Dataset loaders beyond the built-in ``digits``, one file per kind; each registers into ``data.DATASETS``
on import (``robustbench_w.data`` imports this package).

- :mod:`.torchvision_sets`: ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, ``svhn`` from
  ``--data-root`` in torchvision's own layout (``--download`` is the only way anything is fetched);
- :mod:`.imagefolder`: ``imagefolder:PATH``, ImageNet-style class folders of images;
- :mod:`.tensors`: ``tensors:FILE``, a ``.pt`` file with inputs and labels;
- :mod:`.synthetic`: ``synthetic``, seeded random inputs without labels (only agreement is measured).
"""

from . import imagefolder, synthetic, tensors, torchvision_sets  # noqa: F401
