"""How numbers read on the terminal and in Markdown: percentages, intervals, strengths."""

from __future__ import annotations

import math


def pct(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def ci_text(low: float, high: float) -> str:
    if any(v is None or math.isnan(v) for v in (low, high)):
        return "-"
    return f"[{pct(low)}, {pct(high)}]"


def strength_text(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:g}"
