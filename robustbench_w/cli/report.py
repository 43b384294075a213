"""``wrobust report``: a self-contained HTML page (or Markdown with figures beside it) from result files."""

from __future__ import annotations

from pathlib import Path

import click

from ..report.formats import REPORT_SUFFIXES
from .app import cli
from .options import metric_option, output_option, quiet_option, results_argument


@cli.command()
@results_argument
@output_option("report.html (one self-contained page) or report.md (figures beside it as PNG files).",
               REPORT_SUFFIXES, required=True)
@metric_option
@click.option("--title", default="wrobust report", show_default=True, help="The report's heading.")
@click.option("--force", is_flag=True, default=False,
              help="report.md: replace existing files named like its figures (report-curves.png, ...) that an "
                   "earlier report.md did not write (without it that is an error).")
@quiet_option
def report(results: tuple[Path, ...], outputs: tuple[Path, ...], metric: str | None, title: str, force: bool,
           quiet: bool) -> None:
    """Write a report of RESULTS: each run's meta and summary tables, the curves (and the effective-bits
    frontier and per-layer heatmap where the results have them), and a comparison when there are several
    models. The HTML page embeds its figures and loads nothing from the network."""
    from ..report.console import stdout_console
    from ..report.publish import write_report

    written = [path for output in outputs for path in write_report(list(results), output, metric, title, force)]
    if not quiet:
        console = stdout_console()
        for path in written:
            console.print(f"wrote {path}", markup=False, highlight=False)
