"""Fidelity metrics: how close the distorted model's outputs stay to the clean model's; no labels needed.

Each input's outputs are one vector (token states pooled by ``--pool``, or flattened with masked-out tokens
zeroed). ``y`` is the clean model's vector, ``y'`` the distorted model's. An input whose outputs are not all
finite has cosine 0, an infinite distance and divergence, and adds infinite noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import ratio, register_metric

INF = math.inf


@register_metric("cosine", kind="fidelity", higher_is_better=True, identity=1.0, bounds=(-1.0, 1.0),
                 clean=("vectors",), bad=(0.0,), formula="mean over inputs of y'.y / (||y'|| ||y||)")
def cosine(view, clean) -> torch.Tensor:
    """Cosine similarity of each input's output vector with the clean one (sentence embeddings, logits)."""
    return F.cosine_similarity(view.vectors, clean.vectors, dim=1)


@register_metric("relative-l2", kind="fidelity", higher_is_better=False, identity=0.0, bounds=(0.0, INF),
                 clean=("vectors",), bad=(INF,), formula="mean over inputs of ||y' - y|| / ||y||")
def relative_l2(view, clean) -> torch.Tensor:
    """Distance of each input's output vector from the clean one, relative to the clean one's length."""
    return torch.linalg.vector_norm(view.vectors - clean.vectors, dim=1) / torch.linalg.vector_norm(clean.vectors, dim=1)


@register_metric("kl", finish=ratio, kind="fidelity", higher_is_better=False, identity=0.0, bounds=(0.0, INF),
                 clean=("log_probs",), bad=(INF, None),
                 formula="mean of KL(softmax(y) || softmax(y')) over inputs (over kept tokens, for token outputs)")
def kl(view, clean) -> torch.Tensor:
    """KL divergence of the distorted softmax from the clean one, per input or per token kept by the mask."""
    div = F.kl_div(view.log_probs, clean.log_probs, reduction="none", log_target=True).sum(dim=-1)
    if div.dim() == 1:
        return torch.stack([div, torch.ones_like(div)], dim=1)
    keep = torch.ones_like(div) if view.mask is None else view.mask.to(div.dtype)
    div, keep = div.reshape(len(div), -1), keep.reshape(len(div), -1)
    return torch.stack([(div * keep).sum(dim=1), keep.sum(dim=1)], dim=1)


def decibels(totals: list[float], n: int, nonfinite: int) -> float:
    signal, noise = totals
    if noise == 0:
        return INF if signal > 0 else math.nan
    return 10.0 * math.log10(signal / noise) if signal > 0 else -INF


@register_metric("snr-db", finish=decibels, kind="fidelity", higher_is_better=True, identity=INF,
                 clean=("vectors",), bad=(0.0, INF), formula="10 log10(sum ||y||^2 / sum ||y' - y||^2) over the set")
def snr_db(view, clean) -> torch.Tensor:
    """Signal-to-noise ratio of the outputs in decibels: the clean outputs' power over the change's power."""
    signal = clean.vectors.square().sum(dim=1)
    noise = (view.vectors - clean.vectors).square().sum(dim=1)
    return torch.stack([signal, noise], dim=1)
