"""``imagefolder:PATH``: ImageNet-style folders of images, one sub-folder per class (torchvision's
``ImageFolder``: classes sorted by folder name, index = position).

``PATH`` is the folder of class folders, or a dataset root holding ``val/`` (or ``test/``) and ``train/``,
chosen by ``--split``. Each image is resized so that its shorter side is ``image_size / 0.875`` (256 for
224) and centre-cropped to ``--image-size`` (default 224), the usual ImageNet evaluation transform, and
kept as uint8; ImageNet's normalisation is the default (``--mean``/``--std`` override it). With
``--limit`` the seeded, class-balanced subset is chosen from the file list, before any image is decoded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputFileError, InvalidValueError, permission_denied
from .base import EvalSet, Normalization, register_dataset, subset_index

IMAGENET_NORMALIZATION = Normalization(255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
DEFAULT_IMAGE_SIZE = 224
CROP_FRACTION = 0.875  # resize the shorter side to size / 0.875, then centre-crop to size (256 -> 224)
SPLIT_FOLDERS = {"test": ("val", "test", "validation"), "train": ("train",)}
PARALLEL_FROM = 512  # decode with worker processes from this many images on


def split_folder(root: Path, split: str) -> Path:
    """``root/val`` (or ``test``, ``validation``) or ``root/train`` when ``root`` is a dataset root, else ``root``."""
    for name in SPLIT_FOLDERS[split]:
        candidate = root / name
        if candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir()):
            return candidate
    return root


def open_folder(source: str, split: str, image_size: int):
    """torchvision's ``ImageFolder`` over the split's folder, with the evaluation transform."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    root = Path(source).expanduser()
    if not root.is_dir():
        raise InputFileError(f"{root}: no such folder (imagefolder:PATH needs a folder of class folders)")
    transform = transforms.Compose([
        transforms.Resize(round(image_size / CROP_FRACTION), antialias=True),
        transforms.CenterCrop(image_size), transforms.PILToTensor(),
    ])
    folder = split_folder(root, split)
    try:
        return ImageFolder(str(folder), transform=transform, loader=_read_image)
    except PermissionError as exc:  # a class folder the user may not list
        raise permission_denied(exc.filename or folder, "cannot list the image folder") from None
    except FileNotFoundError as exc:  # no class folders, or no image files in them
        raise InputFileError(f"{folder}: {_last_line(exc)} (expected one sub-folder of images per class)") from exc


def _read_image(path: str):
    """Open one image as RGB; a file that is not an image is an input error naming the file."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except PermissionError:
        raise permission_denied(path, "cannot read the image") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read the image: {_last_line(exc)}") from exc


@register_dataset("imagefolder", "ImageNet-style folders of images, one sub-folder per class; --image-size "
                  "(default 224: resize to 256, centre-crop), ImageNet normalisation", argument="PATH")
def load_imagefolder(split: str = "test", source: str = "", image_size: int | None = None, limit: int | None = None,
                     seed: int = 0, **_: object) -> EvalSet:
    size = DEFAULT_IMAGE_SIZE if image_size is None else int(image_size)
    if size < 1:
        raise InvalidValueError(f"--image-size must be a positive number, not {size}")
    dataset = open_folder(source, split, size)
    targets = torch.as_tensor(dataset.targets, dtype=torch.long)
    index = subset_index(targets, len(targets), limit, seed) if limit else torch.arange(len(targets))
    x = decode(dataset, index.tolist(), size)
    return EvalSet(f"imagefolder:{source}", x, targets[index], len(dataset.classes), IMAGENET_NORMALIZATION, split)


def decode(dataset, index: list[int], size: int) -> torch.Tensor:
    """The images at ``index`` as one uint8 ``(N, 3, size, size)`` tensor (worker processes for large sets)."""
    from torch.utils.data import DataLoader, Subset

    workers = min(8, os.cpu_count() or 1) if len(index) >= PARALLEL_FROM else 0
    loader = DataLoader(Subset(dataset, index), batch_size=64, num_workers=workers)
    x = torch.empty((len(index), 3, size, size), dtype=torch.uint8)
    start = 0
    try:
        for images, _ in loader:
            x[start:start + len(images)] = images
            start += len(images)
    except InputFileError as exc:  # raised in a worker, re-raised here with the worker's traceback text
        raise InputFileError(_last_line(exc)) from exc
    return x


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text.split("InputFileError: ", 1)[-1][:300]
