"""``wrobust reproduce``: the paper's grid, training rule x test-time distortion, as a report."""

from __future__ import annotations

from pathlib import Path

import click

from ..paper.report import copy_models, output_dirs, render_grid, write_grid
from ..paper.reproduce import DEFAULT_RULES, GRID_DISTORTIONS, GridConfig, with_overrides
from ..paper.reproduce import reproduce as run_grid
from ..report.console import stdout_console
from .app import cli
from .options import data_root_options, device_option, list_items, output_option, quiet_option, seed_option
from .train import data_source, train_bars


class SpecList(click.ParamType):
    """Comma-separated specs; a piece ``KEY=VALUE`` without a name continues the spec before it, so
    ``none,power:beta=0.5,scale=max`` is two specs."""

    name = "LIST"

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return tuple(value)
        specs: list[str] = []
        for piece in list_items(value, self, param, ctx):
            if "=" in piece and ":" not in piece and specs:
                specs[-1] += ("," if ":" in specs[-1] else ":") + piece
            else:
                specs.append(piece)
        return tuple(specs)


@cli.command()
@click.option("--dataset", default="digits", show_default=True, metavar="NAME")
@click.option("--rules", type=SpecList(), default=",".join(DEFAULT_RULES), show_default=True,
              help="Training rules (none, clip, or projection specs with their strength).")
@click.option("--distortions", type=SpecList(), default=",".join(GRID_DISTORTIONS), show_default=True,
              help="Test-time distortions, each over its default grid.")
@click.option("--trials", type=click.IntRange(min=1), default=None, metavar="N",
              help="Draws per strength of a random distortion [default: 5; 3 with --quick].")
@click.option("--quick", is_flag=True, help="Fewer epochs and trials (digits: well under a minute on a laptop CPU).")
@click.option("--arch", default=None, metavar="NAME", help="Architecture [default: the dataset's preset].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, metavar="N", help="[default: the dataset's preset]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, metavar="X")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, metavar="N")
@click.option("--clip", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, metavar="C")
@device_option
@seed_option
@data_root_options
@output_option("Write DIR/results.csv, summary.csv, report.md, the checkpoints in DIR/models/ and, with "
               "matplotlib installed, figure.png.", None, folder=True)
@quiet_option
def reproduce(outputs: tuple[Path, ...], quiet: bool, data_root: Path | None, download: bool, **options) -> None:
    """Train one model per rule and sweep each under the paper's test-time distortions
    (Merolla et al. 2016): a table of rule x distortion, and what it shows."""
    config = with_overrides(GridConfig(data_options=data_source(data_root, download)), **options)
    with output_dirs(outputs) as dirs, train_bars(quiet, keep=False) as bars:
        result = run_grid(config, dirs[0] if dirs else None, bars)
        written = [p for d in dirs for p in write_grid(result, d)]
        copy_models(dirs)
    if not quiet:
        console = stdout_console()
        render_grid(result, console)
        for path in written:
            console.print(f"wrote {path}", markup=False, highlight=False)
        if outputs and not any(p.name == "figure.png" for p in written):
            console.print("no figure: matplotlib is not installed (pip install 'robustbench_w[plot]')",
                          markup=False, highlight=False)
