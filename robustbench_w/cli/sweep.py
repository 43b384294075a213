"""``wrobust sweep`` and ``wrobust demo``.

Library code is imported inside the commands (and the option types that need it), so that ``--help`` starts
without torch and pandas.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from ..engine.defaults import DEFAULT_DISTORTIONS
from ..errors import InvalidValueError
from .app import cli
from .options import (
    NumberList,
    data_options,
    fast_options,
    hardware_kwargs,
    hardware_options,
    layer_options,
    log_options,
    memory_options,
    model_argument,
    model_options,
    output_option,
    quiet_option,
    seed_option,
    shard_option,
    target_options,
    task_options,
    trial_options,
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


class MetricTarget(click.ParamType):
    """``METRIC=VALUE``: a registered metric and a limit (a number, or a percentage such as ``11%``)."""

    name = "METRIC=VALUE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        name, eq, text = str(value).partition("=")
        text = text.strip()
        try:
            limit = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            limit = float("nan")
        if not eq or not name.strip() or math.isnan(limit):
            self.fail(f"{value!r} is not METRIC=VALUE (for example perplexity=40 or error=11%)", param, ctx)
        from ..engine.passes.metrics import get_metric

        return get_metric(name.strip()).name, limit


SWEEP_SECTIONS = [  # sweep --help, by group; an option in none of them is listed under "Other options"
    ("Model", ["arch", "num_classes", "trust_checkpoint", "strict", "key", "ignore_keys"]),
    ("Data", ["dataset", "split", "data_root", "download", "image_size", "image_mode", "input_shape", "mean", "std",
              "normalize", "limit", "seq_len"]),
    ("Distortions", ["distortions", "strengths", "include", "exclude", "per_layer", "groups"]),
    ("Trials", ["trials", "ci_width", "max_trials", "seed"]),
    ("Outputs and what is measured", ["outputs", "metric", "output_key", "pool", "targets", "target_error", "log",
                                      "resume", "shard", "quiet"]),
    ("Speed", ["device", "precision", "channels_last", "compile_model", "batch_size", "reuse_activations"]),
]
SWEEP_EXAMPLES = [
    "wrobust sweep model.pt -d noise -o results.csv",
    "wrobust sweep net.pth --arch resnet18 --dataset cifar10 -d noise:sigma=0/0.05 -d quantize:bits=8/4",
    "wrobust sweep model.pt -d sign --per-layer --log run.jsonl -o layers.csv",
]


@cli.command(sections=SWEEP_SECTIONS, examples=SWEEP_EXAMPLES)
@model_argument
@click.option("-d", "--distortion", "distortions", multiple=True, metavar="SPEC",
              help=f"NAME[:KEY=VALUE,...], repeatable (default: {', '.join(DEFAULT_DISTORTIONS)}). A grid of "
                   f"its own: noise:sigma=0/0.01/0.05.")
@click.option("-s", "--strengths", type=NumberList(), default=None,
              help="Comma-separated strengths for every -d that takes one (default: each distortion's own grid); "
                   "an error when none of them does. Give it once; for a grid per distortion use the spec's list "
                   "form.")
@trial_options
@seed_option
@model_options
@data_options
@fast_options
@task_options
@target_options
@click.option("--target", "targets", type=MetricTarget(), multiple=True,
              help="Report, per discrete distortion, the point with the fewest effective bits whose mean METRIC "
                   "meets VALUE (at most VALUE, or at least for a metric where higher is better), repeatable: "
                   "perplexity=40, cosine=0.99, error=11%.")
@click.option("--target-error", type=ErrorRate(), default=None, metavar="E",
              help="The same as --target error=E (0.11 or 11%).")
@layer_options
@hardware_options
@memory_options
@output_option("Write results: .csv/.jsonl/.parquet (rows), .json (meta, rows, summary), .md (summary).")
@log_options
@shard_option
@quiet_option
def sweep(model: str, distortions: tuple[str, ...], strengths, trials: int | str, seed: int, targets: tuple,
          target_error: float | None, outputs: tuple[Path, ...], quiet: bool, metric: tuple[str, ...],
          compile_model: bool, **options) -> None:
    """Evaluate MODEL (a checkpoint path, builtin:NAME or hf:DIR) under weight distortions.

    One row per distortion x strength x trial, plus the clean model; the report gives each metric's mean with
    its 95% confidence interval over trials (a classifier: the error, and the agreement with the clean
    model's predictions; a language model: the perplexity; see --metric).

    Long runs: --log keeps every finished point, --resume continues a killed run, --shard I/N splits the grid
    over N jobs (join them with wrobust merge), and under torchrun each process takes its share. Ctrl-C
    writes the finished points (partial) and exits 130. See docs/resume.md.

    Which layers are fragile: --per-layer distorts one tensor (or --groups unit) at a time and ranks the layers
    by the change of the metric over the clean model at each strength. See docs/layers.md.
    """
    from ..report.lowest_bits import check_targets

    targets = ((("error", target_error),) if target_error is not None else ()) + tuple(targets)
    check_targets(targets, metric)
    if targets and options.get("per_layer"):
        raise InvalidValueError("--target finds the lowest-bits whole-model point; it does not apply to --per-layer "
                                "(run the two sweeps separately)")
    run_and_report(model, distortions or None, strengths, trials, seed, outputs, quiet, targets=targets,
                   metric=list(metric) or None, compile=compile_model, **hardware_kwargs(options), **options)


@cli.command()
@trial_options
@seed_option
@output_option("Also write the results to FILE (.csv, .json, .jsonl, .parquet, .md).")
@quiet_option
def demo(trials: int | str, seed: int, outputs: tuple[Path, ...], quiet: bool, **options) -> None:
    """The main job end to end: sweep the built-in digits MLP over the paper's test-time distortions.

    By default each random point gets trials until its 95% interval of the error is within ±2 percentage
    points (at most 30; a point stopped at the cap is marked). The demo runs on one CPU thread: its model is
    tiny, and more threads only wait for each other (and for other work on a busy machine).
    """
    from ..paper.train import cpu_threads

    with cpu_threads(1):
        run_and_report(DEMO_MODEL, DEMO_DISTORTIONS, None, trials, seed, outputs, quiet, device="cpu", **options)


def run_and_report(model, distortions, strengths, trials, seed, outputs, quiet, targets=(), **options) -> None:
    from ..engine.runs.distributed import current_world
    from ..engine.runs.signals import Interrupted
    from ..engine.runs.sweep import sweep as run_sweep
    from ..report.console import progress_bar

    leader = current_world().leader  # under torchrun only rank 0 shows and writes
    stopped = None
    try:
        with progress_bar(quiet or not leader) as progress:
            rows = run_sweep(model, options.pop("dataset", None), distortions, strengths, trials, seed,
                             progress=progress, **options)
    except Interrupted as exc:
        if exc.partial is None:
            raise
        rows, stopped = exc.partial, exc
    written = report(rows, outputs, quiet, targets) if leader else []
    if stopped is not None:
        stopped.message = interrupted_message(stopped, rows.attrs["meta"], written, options.get("log"))
        stopped.silent = not leader
        raise stopped


def report(rows, outputs, quiet, targets) -> list[Path]:
    """Summarise the rows, write ``outputs`` and show the report; returns the files written. Partial rows say so,
    and go to ``NAME.partial.SUFFIX``: an earlier complete ``NAME.SUFFIX`` is kept as it was."""
    from ..engine.runs.stats import summarize
    from ..report.console import stdout_console
    from ..report.files import partial_path, write_results
    from ..report.lowest_bits import target_report
    from ..report.sweep import render_sweep, summary_markdown

    summary = summarize(rows)
    meta, lines, markdown = target_report(summary, rows.attrs["meta"], targets)
    note = partial_note(meta)
    text = summary_markdown(summary, meta) + markdown
    outputs = [partial_path(p) for p in outputs] if note else list(outputs)
    for path in outputs:
        write_results(path, rows, summary, meta, f"{note}\n\n{text}" if note else text)
    if not quiet:
        console = stdout_console()
        if note:
            console.print(note, markup=False, highlight=False)
        render_sweep(summary, meta, console)
        for line in lines:
            console.print(line, markup=False, highlight=False)
        for path in outputs:
            console.print(f"wrote {path}", markup=False, highlight=False)
    return outputs


def partial_note(meta: dict) -> str:
    if not meta.get("partial"):
        return ""
    return f"PARTIAL: {meta['points_done']} of {meta['points_planned']} points (the run was interrupted)"


def interrupted_message(exc, meta: dict, outputs, log) -> str:
    held = ", ".join(map(str, outputs))
    where = f"; {held} {'hold' if len(outputs) > 1 else 'holds'} them (partial)" if outputs else ""
    again = "; run again with --resume to finish" if log is not None else ""
    return f"{exc.signal_name}: {meta['points_done']} of {meta['points_planned']} points finished{where}{again}"
