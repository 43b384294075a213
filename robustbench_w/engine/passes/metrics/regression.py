"""Regression metrics: the outputs against numeric targets (the labels), one row of values per input.

An input's outputs and its targets must hold the same number of values. An input whose outputs are not all
finite has an infinite error.
"""

from __future__ import annotations

import math

import torch

from .base import register_metric


def difference(view) -> torch.Tensor:
    return view.out.reshape(len(view.out), -1) - view.targets


@register_metric("mse", kind="regression", higher_is_better=False, labels="targets", bounds=(0.0, math.inf),
                 bad=(math.inf,), formula="mean over inputs of mean((y' - target)^2)")
def mse(view, clean) -> torch.Tensor:
    """Mean squared error of the outputs against the targets."""
    return difference(view).square().mean(dim=1)


@register_metric("mae", kind="regression", higher_is_better=False, labels="targets", bounds=(0.0, math.inf),
                 bad=(math.inf,), formula="mean over inputs of mean(|y' - target|)")
def mae(view, clean) -> torch.Tensor:
    """Mean absolute error of the outputs against the targets."""
    return difference(view).abs().mean(dim=1)
