"""Options shared by several commands, as decorators, and click types for the values users type."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import click

from ..engine.defaults import (
    CONVERTER_RANGES,
    CONVERTERS_APPLY,
    DATA_ON,
    DEFAULT_CI_WIDTH,
    DEFAULT_MAX_TRIALS,
    DEVICE_PATTERN,
    IMAGE_MODES,
    NORMALIZE,
    POOLS,
    PRECISIONS,
    PRISTINE_MODES,
    REDRAW_MODES,
    SPLITS,
    TRIALS_CAP,
    too_many_trials,
)
from ..report.formats import OUTPUT_SUFFIXES, check_output_path


class NumberList(click.ParamType):
    """A comma-separated list of numbers of one kind: ``0,0.1,0.2`` (floats, ``inf`` allowed) or ``3,32,32``."""

    def __init__(self, kind: type = float, name: str = "LIST", what: str = "numbers",
                 valid: Callable[[float], bool] = lambda v: not math.isnan(v)):
        self.kind, self.name, self.what, self.valid = kind, name, what, valid

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return tuple(value)
        items = list_items(value, self, param, ctx)
        try:
            values = tuple(self.kind(v) for v in items)
        except ValueError:
            values = ()
        if not values or not all(self.valid(v) for v in values):
            self.fail(f"{value!r} is not a comma-separated list of {self.what}", param, ctx)
        return values


def list_items(value: object, kind: click.ParamType, param, ctx) -> list[str]:
    """The comma-separated items of ``value``, stripped; an empty item (``3,,64``, ``1,``) is a usage error."""
    items = [v.strip() for v in str(value).split(",")]
    if not any(items):
        kind.fail(f"{value!r} names nothing", param, ctx)
    if not all(items):
        kind.fail(f"{value!r} has an empty item (two commas in a row, or one at an end)", param, ctx)
    return items


SHAPE = NumberList(int, "C,H,W", "positive integers", lambda v: v >= 1)


class CountOrAuto(click.ParamType):
    """A positive whole number, or ``auto``."""

    def __init__(self, name: str = "N|auto", most: int | None = None):
        self.name, self.most = name, most

    def convert(self, value, param, ctx):
        if isinstance(value, int) and value >= 1:
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return text
        if not text.isdigit() or int(text) < 1:
            self.fail(f"{value!r} is neither a positive whole number nor auto", param, ctx)
        if self.most is not None and int(text) > self.most:
            self.fail(too_many_trials("", int(text)).strip(), param, ctx)
        return int(text)


class DeviceName(click.ParamType):
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; whether it exists here is checked when it is used."""

    name = "DEVICE"
    PATTERN = re.compile(DEVICE_PATTERN)

    def convert(self, value, param, ctx):
        text = str(value).strip().lower()
        if not self.PATTERN.fullmatch(text):
            self.fail(f"{value!r} is not a device: use auto, cpu, cuda, cuda:N or mps", param, ctx)
        return text


device_option = click.option("--device", type=DeviceName(), default="auto", show_default=True,
                             help="auto (a CUDA GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps.")


def _check_outputs(suffixes: tuple[str, ...] | None) -> Callable:
    """Each path checked (``None``: folders, checked when made); a path given twice counts once."""
    def check(ctx: click.Context, param: click.Parameter, values: tuple[Path, ...]) -> tuple[Path, ...]:
        paths = values if suffixes is None else [check_output_path(v, suffixes) for v in values]
        return tuple(dict.fromkeys(paths))

    return check


def compose(*decorators: Callable) -> Callable:
    def apply(f: Callable) -> Callable:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


model_argument = click.argument("model", metavar="MODEL")

model_options = compose(
    click.option("--arch", metavar="NAME", default=None,
                 help="Architecture for a plain state dict or safetensors file: built-in (wrobust list archs), any "
                      "torchvision model name, package.module:callable or path/to/file.py:callable."),
    click.option("--num-classes", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Number of outputs of --arch (default: the architecture's own)."),
    click.option("--trust-checkpoint", is_flag=True, default=False,
                 help="Allow a whole pickled module (torch.save(model)) or a TorchScript archive: loading them "
                      "runs code from the file. Only for files you trust."),
    click.option("--strict", is_flag=True, default=False,
                 help="A state dict must have exactly the architecture's keys (by default buffers it does not "
                      "load, such as position_ids, are ignored and missing buffers keep their values, with a note)."),
    click.option("--key", metavar="KEY", default=None,
                 help="Which state dict of a checkpoint holding several (a model and its EMA copy): the key, a nested "
                      "one as outer/inner (one tensor dict under any key is taken by itself, with a note)."),
    click.option("--ignore-keys", "ignore_keys", multiple=True, metavar="GLOB",
                 help="Leave the state dict's keys matching GLOB out (repeatable): parameters the architecture lacks, "
                      "such as a training-only head ('aux_head.*')."),
)

data_root_options = compose(
    click.option("--data-root", type=click.Path(path_type=Path, file_okay=False), default=None, metavar="DIR",
                 help="Folder of the torchvision datasets, in torchvision's layout "
                      "(default: $WROBUST_DATA or ~/.cache/wrobust/data)."),
    click.option("--download", is_flag=True, default=False,
                 help="Fetch a missing torchvision dataset into --data-root (nothing is fetched without it)."),
)

data_options = compose(
    click.option("--dataset", metavar="NAME", default=None,
                 help="Evaluation dataset (default: the one the checkpoint names): digits, mnist, fashion-mnist, "
                      "cifar10, cifar100, svhn, imagefolder:PATH, tensors:FILE, text:FILE, jsonl:FILE, synthetic. "
                      "See: wrobust list datasets."),
    click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True,
                 help="Which examples (all: train and test together). digits: test is every fifth image of each "
                      "class (355), train the other 1,442."),
    data_root_options,
    click.option("--image-size", type=click.IntRange(min=1), default=None, metavar="N",
                 help="imagefolder: resize to N/0.875 and centre-crop to N (default 224)."),
    click.option("--image-mode", type=click.Choice(IMAGE_MODES, case_sensitive=False), default=None,
                 metavar="|".join(IMAGE_MODES),
                 help="imagefolder: read images as grey (L) or colour (RGB) [default: what the model's first layer "
                      "takes, else RGB]."),
    click.option("--input-shape", type=SHAPE, default=None,
                 help="synthetic: the model's input shape without batch, e.g. 3,32,32 (if the checkpoint lacks it)."),
    click.option("--mean", type=NumberList(), default=None, metavar="LIST",
                 help="Normalisation mean, one value or one per channel (overrides the preset and the checkpoint)."),
    click.option("--std", type=NumberList(), default=None, metavar="LIST",
                 help="Normalisation std, one value or one per channel (overrides the preset and the checkpoint)."),
    click.option("--normalize", type=click.Choice(NORMALIZE, case_sensitive=False), default="auto",
                 show_default=True, help="none: the inputs are already model-ready (no normalisation at all); "
                                         "auto: the checkpoint's, else the dataset's."),
    click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Evaluate on a seeded, class-balanced subset of N examples (text:FILE: N windows)."),
    device_option,
)

batch_size_option = click.option(
    "--batch-size", type=CountOrAuto(), default="auto", show_default=True, metavar="N|auto",
    help="Inputs per forward pass. auto: 1024 on the CPU; on a GPU the largest power of two (up to 4096) "
         "that fits half the free memory, measured. Halved and retried on out-of-memory, either way.")

fast_options = compose(
    click.option("--precision", type=click.Choice(PRECISIONS, case_sensitive=False), default=PRECISIONS[0],
                 show_default=True, help="Arithmetic of the passes: fp32; tf32 (TensorFloat-32 matmuls and "
                                         "convolutions, CUDA only); bf16 (autocast, weights stay fp32)."),
    click.option("--channels-last", is_flag=True, default=False,
                 help="Convolutional models: weights and image batches in channels-last layout (fast on GPUs "
                      "with bf16/tf32)."),
    click.option("--compile", "compile_model", is_flag=True, default=False,
                 help="torch.compile the forward pass once per sweep (pays off for long sweeps)."),
    batch_size_option,
)

trial_options = compose(
    click.option("--trials", type=CountOrAuto(most=TRIALS_CAP), default="auto", show_default=True, metavar="N|auto",
                 help="Draws per strength of a random distortion (deterministic points run once). auto: at least "
                      "3, then more until the 95% interval is within --ci-width (gate: until it lies on one side "
                      "of every limit on the point), at most --max-trials."),
    click.option("--ci-width", type=click.FloatRange(min=0, min_open=True), default=None, metavar="W",
                 help="--trials auto: the largest half-width of a point's 95% interval, in percentage points for "
                      f"fractions such as the error, else in the metric's unit [default: {DEFAULT_CI_WIDTH:g}; "
                      "gate: none, else a limit inside an interval this narrow stops its point, undecided]."),
    click.option("--max-trials", type=click.IntRange(min=2, max=TRIALS_CAP), default=None, metavar="M",
                 help="--trials auto: at most M trials per point; a point stopped there is marked capped "
                      f"[default: {DEFAULT_MAX_TRIALS}]."),
)

target_options = compose(
    click.option("--include", multiple=True, metavar="GLOB",
                 help="Distort the parameters whose names match (repeatable); default: every weight that multiplies an "
                      "input (wrobust targets MODEL lists them)."),
    click.option("--exclude", multiple=True, metavar="GLOB", help="Leave these parameters alone (repeatable)."),
)

task_options = compose(
    click.option("--metric", "metric", multiple=True, metavar="NAME",
                 help="What to measure, repeatable (default: by task; a classifier: error, accuracy, loss, agreement; "
                      "a language model: perplexity; other outputs: cosine, relative-l2). See: wrobust list metrics."),
    click.option("--output-key", default=None, metavar="KEY",
                 help="Which output of a model returning a dict, tuple or ModelOutput is measured (default: logits, "
                      "else last_hidden_state, else the first tensor; a tuple position as 0, 1, ...)."),
    click.option("--pool", type=click.Choice(POOLS), default=None,
                 help="Token states (batch, tokens, features) to one vector per input: mean over the attention mask, "
                      "the first token, or none (default: mean for hidden states, none for logits)."),
    click.option("--seq-len", type=click.IntRange(min=2), default=None, metavar="N",
                 help="text:FILE: tokens per window; jsonl:FILE: the longest text kept (default 128)."),
)


layer_options = compose(
    click.option("--per-layer", is_flag=True, default=False,
                 help="Distort one targeted tensor (or --groups unit) at a time, the others clean; rank the layers "
                      "by the change of the metric. See docs/layers.md."),
    click.option("--groups", multiple=True, metavar="GLOB=NAME",
                 help="With --per-layer: the tensors matching GLOB form one unit NAME (repeatable; a tensor in no "
                      "group stays its own unit); --groups auto: one unit per block of a transformer's stack."),
    click.option("--activation-reuse/--no-activation-reuse", "reuse_activations", default=True, show_default=True,
                 help="With --per-layer on a chain of modules (nn.Sequential): compute the clean activations in "
                      "front of each unit once."),
)


hardware_options = compose(
    click.option("--redraw", type=click.Choice(REDRAW_MODES), default=REDRAW_MODES[0], show_default=True,
                 help="point: one draw of a random distortion per point; batch: a new draw for every batch of every "
                      "pass (read noise), seeded from the point and the batch. See docs/hardware.md."),
    click.option("--dac", type=click.IntRange(2, 24), default=None, metavar="BITS",
                 help="Quantize the input of every layer that owns a distorted weight to BITS bits (symmetric)."),
    click.option("--adc", type=click.IntRange(2, 24), default=None, metavar="BITS",
                 help="Quantize the output of every such layer to BITS bits (symmetric)."),
    click.option("--out-noise", type=click.FloatRange(min=0), default=None, metavar="SIGMA",
                 help="Add N(0, SIGMA * max|output|) to the output of every such layer (drawn per batch, seeded)."),
    click.option("--dac-range", type=click.Choice(CONVERTER_RANGES), default=CONVERTER_RANGES[0], show_default=True,
                 help="Converter ranges: static (each layer's max |input| and |output| over the evaluation set, "
                      "clean) or dynamic (each batch's own)."),
    click.option("--converters", type=click.Choice(CONVERTERS_APPLY), default=CONVERTERS_APPLY[0],
                 show_default=True, help="all: the converters apply to the clean row too (it is then the converter "
                                         "baseline); distorted-only: to the distorted points only."),
)


def hardware_kwargs(options: dict) -> dict:
    """The sweep's ``redraw`` and ``converters`` from :data:`hardware_options`' values (taken out of ``options``)."""
    from ..engine.passes.converters import ConverterSpec

    spec = ConverterSpec(options.pop("dac"), options.pop("adc"), options.pop("out_noise"), options.pop("dac_range"),
                         options.pop("converters"))
    return {"redraw": options.pop("redraw"), "converters": spec}


memory_options = compose(
    click.option("--pristine", type=click.Choice(PRISTINE_MODES, case_sensitive=False), default=PRISTINE_MODES[0],
                 show_default=True,
                 help="Where the clean weights live: device (a copy beside the model, about 2x its memory), host "
                      "(in host memory) or none (layer at a time: the model plus one tensor; the same rows). "
                      "See docs/large-models.md."),
    click.option("--data-on", type=click.Choice(DATA_ON, case_sensitive=False), default=DATA_ON[0],
                 show_default=True,
                 help="Where the evaluation set lives: device (kept there when it fits, else streamed) or host "
                      "(moved one batch at a time)."),
)


log_options = compose(
    click.option("--log", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE.jsonl",
                 help="Append each finished point to this run log (flushed to disk point by point)."),
    click.option("--resume", is_flag=True, default=False,
                 help="Continue the run in --log: evaluate only the points it lacks (a missing log starts it)."),
)


class ShardType(click.ParamType):
    """``I/N``: part I (from 1) of N of the grid."""

    name = "I/N"

    def convert(self, value, param, ctx):
        from ..engine.runs.shards import parse_shard

        return parse_shard(value)  # a bad value raises InvalidValueError: one line, exit 2


shard_option = click.option("--shard", type=ShardType(), default=None,
                            help="Evaluate part I of N of the grid (N jobs cover it once; wrobust merge joins them).")

seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Run seed: same seed, same numbers.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no report on the terminal.")


def output_option(help_text: str, suffixes: tuple[str, ...] | None = OUTPUT_SUFFIXES, *, required: bool = False,
                  folder: bool = False):
    """``-o/--output FILE`` (``DIR`` with ``folder``), repeatable: the command gets ``outputs``, a tuple, and
    writes every one. Each file is checked (suffix, folder, writer) before any work is done."""
    return click.option("-o", "--output", "outputs", multiple=True, required=required,
                        type=click.Path(path_type=Path, dir_okay=folder, file_okay=not folder),
                        callback=_check_outputs(suffixes), metavar="DIR" if folder else "FILE",
                        help=f"{help_text} Repeatable: each one is written.")


results_argument = click.argument("results", nargs=-1, required=True, metavar="RESULTS...",
                                  type=click.Path(path_type=Path, dir_okay=True))
metric_option = click.option("--metric", default=None, metavar="NAME",
                             help="Metric to show: a summary column NAME_mean (default: error, else the first metric "
                                  "with values in every file).")
