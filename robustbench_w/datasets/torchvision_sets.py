"""``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100`` and ``svhn`` from ``--data-root``, read by
torchvision's own dataset classes from torchvision's own on-disk layout::

    DATA_ROOT/MNIST/raw/t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte    (train-*: the train split)
    DATA_ROOT/FashionMNIST/raw/...                                        (the same file names)
    DATA_ROOT/cifar-10-batches-py/test_batch, data_batch_1..5, batches.meta
    DATA_ROOT/cifar-100-python/test, train, meta
    DATA_ROOT/test_32x32.mat, train_32x32.mat                             (SVHN)

Nothing is fetched unless ``--download`` is given. The default root is ``$WROBUST_DATA`` or
``~/.cache/wrobust/data``. The classes are torchvision's, with one change: they check that the files of the
requested split exist instead of checking MD5 sums of every file of every split (which reads the whole
dataset on each load and refuses a folder holding only the test split); a corrupt file is reported when it
is read (an idx file's header is checked first, :mod:`.idx`). Since the MD5 sums no longer vouch for CIFAR's
pickled batches, each one is scanned before torchvision unpickles it: it may name only the numpy and codec
functions that arrays need (a tampered file
that would run other code is refused). Images are kept as uint8 ``(N, C, H, W)`` tensors, taken from the
classes' arrays directly (no per-image PIL round trip).
"""

from __future__ import annotations

import os
import pickletools
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..errors import InputFileError, first_line, permission_denied
from .base import EvalSet, Normalization, concat_sets, register_dataset
from .idx import check_idx

DATA_ROOT_ENV = "WROBUST_DATA"


def default_data_root() -> Path:
    """``$WROBUST_DATA``, else ``~/.cache/wrobust/data``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or Path.home() / ".cache" / "wrobust" / "data").expanduser()


@dataclass(frozen=True)
class TorchvisionSet:
    """What wrobust needs to know about one torchvision dataset."""

    name: str
    num_classes: int
    normalization: Normalization
    files: Callable[[Path, str], list[Path]]  # (root, split) -> the files torchvision reads
    open: Callable[[Path, str, bool], object]  # (root, split, download) -> the torchvision dataset
    arrays: Callable[[object], tuple[torch.Tensor, torch.Tensor]]  # dataset -> (uint8 NCHW x, int64 y)
    size: str  # download size, for the message
    check: Callable[[Path, str], None] | None = None  # (file, name): refuses a bad file before torchvision reads it


def load_torchvision_set(spec: TorchvisionSet, split: str = "test", data_root: str | Path | None = None,
                         download: bool = False, **_: object) -> EvalSet:
    """Read ``spec`` from ``data_root`` (fetching it first only when ``download`` is true); ``split="all"``
    is the train split followed by the test split."""
    if split == "all":
        return concat_sets(*(load_torchvision_set(spec, part, data_root, download) for part in ("train", "test")))
    root = Path(data_root).expanduser() if data_root else default_data_root()
    missing = [p for p in spec.files(root, split) if not p.is_file()]
    if missing and not download:
        raise InputFileError(
            f"dataset {spec.name} ({split}) not found: {missing[0]} is missing (torchvision's layout under "
            f"--data-root {root}); pass --download to fetch it ({spec.size}), or --data-root DIR where it is")
    if spec.check is not None and not missing:
        for path in spec.files(root, split):
            spec.check(path, spec.name)
    try:
        dataset = spec.open(root, split, download)
        x, y = spec.arrays(dataset)
    except PermissionError as exc:
        raise permission_denied(exc.filename or root, f"dataset {spec.name}") from None
    except Exception as exc:  # anything torchvision raises while fetching or reading the user's files
        what = "download failed" if missing else f"cannot read {root}"
        raise InputFileError(f"dataset {spec.name} ({split}): {what}: {_describe(exc)}") from exc
    if len(x) != len(y):  # e.g. an idx pair of different sizes: each image needs its label
        raise InputFileError(f"dataset {spec.name} ({split}): {len(x):,} images but {len(y):,} labels in "
                             f"{', '.join(p.name for p in spec.files(root, split))} (under {root}): the files do not "
                             "belong together, or one is truncated")
    return EvalSet(spec.name, x, y.long(), spec.num_classes, spec.normalization, split)


# What a pickled dict of numpy arrays, lists and strings may name (Python 2's and 3's numpy and codecs).
PICKLE_GLOBALS = frozenset({
    "numpy.core.multiarray _reconstruct", "numpy._core.multiarray _reconstruct", "numpy ndarray", "numpy dtype",
    "numpy.core.multiarray scalar", "numpy._core.multiarray scalar", "_codecs encode", "copy_reg _reconstructor",
    "__builtin__ object", "builtins object",
})


def check_plain_pickle(path: Path, name: str) -> None:
    """Refuse a pickle that names anything beyond what arrays need (read without unpickling it)."""
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name == "GLOBAL":
                    found = str(arg)
                elif op.name == "STACK_GLOBAL":
                    found = " ".join(strings[-2:])
                else:
                    if isinstance(arg, str):
                        strings.append(arg)
                    continue
                if found not in PICKLE_GLOBALS:
                    raise InputFileError(f"{path}: not a plain {name} batch: it would run {found.replace(' ', '.')} "
                                         f"when unpickled; refusing to read it")
    except (ValueError, EOFError) as exc:  # pickletools' words for a corrupt or truncated pickle
        raise InputFileError(f"dataset {name}: {path} is corrupt or truncated ({first_line(exc, '')})") from exc



def _describe(exc: BaseException) -> str:
    line = first_line(exc, '', whole=True, limit=400)  # a failed download's reason is on its third line
    return f"{type(exc).__name__}: {line}" if line else f"{type(exc).__name__} (a truncated or corrupt file?)"


# ------------------------------------------------------------------ MNIST and Fashion-MNIST

def _mnist_files(folder: str, root: Path, split: str) -> list[Path]:
    prefix = "t10k" if split == "test" else "train"
    raw = root / folder / "raw"
    return [raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"]


def _open_mnist(folder: str, root: Path, split: str, download: bool):
    from torchvision import datasets as tvd

    base = getattr(tvd, folder)

    class SplitOnly(base):  # torchvision's class, checking only the files of the split it reads
        @property
        def raw_folder(self) -> str:
            return os.path.join(self.root, folder, "raw")

        @property
        def processed_folder(self) -> str:
            return os.path.join(self.root, folder, "processed")

        def _check_exists(self) -> bool:
            return all(p.is_file() for p in _mnist_files(folder, Path(self.root), "train" if self.train else "test"))

    return SplitOnly(str(root), train=split == "train", download=download)


def _mnist_arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return dataset.data.unsqueeze(1).contiguous(), torch.as_tensor(dataset.targets)


# ------------------------------------------------------------------ CIFAR-10 and CIFAR-100

def _cifar_files(folder: str, train: list[str], test: list[str], meta: str, root: Path, split: str) -> list[Path]:
    return [root / folder / f for f in (test if split == "test" else train) + [meta]]


def _open_cifar(class_name: str, root: Path, split: str, download: bool):
    from torchvision import datasets as tvd

    base = getattr(tvd, class_name)

    class SplitOnly(base):  # torchvision's class, checking only that the split's files exist
        meta = {**base.meta, "md5": None}

        def _check_integrity(self) -> bool:
            names = [f for f, _ in (self.train_list if self.train else self.test_list)] + [self.meta["filename"]]
            return all(os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f in names)

    return SplitOnly(str(root), train=split == "train", download=download)


def _cifar_arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(dataset.data, dtype=np.uint8).transpose(0, 3, 1, 2)))
    return x, torch.as_tensor(dataset.targets)


# ------------------------------------------------------------------ SVHN

def _svhn_files(root: Path, split: str) -> list[Path]:
    return [root / f"{split}_32x32.mat"]


def _open_svhn(root: Path, split: str, download: bool):
    from torchvision.datasets import SVHN

    class SplitOnly(SVHN):  # torchvision's class, checking that the file exists
        def _check_integrity(self) -> bool:
            return os.path.isfile(os.path.join(self.root, self.filename))

    return SplitOnly(str(root), split=split, download=download)


def _svhn_arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(dataset.data, dtype=np.uint8)), torch.as_tensor(dataset.labels)


# ------------------------------------------------------------------ the registry entries

def _cifar(class_name: str, folder: str, train: list[str], test: list[str], meta: str) -> dict:
    return {"files": partial(_cifar_files, folder, train, test, meta), "open": partial(_open_cifar, class_name),
            "arrays": _cifar_arrays}


def _mnist(folder: str) -> dict:
    return {"files": partial(_mnist_files, folder), "open": partial(_open_mnist, folder), "arrays": _mnist_arrays,
            "check": check_idx}


SETS = (
    (TorchvisionSet("mnist", 10, Normalization(255.0, (0.1307,), (0.3081,)), **_mnist("MNIST"), size="12 MB"),
     "MNIST handwritten digits, 28x28 grey (10,000 test / 60,000 train)"),
    (TorchvisionSet("fashion-mnist", 10, Normalization(255.0, (0.2860,), (0.3530,)), **_mnist("FashionMNIST"),
                    size="30 MB"), "Fashion-MNIST clothing, 28x28 grey (10,000 test / 60,000 train)"),
    (TorchvisionSet("cifar10", 10, Normalization(255.0, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
                    **_cifar("CIFAR10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                             ["test_batch"], "batches.meta"), size="170 MB", check=check_plain_pickle),
     "CIFAR-10, 32x32 colour, 10 classes (10,000 test / 50,000 train)"),
    (TorchvisionSet("cifar100", 100, Normalization(255.0, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
                    **_cifar("CIFAR100", "cifar-100-python", ["train"], ["test"], "meta"), size="170 MB",
                    check=check_plain_pickle),
     "CIFAR-100, 32x32 colour, 100 fine classes (10,000 test / 50,000 train)"),
    (TorchvisionSet("svhn", 10, Normalization(255.0, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
                    files=_svhn_files, open=_open_svhn, arrays=_svhn_arrays, size="64 MB test, 182 MB train"),
     "SVHN house numbers, 32x32 colour, digit 0 is class 0 (26,032 test / 73,257 train)"),
)

for _spec, _description in SETS:
    register_dataset(_spec.name, _description + "; --data-root, --download")(partial(load_torchvision_set, _spec))
