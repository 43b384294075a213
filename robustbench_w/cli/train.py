"""``wrobust train``: train a model with a weight-projection rule; write a checkpoint every command loads."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..paper.defaults import INITS, OPTIMIZERS, SCHEDULES
from .app import cli
from .options import compose, data_root_options, device_option, output_option, quiet_option, seed_option

CHECKPOINT_SUFFIXES = (".pt", ".pth")


def _arch_options(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    """``KEY=VALUE`` pairs; a value is read as JSON (``true``, ``[128,128]``, ``0.5``), else as text."""
    out = {}
    for item in values:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", ctx, param)
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
    help="CPU threads while training: a fixed count gives the same checkpoint on every machine; small models "
         "gain nothing from more.")

training_options = compose(
    click.option("--clip", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, metavar="C",
                 help="Hidden weights are clipped to [-C, C] after each step (every rule but none); "
                      "projections use the scale a = C unless the spec names scale=."),
    click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-2, show_default=True, metavar="X",
                 help="Initial learning rate (of the optimizer; the schedule lowers it over the epochs)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, metavar="N",
                 help="Training examples per step."),
    click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True,
                 help="The update of the hidden (full-precision) weights from the projected weights' gradients."),
    click.option("--schedule", type=click.Choice(SCHEDULES), default="cosine", show_default=True,
                 help="Learning-rate schedule over the epochs: constant; cosine, from --lr to 0; exp, from --lr "
                      "to --lr/1000 (BinaryConnect's)."),
    click.option("--init", type=click.Choice(INITS), default="uniform", show_default=True,
                 help="uniform: hidden weights ~ U(-C, C), filling the clip range; default: the architecture's own."),
    click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="X",
                 help="L2 penalty on the hidden weights (0: none)."),
    click.option("-A", "--arch-option", "arch_kwargs", multiple=True, callback=_arch_options, metavar="KEY=VALUE",
                 help="Keyword argument of the architecture, repeatable (e.g. -A hidden=[128,128] -A batch_norm=false)."),
    device_option,
    threads_option,
)


@cli.command()
@click.option("--dataset", default="digits", show_default=True, metavar="NAME",
              help="Training data: its train split; the test split gives the test error. See: wrobust list datasets.")
@click.option("--arch", default="mlp", show_default=True, metavar="NAME",
              help="Built-in (wrobust list archs), a torchvision model name, or module:callable / file.py:callable.")
@click.option("-p", "--projection", default="none", show_default=True, metavar="SPEC",
              help="Training rule: none, clip (clipping only), or a distortion spec with its strength "
                   "(sign, round, stoch, power:beta=0.5, stochm:gamma=0.5, ...).")
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True, metavar="N",
              help="Passes over the training split.")
@training_options
@seed_option
@data_root_options
@output_option("Checkpoint to write (.pt).", CHECKPOINT_SUFFIXES, required=True)
@quiet_option
def train(outputs: tuple[Path, ...], quiet: bool, data_root: Path | None, download: bool, **options) -> None:
    """Train with hidden full-precision weights and a weight projection (BinaryConnect-style).

    \b
    Each step: forward and backward with P(w) (re-drawn each step for random rules), update the hidden
    weights w with that gradient (straight-through), clip w to [-C, C]. The checkpoint holds the hidden
    weights and the training record; wrobust sweep/bits/gate load it with no other flag.
    """
    from ..paper.train import TrainConfig
    from ..paper.train import train as run_train

    config = TrainConfig(**options, data_options=data_source(data_root, download))
    try:
        with train_bars(quiet, keep=True) as bars:
            result = run_train(config, bars)
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: the epochs that finished go to NAME.partial.pt
        exc.message = save_partial(getattr(exc, "partial", None), outputs, getattr(exc, "signal_name", "SIGINT"))
        raise
    for path in outputs:
        result.save(path)
    if not quiet:
        from ..report.console import stdout_console
        from ..report.text import pct

        rec = result.record
        projected = "" if rec["test_error_projected"] != rec["test_error_projected"] else (
            f"; {pct(rec['test_error_projected'])}% with the projection {rec['rule']}")
        stdout_console().print(
            f"{result.arch} on {config.dataset}, rule {rec['rule']}, {config.epochs} epochs: test error "
            f"{pct(rec['test_error'])}% (hidden weights){projected} on {rec['test_examples']}; "
            f"{result.elapsed_s:.1f} s; wrote {', '.join(map(str, outputs))}",
            markup=False, highlight=False)


def save_partial(result, outputs: tuple[Path, ...], signal_name: str) -> str:
    """Write an interrupted training's model (its finished epochs) beside each output as ``NAME.partial.pt``, never
    over a complete ``NAME.pt``; returns what the ``interrupted`` line says."""
    from ..report.formats import partial_path

    if result is None or not result.record.get("epochs_done"):
        return f"{signal_name}: no epoch finished; nothing written"
    written = [result.save(partial_path(path)) for path in outputs]
    done, total = result.record["epochs_done"], result.record["epochs"]
    return f"{signal_name}: {done} of {total} epochs finished; {', '.join(map(str, written))} holds that model (partial)"


def data_source(data_root: Path | None, download: bool) -> dict:
    return {**({"data_root": data_root} if data_root else {}), **({"download": True} if download else {})}


@contextmanager
def train_bars(quiet: bool, keep: bool) -> Iterator[object | None]:
    """Bars on a terminal's stderr; ``None`` (silent) when quiet or when stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..paper.bars import TrainBars
    from ..report.console import stderr_console

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr_console(), transient=not keep) as progress:
        yield TrainBars(progress, keep)
