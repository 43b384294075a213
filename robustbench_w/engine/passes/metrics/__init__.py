"""Metrics: what "working" means for a model, measured batch by batch and reduced over the whole set.

:mod:`.base` is the contract and the registry (``METRICS``, :func:`register_metric`, :func:`get_metric`,
plug-ins through the entry-point group ``robustbench_w.metrics``); the families register on import:
:mod:`.classification` (``error``, ``accuracy``, ``top5``, ``loss``, ``agreement``), :mod:`.fidelity`
(``cosine``, ``relative-l2``, ``kl``, ``snr-db``), :mod:`.regression` (``mse``, ``mae``) and
:mod:`.language` (``perplexity``, ``token-agreement``).
"""

from . import classification, fidelity, language, regression  # noqa: F401  (the families register on import)
from .base import (
    ENTRY_POINT_GROUP,
    METRICS,
    Metric,
    MetricInfo,
    custom_metric,
    get_metric,
    list_metrics,
    register_metric,
)

__all__ = ["ENTRY_POINT_GROUP", "METRICS", "Metric", "MetricInfo", "custom_metric", "get_metric", "list_metrics",
           "register_metric"]
