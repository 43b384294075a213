"""Figures: matplotlib (the optional extra ``[plot]``) through its object API (no pyplot, no global state),
a colour-blind-safe style per series, and atomic, reproducible saving as ``.png``, ``.svg`` or ``.pdf``.

Series are told apart by colour (the Okabe-Ito palette, safe for the common colour-vision deficiencies),
by marker and, from the ninth series on, by dash pattern as well.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from ..errors import InvalidValueError
from .files import atomic_write
from .formats import DPI, FIGURE_SUFFIXES  # noqa: F401  (what plot writes)

PLOT_EXTRA = "pip install 'robustbench_w[plot]'"
# Okabe & Ito 2008, "Color universal design": blue, vermillion, bluish green, reddish purple, orange,
# sky blue, yellow, black
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", "-.", ":")


def require_matplotlib(what: str = "plotting") -> None:
    """Raise one clear line (exit 2) when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InvalidValueError(f"{what} needs matplotlib, which is not installed: {PLOT_EXTRA}") from None


def new_figure(nrows: int, ncols: int, width: float, height: float):
    """``(figure, axes)``: a figure with a constrained layout and a 2-D array of axes."""
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def style(i: int) -> dict:
    """Colour, marker and line style of the ``i``-th series."""
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": DASHES[(i // len(OKABE_ITO)) % len(DASHES)]}


def legend_handles(labels: list[str], markers: bool = True) -> list:
    """One legend entry per series, in its style (without its marker where markers mean something else)."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], markersize=5, label=label, **{**style(i), **({} if markers else {"marker": None})})
            for i, label in enumerate(labels)]


def grid_shape(panels: int, most_columns: int = 3) -> tuple[int, int]:
    cols = max(1, min(panels, most_columns))
    return math.ceil(panels / cols), cols


def hide_unused(axes, used: int) -> None:
    for ax in axes.flat[used:]:
        ax.set_visible(False)


def save_figure(fig, path: Path, dpi: int = DPI) -> Path:
    """Write ``fig`` in the format of ``path``'s suffix, atomically; the same figure gives the same bytes."""
    fmt = Path(path).suffix.lower().lstrip(".")
    return atomic_write(Path(path), lambda p: _save(fig, p, fmt, dpi))


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    _save(fig, buffer, "png")
    return buffer.getvalue()


def _save(fig, target, fmt: str, dpi: int = DPI) -> None:
    from matplotlib import rc_context

    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt, {})
    with rc_context({"svg.hashsalt": "wrobust"}):
        fig.savefig(target, format=fmt, dpi=dpi, metadata=metadata)
