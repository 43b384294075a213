"""``wrobust merge``: combine shard logs or result files of one run into one result."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidValueError
from .app import cli
from .options import output_option, quiet_option

SHOWN = 5  # points named in a report line; the rest are counted


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False), metavar="FILES...")
@output_option("The merged results: .csv/.jsonl/.parquet (rows), .json (meta, rows, summary), .md (summary).",
               required=True)
@click.option("--complete", is_flag=True, default=False,
              help="Exit 2 (writing nothing) when points of the grid are missing.")
@quiet_option
def merge(files: tuple[Path, ...], outputs: tuple[Path, ...], complete: bool, quiet: bool) -> None:
    """Combine the run logs (--log) or result files (-o) of the shards of one run into OUTPUT.

    Files of different models, datasets, targets or seeds are refused (exit 2). Points missing from the
    grid and points found in more than one file are reported (duplicates are kept once).
    """
    from ..engine.runs.stats import summarize
    from ..report.console import stdout_console
    from ..report.files import write_results
    from ..report.merge import merge_files
    from ..report.sweep import summary_markdown

    merged = merge_files(files)
    notes = problems(merged)
    if complete and merged.missing:
        raise InvalidValueError(f"{notes[0]} (--complete)")
    summary = summarize(merged.rows)
    for output in outputs:
        write_results(output, merged.rows, summary, merged.meta, summary_markdown(summary, merged.meta))
    for line in notes:
        click.echo(f"wrobust: warning: {line}", err=True)
    if not quiet:
        planned = merged.meta.get("points_planned")
        of = f" of {planned}" if planned else ""
        line = (f"merged {len(files)} file{'s' if len(files) > 1 else ''}: {merged.meta['points_done']}{of} points "
                f"and the clean model; wrote {', '.join(map(str, outputs))}")
        stdout_console().print(line, markup=False, highlight=False)


def problems(merged) -> list[str]:
    """One line each for missing points, duplicates and conflicts."""
    lines = []
    for keys, what in ((merged.missing, "missing from every file"),
                       (merged.duplicates, "in more than one file (kept once)"),
                       (merged.conflicts, "in more than one file with different numbers (kept the first)")):
        if keys:
            named = ", ".join(keys[:SHOWN]) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")
            lines.append(f"{len(keys)} point{'s' if len(keys) > 1 else ''} {what}: {named}")
    return lines
