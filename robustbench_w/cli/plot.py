"""``wrobust plot``: figures of result files."""

from __future__ import annotations

from pathlib import Path

import click

from ..report.formats import DPI, FIGURE_SUFFIXES, PLOT_KINDS
from .app import cli
from .options import metric_option, output_option, quiet_option, results_argument


@cli.command()
@results_argument
@output_option("The figure: .png, .svg or .pdf.", FIGURE_SUFFIXES, required=True)
@click.option("--kind", type=click.Choice(list(PLOT_KINDS)), default="curves", show_default=True,
              help="curves: the metric against strength, one panel per distortion; frontier: against effective "
                   "bits per weight; layers: heatmap of the change per layer and strength (per-layer sweeps).")
@metric_option
@click.option("--dpi", type=click.IntRange(20, 1200), default=DPI, show_default=True, metavar="N",
              help="Resolution of a .png (dots per inch).")
@quiet_option
def plot(results: tuple[Path, ...], outputs: tuple[Path, ...], kind: str, metric: str | None, dpi: int,
         quiet: bool) -> None:
    """Draw RESULTS (files of wrobust sweep -o: .json, .csv, .jsonl, .parquet) into one figure, one line per
    result file (and model). Needs matplotlib: pip install 'robustbench_w[plot]'."""
    from ..report.console import stdout_console
    from ..report.plots import plot_results

    for output in outputs:
        plot_results(list(results), output, kind, metric, dpi)
        if not quiet:
            stdout_console().print(f"wrote {output}", markup=False, highlight=False)
