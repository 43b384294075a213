"""``digits``: the 8x8 handwritten digits that ship with scikit-learn (no download), the built-in dataset."""

from __future__ import annotations

import numpy as np
import torch

from .base import EvalSet, Normalization, register_dataset

DIGITS_NORMALIZATION = Normalization(divisor=16.0, mean=(0.3058,), std=(0.3764,))


@register_dataset("digits", "8x8 handwritten digits shipped with scikit-learn, 10 classes; test: every fifth "
                  "image of each class (355), train: the other 1,442, all: 1,797")
def load_digits_set(split: str = "test", **_: object) -> EvalSet:
    """The 8x8 digits of scikit-learn (no download), as uint8 images of shape (1, 8, 8), values 0-16.

    Split (fixed, stratified, no randomness): within each class, in scikit-learn's order, every fifth image
    (positions 4, 9, 14, ...) is ``test`` (355 images); the other 1,442 are ``train``; ``all`` is the
    1,797 images in scikit-learn's order.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.uint8)
    target = np.asarray(bunch.target, dtype=np.int64)
    test = digits_test_mask(target)
    keep = np.ones_like(test) if split == "all" else test if split == "test" else ~test
    x = torch.from_numpy(images[keep]).unsqueeze(1)
    y = torch.from_numpy(target[keep])
    return EvalSet("digits", x, y, 10, DIGITS_NORMALIZATION, split)


def digits_test_mask(target: np.ndarray) -> np.ndarray:
    """True for every fifth image of each class (positions 4, 9, 14, ... within the class)."""
    mask = np.zeros(len(target), dtype=bool)
    for c in np.unique(target):
        members = np.flatnonzero(target == c)
        mask[members[4::5]] = True
    return mask
