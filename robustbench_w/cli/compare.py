"""``wrobust compare``: result files side by side on their common points."""

from __future__ import annotations

from pathlib import Path

from ..report.formats import COMPARE_SUFFIXES
from .app import cli
from .options import metric_option, output_option, quiet_option, results_argument


@cli.command()
@results_argument
@metric_option
@output_option("Also write the comparison: .csv (one row per point), .json, .md.", COMPARE_SUFFIXES)
@quiet_option
def compare(results: tuple[Path, ...], metric: str | None, outputs: tuple[Path, ...], quiet: bool) -> None:
    """Compare result files A B [C...] on the points they share (same distortion spec and strength).

    The first file is the reference: for each other file, the difference at each common point, whether it is
    larger than the 95% intervals and the sampling error allow, and which model is better there. Points that
    only some files have are listed. Exit 2 when the files share no point.
    """
    from ..report.compare import compare as compare_results
    from ..report.comparison import render_comparison, write_comparison
    from ..report.console import stdout_console
    from ..report.results import load_all

    comparison = compare_results(load_all(results), metric)
    for output in outputs:
        write_comparison(output, comparison)
    if not quiet:
        console = stdout_console()
        render_comparison(comparison, console)
        for output in outputs:
            console.print(f"wrote {output}", markup=False, highlight=False)
