"""``wrobust gate``: check a model against robustness requirements; exit 0 pass, 1 fail (for CI)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import EXIT_FAILED
from ..report.formats import check_output_path
from .app import cli
from .options import (
    data_options,
    fast_options,
    hardware_options,
    log_options,
    memory_options,
    model_argument,
    model_options,
    output_option,
    seed_option,
    target_options,
    task_options,
    trial_options,
)

# Options of ``wrobust sweep`` that ``gate`` does not take, and why (tests/test_gate_options.py checks the list).
NOT_FOR_GATE = {
    "distortions": "the requirements name the distortions",
    "strengths": "each requirement names its strength",
    "targets": "the requirements are the targets (max/min on any metric)",
    "target_error": "the requirements are the targets (max_error)",
    "per_layer": "a gate judges the whole model (wrobust sweep --per-layer ranks layers)",
    "groups": "a --per-layer option",
    "reuse_activations": "a --per-layer option",
    "shard": "a verdict needs every point of the policy",
}
# Options of ``gate`` that are the command line's alone (every other one is also a [gate] key of the policy).
COMMAND_LINE_ONLY = {
    "model": "the model under test", "policy": "the policy itself", "baseline": "a file of this run",
    "junit": "a file of this run", "summary": "a file of this run", "outputs": "a file of this run",
    "quiet": "how this run prints", "log": "a file of this run", "resume": "how this run continues",
    "trust_checkpoint": "running the code in a pickle is the caller's decision, not a policy file's",
}
# Options both commands have, each with its own definition: what they write and print differs.
OWN_DEFINITION = {"outputs": "gate -o writes its JSON document only", "quiet": "gate -q still prints the failures"}
POLICY_KEY = {"compile_model": "compile"}  # an option whose [gate] key is spelt otherwise


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
@trial_options
@seed_option
@model_options
@data_options
@fast_options
@task_options
@target_options
@hardware_options
@memory_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no table; only the failures and the verdict.")
@log_options
@click.pass_context
def gate(ctx: click.Context, model: str, policy: Path | None, baseline: Path | None, junit: Path | None,
         summary: Path | None, outputs: tuple[Path, ...], quiet: bool, log: Path | None, resume: bool,
         trust_checkpoint: bool, **options) -> None:
    """Check MODEL against the robustness requirements of a policy; exit 0 if all pass, 1 if any fails.

    The policy names the evaluation (dataset, trials, seed, and any model, data or pass option of sweep, as
    image_size = 32) and the requirements: at a distortion and strength, limits on the error, its rise over
    the clean model, the agreement with the clean model, the effective bits per weight, or any metric (metric =
    "perplexity" with max, min, max_increase, min_ratio). An option given here wins over the policy's key.
    By default (trials = "auto") each random point gets trials until every requirement on it is decided.
    See docs/gate.md.
    """
    from ..engine.runs.distributed import current_world
    from ..engine.runs.signals import Interrupted
    from ..gate.policy import load_policy
    from ..gate.verdict import run_gate
    from ..report.console import progress_bar

    rules = load_policy(policy, given=given_options(ctx, options))
    leader = current_world().leader  # under torchrun only rank 0 shows and writes
    try:
        with progress_bar(quiet or not leader, "gate") as progress:
            result = run_gate(model, rules, baseline, progress=progress, log=log, resume=resume,
                              trust_checkpoint=trust_checkpoint)
    except Interrupted as exc:
        again = f"; the log {log} keeps the finished points: run again with --resume" if log else ""
        exc.message, exc.silent = f"{exc.signal_name}: no verdict{again}", not leader
        raise
    if not leader:
        ctx.exit(0 if result.passed else EXIT_FAILED)
    show(ctx, result, outputs, junit, summary, quiet)


def given_options(ctx: click.Context, options: dict) -> dict:
    """The options typed on the command line (or set in the environment), by their [gate] key: they win over
    the policy's; an option left at its default leaves the policy's value alone."""
    from click.core import ParameterSource

    typed = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {POLICY_KEY.get(name, name): value for name, value in options.items()
            if ctx.get_parameter_source(name) in typed}


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
