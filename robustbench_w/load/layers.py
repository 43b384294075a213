"""Which layer types carry which weights: the role of a parameter by the type of the module that holds it.

This is the rule where the forward pass cannot be watched (:mod:`.uses`): a TorchScript program, or a module
given without data. Convolution and linear layers (including the ``Conv1D`` layers of GPT-2 style models, from
``transformers``: a linear layer whose weight is stored transposed, ``(in, out)``) hold ``conv`` and ``linear``
weights; ``nn.LSTM``/``nn.GRU``/``nn.RNN`` and their cells ``recurrent`` weights; ``nn.MultiheadAttention`` its
``attention`` projections (``in_proj_weight``, ``q/k/v_proj_weight`` and ``out_proj.weight``); embeddings
``embedding`` tables; normalisation layers ``norm`` weights; every ``*bias*`` is a ``bias``. A parameter of
another module is an ``embedding`` when its name looks like one (:data:`EMBEDDING_NAMES`: ``class_token``,
``pos_embedding``, ``wte``, ...), else ``other``.

Loaders that lose a module's Python type (TorchScript, ``torch.export``) record the type's name as
``original_name``; :func:`layer_type` reads either.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

import torch
from torch import nn

WEIGHT_LAYERS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)
# Type names of the same layers, for modules whose Python type is lost (TorchScript, torch.export).
CONV_NAMES = frozenset({"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"})
WEIGHT_LAYER_NAMES = frozenset({"Linear", "Bilinear", "LazyLinear", "Conv1D", *CONV_NAMES})
RECURRENT_NAMES = frozenset({"LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"})
EMBEDDING_LAYER_NAMES = frozenset({"Embedding", "EmbeddingBag"})
ATTENTION_NAMES = frozenset({"MultiheadAttention"})
# Parameter names that look like embedding tables or learned tokens (matched on the whole name, lower case).
EMBEDDING_NAMES = ("*embed*", "*wte*", "*wpe*", "*position*", "*pos_emb*", "*class_token*", "*cls_token*",
                   "*dist_token*", "*mask_token*", "*register_tokens*")


def layer_type(module: nn.Module) -> str:
    return getattr(module, "original_name", type(module).__name__)


def is_weight_layer(module: nn.Module) -> bool:
    return isinstance(module, WEIGHT_LAYERS) or layer_type(module) in WEIGHT_LAYER_NAMES


def is_norm_layer(module: nn.Module) -> bool:
    return "Norm" in layer_type(module)  # BatchNorm*d, LayerNorm, GroupNorm, RMSNorm, LlamaRMSNorm, ...


def looks_like_embedding(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name.lower(), p) for p in EMBEDDING_NAMES)


def unique_named_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """The model's parameters, a shared (tied) one once, under its first name."""
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            yield name, p


def module_roles(model: nn.Module) -> dict[str, str]:
    """Each parameter's role (see the module docstring), by the type of the module that holds it; in the
    model's parameter order, a tied parameter once."""
    owners, attention = {}, []
    for prefix, module in model.named_modules():
        attention += [prefix] if layer_type(module) in ATTENTION_NAMES else []
        for attr, p in module.named_parameters(recurse=False):
            owners[f"{prefix}.{attr}" if prefix else attr] = module, attr, p
    roles = {name: param_role(*owners[name], name) for name, _ in unique_named_parameters(model)}
    for prefix in attention:  # out_proj is a Linear, but it is the attention's output projection
        out = f"{prefix}.out_proj.weight" if prefix else "out_proj.weight"
        if out in roles:
            roles[out] = "attention"
    return roles


def param_role(module: nn.Module, attr: str, p: torch.Tensor, name: str) -> str:
    """The role of parameter ``attr`` (full name ``name``) of ``module``."""
    kind = layer_type(module)
    if not p.is_floating_point():
        return "other"
    if "bias" in attr:
        return "bias"
    if is_weight_layer(module):
        return "conv" if isinstance(module, nn.modules.conv._ConvNd) or kind in CONV_NAMES else "linear"
    if kind in RECURRENT_NAMES or kind in ATTENTION_NAMES:
        return ("recurrent" if kind in RECURRENT_NAMES else "attention") if p.dim() >= 2 else "bias"
    if kind in EMBEDDING_LAYER_NAMES:
        return "embedding"
    if is_norm_layer(module):
        return "norm"
    return "embedding" if looks_like_embedding(name) else "other"
