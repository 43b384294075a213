"""Effective bits per weight (wing ``bits``): the Shannon entropy of the code of each weight tensor.

In: weight tensors (a model's targeted ones, optionally after a distortion). Out: bits per weight per tensor
and for the model, each counted exactly or measured on a stated grid, with the scales as side information.
Files: :mod:`.counting` (counting values, exactly or on a grid; their entropies), :mod:`.tensor` (the figure of
one tensor and the rule that says exact or grid; the sweep's columns), :mod:`.model` (``effective_bits``: the
table of a model), :mod:`.tradeoff` (error versus bits: the lowest bits meeting an error, the Pareto frontier).
See docs/bits.md.
"""

from ..registry import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "counting": ("entropy", "value_counts", "exact_counts", "grid_counts", "row_stats", "GRID_SPAN"),
    "tensor": ("TensorBits", "tensor_bits", "model_bits", "scale_bits", "sweep_bits", "gaussian_channel_bits",
               "CHANNEL_COLUMN", "CHANNEL_ESTIMATES", "DEFAULT_RESOLUTION", "DEFAULT_MAX_DISTINCT"),
    "model": ("effective_bits", "resolve_distortion", "check_resolution", "totals", "bits_document", "COLUMNS",
              "MAX_RESOLUTION"),
    "tradeoff": ("lowest_bits", "frontier", "LOWEST_COLUMNS"),
})
