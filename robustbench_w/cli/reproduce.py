"""``wrobust reproduce``: the paper's grid (training rule x seed x test-time distortion) and its five claims."""

from __future__ import annotations

from pathlib import Path

import click

from ..engine.defaults import TRIALS_CAP
from ..paper.defaults import (
    CURVES,
    DEFAULT_RULES,
    PAPER_COLUMNS,
    QUICK_SEEDS,
    QUICK_TRIALS,
    SCHEDULES,
    SEEDS,
    TRIALS,
    WITHIN,
)
from .app import cli
from .options import data_root_options, device_option, list_items, output_option, quiet_option
from .train import data_source, threads_option, train_bars


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
@click.option("--dataset", default="digits", show_default=True, metavar="NAME",
              help="The dataset every model of the grid is trained and tested on (its recipe sets the defaults "
                   "below). See: wrobust list datasets.")
@click.option("--rules", type=SpecList(), default=",".join(DEFAULT_RULES), show_default=True,
              help="Training rules (none, clip, or projection specs with their strength).")
@click.option("--distortions", type=SpecList(), default=",".join(CURVES), show_default=True,
              help="Test-time distortions swept over their whole default grids (results.csv, the figure).")
@click.option("--at", type=SpecList(), default=",".join(PAPER_COLUMNS), show_default=True,
              help="The table's columns: distortions at one strength each (the paper's, by default).")
@click.option("--seeds", type=click.IntRange(min=1), default=None, metavar="N",
              help=f"Training seeds per rule: --seed, --seed + 1, ... [default: {SEEDS}; {QUICK_SEEDS} with --quick].")
@click.option("--trials", type=click.IntRange(min=1, max=TRIALS_CAP), default=None, metavar="N",
              help=f"Draws per strength of a random distortion [default: {TRIALS}; {QUICK_TRIALS} with --quick].")
@click.option("--quick", is_flag=True,
              help="Fewer seeds and trials, same recipe (digits: the full run's first models, under 2 minutes).")
@click.option("--within", type=click.FloatRange(min=0), default=WITHIN, show_default=True, metavar="K",
              help="Claim (e): the fewest bits at which a rule's error stays within K points of none's clean error.")
@click.option("--arch", default=None, metavar="NAME", help="Architecture [default: the dataset's recipe].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, metavar="N", help="[default: the dataset's recipe]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, metavar="X",
              help="Initial learning rate (Adam) [default: the dataset's recipe].")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None,
              help="Learning-rate schedule over the epochs [default: the dataset's recipe].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="Training examples per step [default: the dataset's recipe].")
@click.option("--clip", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, metavar="C",
              help="Hidden weights are clipped to [-C, C] after each step (every rule but none).")
@device_option
@threads_option
@click.option("--seed", type=int, default=0, show_default=True, help="The first training seed.")
@data_root_options
@output_option("Write DIR/report.md, claims.json, results.csv, summary.csv, the checkpoints in "
               "DIR/models/RULE-seedN.pt and, with matplotlib installed, figure.png.", None, folder=True)
@click.option("--resume", is_flag=True, default=False,
              help="Continue the run in the (first) -o folder: reuse its checkpoints that match this configuration "
                   "and resume the sweeps from their logs (DIR/logs/).")
@quiet_option
def reproduce(outputs: tuple[Path, ...], quiet: bool, data_root: Path | None, download: bool, resume: bool,
              **options) -> None:
    """Train each rule with several seeds, sweep each model under the paper's test-time distortions
    (Merolla et al. 2016), and test the paper's five claims: a verdict for each (shown, not shown,
    inconclusive) from its effect, a threshold and an interval over seeds, trials and the test set."""
    from ..paper.grid import GridConfig
    from ..paper.report import copy_models, output_dirs, write_grid
    from ..paper.reproduce import reproduce as run_grid
    from ..paper.reproduce import with_overrides
    from ..paper.resume import check_resume

    config = with_overrides(GridConfig(data_options=data_source(data_root, download)), **options)
    check_resume(resume, outputs[0] if outputs else None)
    try:
        with output_dirs(outputs) as dirs, train_bars(quiet, keep=False) as bars:
            result = run_grid(config, dirs[0] if dirs else None, bars, resume=resume)
            written = [p for d in dirs for p in write_grid(result, d)]
            copy_models(dirs)
    except KeyboardInterrupt as exc:  # Ctrl-C while training, or Ctrl-C/SIGTERM in a sweep
        signal_name = getattr(exc, "signal_name", "SIGINT")
        exc.message = (f"{signal_name}: the trained models and the finished points are kept in {outputs[0]} (its "
                       "report, claims and results are those of its last complete run): run again with --resume to "
                       "continue") if outputs else signal_name
        raise
    if not quiet:
        show(result, written, outputs)


def show(result, written: list[Path], outputs: tuple[Path, ...]) -> None:
    """The grid and the claims on the terminal, and what was written."""
    from ..paper.console import render_grid
    from ..report.console import stdout_console

    console = stdout_console()
    render_grid(result, console)
    for path in written:
        console.print(f"wrote {path}", markup=False, highlight=False)
    if outputs and not any(p.name == "figure.png" for p in written):
        console.print("no figure: matplotlib is not installed (pip install 'robustbench_w[plot]')",
                      markup=False, highlight=False)
