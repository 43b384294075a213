"""``wrobust targets``: every parameter of a model, its role, and whether a sweep distorts it."""

from __future__ import annotations

from pathlib import Path

from ..report.formats import TARGETS_SUFFIXES
from .app import cli
from .options import data_options, model_argument, model_options, output_option, quiet_option, target_options


@cli.command()
@model_argument
@model_options
@data_options
@target_options
@output_option("Write the table: .csv (one row per parameter), .json (meta, coverage, parameters).", TARGETS_SUFFIXES)
@quiet_option
def targets(model: str, outputs: tuple[Path, ...], quiet: bool, **options) -> None:
    """List every parameter of MODEL with its shape, role and size, and whether the default (and the given
    --include/--exclude) selects it for distortion; the coverage line at the end.

    The default targets are the weights that multiply an input: the probe batch of the data (the same as a
    sweep's) runs once and the parameters its forward pass multiplies are recorded. See docs/targets.md.
    """
    from ..engine.weights.inventory import list_targets
    from ..report.console import stdout_console
    from ..report.targets import render_targets, write_targets

    frame = list_targets(model, **options)
    for path in outputs:
        write_targets(path, frame)
    if not quiet:
        console = stdout_console()
        render_targets(frame, console, chosen=bool(options.get("include") or options.get("exclude")))
        for path in outputs:
            console.print(f"wrote {path}", markup=False, highlight=False)
