"""``wrobust sweep`` and ``wrobust demo``."""

from __future__ import annotations

from pathlib import Path

import click

from ..bits.tradeoff import lowest_bits
from ..engine.stats import summarize
from ..engine.sweep import DEFAULT_DISTORTIONS
from ..engine.sweep import sweep as run_sweep
from ..report.console import progress_bar, stdout_console
from ..report.files import records, write_results
from ..report.sweep import lowest_bits_lines, lowest_bits_markdown, render_sweep, summary_markdown
from .app import cli
from .options import (
    NumberList,
    data_options,
    model_argument,
    model_options,
    output_option,
    quiet_option,
    seed_option,
    target_options,
)

DEMO_MODEL = "builtin:digits-mlp"
DEMO_DISTORTIONS = ("noise", "multunif", "power", "sign", "round")


class ErrorRate(click.ParamType):
    """An error rate in [0, 1]: a fraction (``0.11``) or a percentage (``11%``)."""

    name = "E"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            rate = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            rate = float("nan")
        if not 0 <= rate <= 1:
            self.fail(f"{value!r} is not an error rate: give a fraction in [0, 1] (0.11) or a percentage (11%)", param, ctx)
        return rate


@cli.command()
@model_argument
@click.option("-d", "--distortion", "distortions", multiple=True, metavar="SPEC",
              help=f"NAME[:KEY=VALUE,...], repeatable (default: {', '.join(DEFAULT_DISTORTIONS)}).")
@click.option("-s", "--strengths", type=NumberList(), default=None,
              help="Comma-separated strengths for every -d that takes one (default: each distortion's own grid); "
                   "an error when none of them does.")
@click.option("--trials", type=click.IntRange(min=1), default=3, show_default=True,
              help="Draws per strength of a random distortion (deterministic points run once).")
@seed_option
@model_options
@data_options
@target_options
@click.option("--target-error", type=ErrorRate(), default=None, metavar="E",
              help="Report, per discrete distortion, the point with the fewest effective bits whose mean error "
                   "is at most E (0.11 or 11%).")
@output_option("Write results: .csv/.jsonl/.parquet (rows), .json (meta, rows, summary), .md (summary).")
@quiet_option
def sweep(model: str, distortions: tuple[str, ...], strengths, trials: int, seed: int, target_error: float | None,
          outputs: tuple[Path, ...], quiet: bool, **options) -> None:
    """Evaluate MODEL (a checkpoint path or builtin:NAME) under weight distortions.

    One row per distortion x strength x trial, plus the clean model; the report gives the mean error with
    its 95% confidence interval over trials, and the agreement with the clean model's predictions.
    """
    run_and_report(model, distortions or None, strengths, trials, seed, outputs, quiet, target_error=target_error,
                   **options)


@cli.command()
@click.option("--trials", type=click.IntRange(min=1), default=3, show_default=True)
@seed_option
@output_option("Also write the results to FILE (.csv, .json, .jsonl, .parquet, .md).")
@quiet_option
def demo(trials: int, seed: int, outputs: tuple[Path, ...], quiet: bool) -> None:
    """The main job end to end: sweep the built-in digits MLP over the paper's test-time distortions."""
    run_and_report(DEMO_MODEL, DEMO_DISTORTIONS, None, trials, seed, outputs, quiet, device="cpu")


def run_and_report(model, distortions, strengths, trials, seed, outputs, quiet, target_error=None, **options) -> None:
    with progress_bar(quiet) as progress:
        rows = run_sweep(model, options.pop("dataset", None), distortions, strengths, trials, seed,
                            progress=progress, **options)
    summary = summarize(rows)
    meta, markdown, lines = rows.attrs["meta"], None, []
    if target_error is not None:
        lowest = lowest_bits(summary, target_error)
        meta = {**meta, "target_error": target_error, "lowest_bits": records(lowest)}
        lines, markdown = lowest_bits_lines(lowest, target_error), lowest_bits_markdown(lowest, target_error)
    for path in outputs:
        write_results(path, rows, summary, meta, summary_markdown(summary, meta) + (markdown or ""))
    if not quiet:
        console = stdout_console()
        render_sweep(summary, meta, console)
        for line in lines:
            console.print(line, markup=False, highlight=False)
        for path in outputs:
            console.print(f"wrote {path}", markup=False, highlight=False)
