"""``wrobust gate``: check a model against robustness requirements; exit 0 pass, 1 fail (for CI)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import EXIT_FAILED
from ..report.formats import check_output_path
from .app import cli
from .options import (
    device_option,
    fast_options,
    log_options,
    model_argument,
    model_options,
    output_option,
    task_options,
)


def _output(suffixes: tuple[str, ...] | None):
    """A click callback: check an output path before any work (``None``: any suffix)."""

    def check(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
        if value is None:
            return None
        return check_output_path(value, suffixes or (value.suffix.lower(),))

    return check


def _file_option(*names: str, suffixes: tuple[str, ...] | None, help: str):
    return click.option(*names, type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
                        callback=_output(suffixes), help=help)


@cli.command()
@model_argument
@click.option("--policy", type=click.Path(path_type=Path, exists=True, dir_okay=False, readable=False), default=None,
              metavar="FILE.toml", help="The policy (default: [tool.wrobust.gate] in ./pyproject.toml).")
@click.option("--baseline", type=click.Path(path_type=Path, exists=True, dir_okay=False, readable=False), default=None,
              metavar="RESULTS.json", help="Also fail a point whose error rose over this earlier gate/sweep JSON.")
@_file_option("--junit", suffixes=(".xml",), help="Write JUnit XML: one test case per requirement.")
@_file_option("--summary", suffixes=None, help="Write a Markdown summary (for $GITHUB_STEP_SUMMARY).")
@output_option("Write JSON: verdicts and measured rows (a later --baseline).", (".json",))
@model_options
@task_options
@fast_options
@device_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no table; only the failures and the verdict.")
@log_options
@click.pass_context
def gate(ctx: click.Context, model: str, policy: Path | None, baseline: Path | None, junit: Path | None,
         summary: Path | None, outputs: tuple[Path, ...], quiet: bool, metric: tuple[str, ...], compile_model: bool,
         **options) -> None:
    """Check MODEL against the robustness requirements of a policy; exit 0 if all pass, 1 if any fails.

    The policy names the evaluation (dataset, trials: a number or "auto", seed) and the requirements: at a
    distortion and strength, limits on the error, its rise over the clean model, the agreement with the clean
    model, the effective bits per weight, or any metric (metric = "perplexity" with max, min, max_increase, min_ratio).
    See docs/gate.md.
    """
    from ..engine.runs.distributed import current_world
    from ..engine.runs.signals import Interrupted
    from ..gate.policy import load_policy
    from ..gate.verdict import run_gate
    from ..report.console import progress_bar

    rules = load_policy(policy)
    leader = current_world().leader  # under torchrun only rank 0 shows and writes
    try:
        with progress_bar(quiet or not leader, "gate") as progress:
            result = run_gate(model, rules, baseline, progress=progress, metric=list(metric), compile=compile_model,
                              **options)
    except Interrupted as exc:
        again = "; the log keeps the finished points: run again with --resume" if options.get("log") else ""
        exc.message, exc.silent = f"{exc.signal_name}: no verdict{again}", not leader
        raise
    if not leader:
        ctx.exit(0 if result.passed else EXIT_FAILED)
    show(ctx, result, outputs, junit, summary, quiet)


def show(ctx: click.Context, result, outputs: tuple[Path, ...], junit: Path | None, summary: Path | None,
         quiet: bool) -> None:
    """Write the gate's files, render its verdict, exit 1 when it failed."""
    from ..gate.report import render_gate, write_gate_files
    from ..report.console import stdout_console

    written = [p for out in outputs for p in write_gate_files(result, output=out)]
    written += write_gate_files(result, junit=junit, summary=summary)
    console = stdout_console()
    render_gate(result, console, table=not quiet)
    if not quiet:
        for path in written:
            console.print(f"wrote {path}", markup=False, highlight=False)
    if not result.passed:
        ctx.exit(EXIT_FAILED)
