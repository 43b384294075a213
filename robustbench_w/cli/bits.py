"""``wrobust bits``: effective bits per weight, per tensor and in total, optionally after a distortion."""

from __future__ import annotations

from pathlib import Path

import click

from ..bits.defaults import DEFAULT_MAX_DISTINCT, DEFAULT_RESOLUTION, MAX_RESOLUTION
from ..report.formats import BITS_SUFFIXES
from .app import cli
from .options import (
    device_option,
    model_argument,
    model_options,
    output_option,
    quiet_option,
    seed_option,
    target_options,
)


@cli.command()
@model_argument
@click.option("-d", "--distortion", metavar="SPEC", default=None,
              help="Measure the weights after this distortion (NAME[:KEY=VALUE,...]); default: as they are.")
@click.option("--strength", type=float, default=None, metavar="X",
              help="Strength of the distortion (unless the spec fixes one, e.g. power:beta=0.5).")
@seed_option
@click.option("--resolution", type=click.IntRange(1, MAX_RESOLUTION), default=DEFAULT_RESOLUTION, show_default=True,
              metavar="B", help="Continuous tensors: entropy on 2^B levels spanning mean +- 4 std of each scale group.")
@click.option("--max-distinct", type=click.IntRange(min=1), default=DEFAULT_MAX_DISTINCT, show_default=True,
              metavar="N", help="Undistorted or continuous-distortion tensors with at most N distinct values per scale "
                                "group, each used twice on average, are counted exactly; others go on the grid.")
@model_options
@device_option
@target_options
@output_option("Write the figures: .json (meta, layers, total), .csv (one row per tensor), .md (the table).",
               BITS_SUFFIXES)
@quiet_option
def bits(model: str, distortion: str | None, strength: float | None, seed: int, resolution: int, max_distinct: int,
         outputs: tuple[Path, ...], quiet: bool, **options) -> None:
    """Effective bits per weight of MODEL: the Shannon entropy of each tensor's values.

    One row per targeted tensor and a total (the count-weighted mean, total bits / total weights). With
    -d, the figures are those of the distorted weights (the sweep's trial 0 for the same --seed): the
    entropy of the code within each scale group (granularity=channel: each output channel), with the
    scales reported beside it as side information. Each row says whether it was counted exactly or
    measured on the grid (continuous tensors). See docs/bits.md.
    """
    from ..bits.model import effective_bits
    from ..report.bits import render_bits, write_bits
    from ..report.console import stdout_console

    frame = effective_bits(model, distortion, strength, seed=seed, resolution=resolution, max_distinct=max_distinct,
                           **options)
    for path in outputs:
        write_bits(path, frame)
    if not quiet:
        console = stdout_console()
        render_bits(frame, console)
        for path in outputs:
            console.print(f"wrote {path}", markup=False, highlight=False)
