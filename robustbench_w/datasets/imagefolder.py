"""``imagefolder:PATH``: ImageNet-style folders of images, one sub-folder per class (torchvision's
``ImageFolder``: classes sorted by folder name, index = position).

``PATH`` is the folder of class folders, or a dataset root holding ``val/`` (or ``test/``) and ``train/``,
chosen by ``--split`` (``all``: both). Each image is read in ``--image-mode`` (``RGB``, or ``L`` for grey;
default: what the model's first layer takes, when it can be read, else RGB), resized so that its shorter side
is ``image_size / 0.875`` (256 for 224) and centre-cropped to ``--image-size`` (default 224), the usual
ImageNet evaluation transform, and kept as uint8; ImageNet's normalisation is the default (averaged over the
channels for grey images; ``--mean``/``--std`` override it). With ``--limit`` the seeded, class-balanced
subset is chosen from the file list, before any image is decoded.
"""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path

import torch

from ..errors import EnvironmentProblem, InputFileError, InvalidValueError, permission_denied
from .base import EvalSet, Normalization, register_dataset, subset_index

IMAGENET_NORMALIZATION = Normalization(255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
GREY_NORMALIZATION = Normalization(255.0, (0.449,), (0.226,))  # ImageNet's, averaged over the channels
MODES = {"RGB": 3, "L": 1}  # image mode -> channels
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


def split_folders(root: Path, split: str) -> list[Path]:
    """The folders of a split; ``all``: the train and test folders of a dataset root (else ``root`` itself)."""
    if split != "all":
        return [split_folder(root, split)]
    found = [f for f in (split_folder(root, "train"), split_folder(root, "test")) if f != root]
    return found or [root]


def open_folder(source: str, split: str, image_size: int, mode: str = "RGB"):
    """torchvision's ``ImageFolder`` over the split's folders (one dataset; ``all``: both, concatenated), with the
    evaluation transform; returns ``(dataset, targets, classes)``."""
    from torch.utils.data import ConcatDataset
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    root = Path(source).expanduser()
    if not root.is_dir():
        raise InputFileError(f"{root}: no such folder (imagefolder:PATH needs a folder of class folders)")
    transform = transforms.Compose([
        transforms.Resize(round(image_size / CROP_FRACTION), antialias=True),
        transforms.CenterCrop(image_size), transforms.PILToTensor(),
    ])
    parts = []
    for folder in split_folders(root, split):
        try:
            parts.append(ImageFolder(str(folder), transform=transform, loader=partial(_read_image, mode=mode)))
        except PermissionError as exc:  # a class folder the user may not list
            raise permission_denied(exc.filename or folder, "cannot list the image folder") from None
        except FileNotFoundError as exc:  # no class folders, or no image files in them
            raise InputFileError(f"{folder}: {_last_line(exc)} (expected one sub-folder of images per class)") from exc
    if any(p.classes != parts[0].classes for p in parts):
        raise InputFileError(f"{root}: the train and test folders hold different classes (--split all needs the same)")
    targets = [t for p in parts for t in p.targets]
    return (parts[0] if len(parts) == 1 else ConcatDataset(parts)), targets, parts[0].classes


def _read_image(path: str, mode: str = "RGB"):
    """Open one image in ``mode`` (RGB or L); a file that is not an image is an input error naming the file."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            return Image.open(f).convert(mode)
    except PermissionError:
        raise permission_denied(path, "cannot read the image") from None
    except Image.UnidentifiedImageError as exc:
        raise InputFileError(f"{path}: cannot read the image: not an image file, or in a format Pillow does not "
                             f"read") from exc
    except (OSError, ValueError) as exc:  # the file is named once, by its path: not as a repr of the open file
        reason = re.sub(r"\s*<_io\.\w+ name=[^>]*>", "", _last_line(exc)).replace(repr(str(path)), "").strip(" :")
        raise InputFileError(f"{path}: cannot read the image: {reason or type(exc).__name__}") from exc


@register_dataset("imagefolder", "ImageNet-style folders of images, one sub-folder per class; --image-size "
                  "(default 224: resize to 256, centre-crop), --image-mode L|RGB, ImageNet normalisation",
                  argument="PATH")
def load_imagefolder(split: str = "test", source: str = "", image_size: int | None = None, limit: int | None = None,
                     seed: int = 0, image_mode: str | None = None, input_shape: tuple[int, ...] | None = None,
                     **_: object) -> EvalSet:
    size = DEFAULT_IMAGE_SIZE if image_size is None else int(image_size)
    if size < 1:
        raise InvalidValueError(f"--image-size must be a positive number, not {size}")
    mode = image_mode_for(image_mode, input_shape)
    dataset, targets, classes = open_folder(source, split, size, mode)
    targets = torch.as_tensor(targets, dtype=torch.long)
    index = subset_index(targets, len(targets), limit, seed) if limit else torch.arange(len(targets))
    check_memory(len(index), MODES[mode], size)
    x = decode(dataset, index.tolist(), size, MODES[mode])
    norm = IMAGENET_NORMALIZATION if mode == "RGB" else GREY_NORMALIZATION
    return EvalSet(f"imagefolder:{source}", x, targets[index], len(classes), norm, split)


FLOAT_BYTES = 4  # a batch of images becomes float32 for the model: four times the decoded size, per image


def check_memory(n: int, channels: int, size: int) -> None:
    """Refuse an --image-size whose images cannot be held in this machine's memory (decoded as uint8, and one of
    them as float32 for the model), before any allocation: one line naming the size, not an allocation failure."""
    resized = round(size / CROP_FRACTION)
    limit = image_pixel_limit()
    if limit and resized * resized > limit:
        raise EnvironmentProblem(f"--image-size {size}: images resized to {resized:,}x{resized:,} pixels are beyond the "
                                 f"image library's limit of {limit:,} pixels (choose a smaller --image-size, default "
                                 f"{DEFAULT_IMAGE_SIZE})")
    need = channels * size * size * (n + FLOAT_BYTES)
    have = physical_memory()
    if have and need > have:
        raise EnvironmentProblem(f"--image-size {size}: {n:,} image(s) of {channels}x{size}x{size} need at least "
                                 f"{need / 2**30:,.1f} GiB, more than this machine's {have / 2**30:,.1f} GiB of memory "
                                 f"(choose a smaller --image-size, default {DEFAULT_IMAGE_SIZE}, or a --limit)")


def image_pixel_limit() -> int:
    """The most pixels Pillow makes an image of before it refuses (twice ``MAX_IMAGE_PIXELS``; 0: no limit)."""
    from PIL import Image

    return 2 * int(Image.MAX_IMAGE_PIXELS) if Image.MAX_IMAGE_PIXELS else 0


def physical_memory() -> int:
    """The machine's memory in bytes (0 where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def image_mode_for(image_mode: str | None, input_shape: tuple[int, ...] | None) -> str:
    """``--image-mode`` when given; else L for a model that takes one channel, RGB otherwise."""
    if image_mode is not None:
        mode = str(image_mode).upper()
        if mode not in MODES:
            raise InvalidValueError(f"--image-mode must be L or RGB, not {image_mode!r}")
        return mode
    return "L" if input_shape and len(input_shape) == 3 and int(input_shape[0]) == 1 else "RGB"


def decode(dataset, index: list[int], size: int, channels: int = 3) -> torch.Tensor:
    """The images at ``index`` as one uint8 ``(N, channels, size, size)`` tensor (worker processes for large sets)."""
    from torch.utils.data import DataLoader, Subset

    workers = min(8, os.cpu_count() or 1) if len(index) >= PARALLEL_FROM else 0
    loader = DataLoader(Subset(dataset, index), batch_size=64, num_workers=workers)
    x = torch.empty((len(index), channels, size, size), dtype=torch.uint8)
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
