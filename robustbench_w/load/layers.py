"""Which layer types carry the weights a sweep distorts by default: convolution and linear layers, including
the ``Conv1D`` layers of GPT-2 style models (``transformers``; a linear layer whose weight is stored
transposed, ``(in, out)``). Embeddings and normalisation layers are not among them.

Loaders that lose a module's Python type (TorchScript, ``torch.export``) record the type's name as
``original_name``; :func:`is_weight_layer` reads either.
"""

from __future__ import annotations

from torch import nn

WEIGHT_LAYERS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)
# Type names of the same layers, for modules whose Python type is lost (TorchScript, torch.export).
WEIGHT_LAYER_NAMES = frozenset(
    {"Linear", "Bilinear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
     "Conv1D"}
)


def is_weight_layer(module: nn.Module) -> bool:
    if isinstance(module, WEIGHT_LAYERS):
        return True
    return getattr(module, "original_name", type(module).__name__) in WEIGHT_LAYER_NAMES
