"""Small horizontal bars of a metric, one per strength, so that the shape of a curve shows in a table.

A bar is made of Unicode block characters in eighths of a cell (``█▉▊▋▌▍▎▏``): ``width`` cells resolve
``8 * width`` levels. The bars of one table share one scale, from the best to the worst value among its rows
and the clean model's value, and grow as the metric gets worse (an error up, an agreement down): the best
value has an empty bar (usually the clean model's, which has no row) and the worst row a full one, whichever
way the metric runs. A missing value has no bar; an infinite one is drawn at the end of the scale it lies
beyond.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EIGHTHS = " ▏▎▍▌▋▊▉"
FULL = "█"


def bar(fraction: float, width: int) -> str:
    """A bar filling ``fraction`` (clipped to [0, 1]) of ``width`` cells, padded with spaces to ``width``."""
    if fraction is None or math.isnan(fraction):
        return " " * width
    eighths = round(min(1.0, max(0.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    text = FULL * full + (EIGHTHS[part] if part else "")
    return text.ljust(width)


def scale(values: Sequence[float], clean: float = math.nan) -> tuple[float, float]:
    """``(low, high)`` of the finite values and the clean value; ``(nan, nan)`` when there are none."""
    finite = [v for v in [*values, clean] if v is not None and math.isfinite(v)]
    return (min(finite), max(finite)) if finite else (math.nan, math.nan)


def ends(values: Sequence[float], clean: float, higher_is_better: bool = False) -> tuple[float, float]:
    """``(best, worst)``: the ends of the bars' scale (empty, full)."""
    low, high = scale(values, clean)
    return (high, low) if higher_is_better else (low, high)


def bars(values: Sequence[float], clean: float, width: int, higher_is_better: bool = False) -> list[str]:
    """One bar per value, from empty at the best value to full at the worst (see the module docstring; all
    empty when every value is the same)."""
    best, worst = ends(values, clean, higher_is_better)
    span = worst - best  # negative when higher is better
    out = []
    for v in values:
        if v is None or math.isnan(v) or math.isnan(span):
            out.append(bar(math.nan, width))
        elif math.isinf(v):
            out.append(bar(1.0 if (v > 0) != higher_is_better else 0.0, width))
        else:
            out.append(bar((v - best) / span if span != 0 else 0.0, width))
    return out
