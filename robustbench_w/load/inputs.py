"""Turn what the user named (a model spec, a dataset name, a device) into ready objects.

Every command loads its inputs through :func:`load_inputs`, so that model options (``--arch``, ...) and
data options (``--data-root``, ...) mean the same thing everywhere. Options are passed flat, as the CLI
parses them, and routed by name.

Normalisation: none with ``--normalize none`` (inputs that are already model-ready); ``--mean``/``--std`` when
given (the option ``overrides_from`` says where they came from: ``--mean/--std`` unless a caller, such as a
gate reading them from its policy, says otherwise); else the checkpoint's, when it records one (it is what the
model expects); else the dataset's (its preset, or what a ``tensors:`` file records). The evaluation set
records which, as ``normalization_source``. Named inputs (token ids) and batches given from Python are never
normalised. The model's input shape, normalisation, image mode (from its first layer) and tokenizer are
offered to the dataset loader (``synthetic`` draws its inputs from them, ``imagefolder`` reads grey or colour
images, ``text:FILE`` and ``jsonl:FILE`` tokenise with it). Before any sweep, one probe batch of two inputs
checks that the model runs on the data; what its outputs must look like depends on the metrics, and is checked
by the engine.

The dataset may also be an :class:`EvalSet`, or any iterable of batches (a ``DataLoader``, a list of dicts
or tuples; see :mod:`..datasets.batches`). Named inputs (a dict of tensors) are passed to the model as keyword
arguments (:func:`call_model`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..datasets.base import OVERRIDES_FROM, EvalSet, Normalization, describe_inputs, limit_subset, load_dataset
from ..datasets.base import Inputs as ModelInputs
from ..datasets.batches import BatchedSet, from_batches
from ..datasets.text import DEFAULT_SEQ_LEN
from ..errors import InvalidValueError, MissingOptionsError
from .checkpoints import LoadedModel, load_model
from .device import resolve_device
from .hf import max_positions
from .layers import is_weight_layer
from .usercode import user_code_error
from .uses import Uses, recording

# Option names that belong to checkpoint loading; every other option goes to the dataset loader.
MODEL_OPTIONS = frozenset({"arch", "num_classes", "trust_checkpoint", "strict", "key", "ignore_keys"})
OVERRIDES = ("mean", "std")
NORMALIZE = ("auto", "none")  # --normalize: auto (checkpoint, else dataset) or none (inputs are model-ready)
NO_DATASET = "--dataset NAME (the checkpoint names no dataset)"


DataSet = EvalSet | BatchedSet


@dataclass
class Inputs:
    """A loaded model, its evaluation set and device, and the probe that checked they fit (its outputs are
    reused by the engine's task planning, so the model runs on the probe batch once per sweep)."""

    model: LoadedModel
    data: DataSet
    device: torch.device
    probed: Probe | None = None


@dataclass(frozen=True)
class Probe:
    """The model's raw outputs on the first two inputs of ``data`` (the ``inputs`` and ``labels`` on the device),
    and how that forward pass used the model's parameters (:mod:`.uses`: the sweep's default targets)."""

    module: nn.Module
    data: object
    raw: object
    inputs: ModelInputs
    labels: torch.Tensor | None
    uses: Uses | None = None

    def of(self, module: nn.Module, data: object) -> Probe | None:
        """This probe when it was taken of ``module`` on ``data``, else None."""
        return self if module is self.module and data is self.data else None


def call_model(module: nn.Module, x: ModelInputs) -> object:
    """Run the model on one batch: named inputs as keyword arguments, a tensor as the one argument."""
    return module(**x) if isinstance(x, dict) else module(x)


def to_device(x: ModelInputs, device: torch.device) -> ModelInputs:
    if isinstance(x, dict):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


def split_options(options: dict) -> tuple[dict, dict]:
    """(model options, data options); ``None`` values (options not given) are dropped."""
    given = {k: v for k, v in options.items() if v is not None}
    return ({k: v for k, v in given.items() if k in MODEL_OPTIONS},
            {k: v for k, v in given.items() if k not in MODEL_OPTIONS})


def as_loaded(model: str | LoadedModel | nn.Module, device: torch.device, **model_options) -> LoadedModel:
    if isinstance(model, LoadedModel):
        on_device(model.module, device).eval()
        return model
    if isinstance(model, nn.Module):
        return LoadedModel(module=on_device(model, device).eval(), name=type(model).__name__)
    return load_model(model, device=device, **model_options)


def on_device(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with its parameters and buffers on ``device`` (moved only when one is elsewhere: an in-memory
    model swept again and again is not walked each time)."""
    if any(t.device != device for t in [*module.parameters(), *module.buffers()]):  # "cuda" vs "cuda:0": moved
        module.to(device)
    return module


def as_evalset(dataset: object, model: LoadedModel, limit: int | None = None, seed: int = 0,
               **data_options) -> DataSet:
    if dataset is not None and not isinstance(dataset, (str, EvalSet, BatchedSet)):
        dataset = from_batches(dataset)
    if isinstance(dataset, BatchedSet):
        return dataset.limited(limit) if limit else dataset
    if isinstance(dataset, EvalSet):
        if any(k in data_options for k in OVERRIDES):
            norm = dataset.normalization.with_overrides(data_options.get("mean"), data_options.get("std"))
            source = data_options.get("overrides_from", OVERRIDES_FROM)
            dataset = replace(dataset, normalization=norm, normalization_source=source)
        return limit_subset(dataset, limit, seed) if limit else dataset
    name = dataset or model.dataset
    if name is None:
        raise InvalidValueError(f"{model.name}: the checkpoint names no dataset; pass --dataset NAME ({_example(model)})")
    data_options.setdefault("input_shape", model.input_shape)
    data_options.setdefault("model_normalization", model.normalization)
    data_options.setdefault("image_mode", image_mode_of(model))
    data_options.setdefault("tokenizer", model.tokenizer)
    if model.tokenizer is not None:
        fit_positions(model, data_options)
    return load_dataset(name, limit=limit, seed=seed, **data_options)


def fit_positions(model: LoadedModel, data_options: dict) -> None:
    """Windows no longer than the model's positions: ``--seq-len`` above them is an error, the default shrinks."""
    most = max_positions(model.module)
    given = data_options.get("seq_len")
    if most is None:
        return
    if given is not None and int(given) > most:
        raise InvalidValueError(f"--seq-len {given} is more than {model.name} has positions ({most}): give "
                                f"--seq-len {most} or less")
    if given is None and most < DEFAULT_SEQ_LEN:
        data_options["seq_len"] = most


def _example(model: LoadedModel) -> str:
    """A ``--dataset`` example that fits the model: its own input shape when it records one; text for a model
    with a tokenizer."""
    if model.tokenizer is not None:
        return "text:FILE, tokenised with the model's tokenizer, or jsonl:FILE"
    if model.input_shape:
        shape = "x".join(map(str, model.input_shape))
        return f"a labelled set of {shape} inputs, or synthetic: seeded {shape} inputs, agreement only"
    return "for example --dataset synthetic --input-shape C,H,W: seeded inputs, agreement only"


def image_mode_of(model: LoadedModel) -> str | None:
    """``L`` or ``RGB`` for a model that takes 1 or 3 input channels (its recorded input shape, else the input
    channels of its first convolution), else None."""
    channels = model.input_shape[0] if model.input_shape and len(model.input_shape) == 3 else None
    if channels is None:
        first = next((m for m in model.module.modules() if is_weight_layer(m)), None)
        weight = getattr(first, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 4:
            channels = int(weight.shape[1]) * int(getattr(first, "groups", 1))
    return {1: "L", 3: "RGB"}.get(channels)


def resolve_normalization(model: LoadedModel, data: DataSet, chosen: str | None = None) -> tuple[LoadedModel, DataSet]:
    """The model and evaluation set of this run, both carrying the normalisation it uses (copies where that
    differs: the caller's objects are left as they were), and the set saying where it came from. ``chosen``:
    ``"none"`` (``--normalize none``), ``"flags"`` (``--mean``/``--std``, already in ``data``) or None. Named
    inputs and given batches are not normalised."""
    if data.named or isinstance(data, BatchedSet):
        return model, data
    if chosen == "none":
        norm, source = Normalization(), "--normalize none"
    elif chosen == "flags" or model.normalization is None:
        norm, source = data.normalization, data.normalization_source
    else:
        norm, source = model.normalization, "the checkpoint"
    if model.normalization != norm:
        model = replace(model, normalization=norm)
    if (data.normalization, data.normalization_source) != (norm, source):
        data = replace(data, normalization=norm, normalization_source=source)
    return model, data


def normalization_choice(data_options: dict) -> str | None:
    """Take ``normalize`` out of the data options: ``"none"``, ``"flags"`` (``--mean``/``--std``) or None."""
    normalize = str(data_options.pop("normalize", None) or "auto").lower()
    if normalize not in NORMALIZE:
        raise InvalidValueError(f"--normalize must be one of {', '.join(NORMALIZE)}, not {normalize!r}")
    flags = any(k in data_options for k in OVERRIDES)
    if normalize == "none" and flags:
        raise InvalidValueError("--normalize none and --mean/--std contradict each other: give one of them")
    return "none" if normalize == "none" else "flags" if flags else None


def probe(module: nn.Module, name: str, data: DataSet, device: torch.device) -> tuple[object, ModelInputs, torch.Tensor | None]:
    """``(raw outputs, inputs, labels)`` of the first two inputs; a model (``name``) that does not run on them is
    an input error (one line naming the shapes)."""
    if len(data) == 0:
        raise InvalidValueError(f"dataset {data.name} is empty")
    x, y = data.head(2)
    x = to_device(x, device)
    try:
        with torch.inference_mode():
            out = call_model(module, x)
    except Exception as exc:  # the user's code raised, or model and data do not fit each other
        mine = user_code_error(exc)
        if mine is not None:
            raise mine from exc
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        hint = "wrong dataset or --seq-len?" if isinstance(x, dict) else "wrong dataset, --input-shape or --image-size?"
        raise InvalidValueError(f"{name} does not run on {data.name} inputs of shape {describe_inputs(x)}: "
                                f"{first} ({hint})") from exc
    return out, x, None if y is None else y.to(device)


def check_fit(model: LoadedModel, data: DataSet, device: torch.device) -> Probe:
    """One probe batch: the model must run on the data (what its outputs must be is the engine's to check); which
    parameters it multiplies with data is recorded on the way."""
    with recording(model.module) as uses:
        raw, x, y = probe(model.module, model.name, data, device)
    return Probe(model.module, data, raw, x, y, uses)


def check_classes(model: str, data: DataSet, outputs: int, raw: object = None, resizable: bool = False) -> None:
    """Class outputs of ``model`` (its name) must fit the dataset: as many as its classes, and more than its
    largest label. The message says what would help: for a model returning several tensors (``raw``, a tuple or
    dict) each one's shape and ``--output-key``; ``--num-classes`` only where the model can be built with it
    (``resizable``: ``--arch`` of a factory taking ``num_classes``)."""
    largest = int(data.y.max()) if data.y is not None and len(data.y) else -1
    if (data.num_classes is None or outputs == data.num_classes) and largest < outputs:
        return
    wanted = f"{data.num_classes} classes" if data.num_classes is not None and outputs != data.num_classes \
        else f"label {largest}"
    entries = output_shapes(raw)
    if len(entries) > 1:
        hint = f" (its outputs: {', '.join(entries)}; choose one with --output-key N)"
    else:
        hint = f" (pass --num-classes {data.num_classes or largest + 1})" if resizable else ""
    raise InvalidValueError(f"{model} has {outputs} outputs but dataset {data.name} has {wanted}{hint}")


def output_shapes(raw: object) -> list[str]:
    """Each tensor of a tuple or dict output with its shape (``[0] (2, 10)``, ``'logits' (2, 10)``)."""
    items = raw.items() if isinstance(raw, Mapping) else enumerate(raw) if isinstance(raw, (tuple, list)) else ()
    return [f"{f'[{k}]' if isinstance(k, int) else repr(k)} {tuple(v.shape)}" for k, v in items
            if isinstance(v, torch.Tensor)]


def load_inputs(model: str | LoadedModel | nn.Module, dataset: object = None, *,
                device: str | torch.device | None = "auto", limit: int | None = None, seed: int = 0,
                **options) -> Inputs:
    """Load the model (on the device) and its evaluation set, and check that they fit each other."""
    dev = resolve_device(device)
    model_options, data_options = split_options(options)
    chosen = normalization_choice(data_options)
    try:
        loaded = as_loaded(model, dev, **model_options)
    except MissingOptionsError as exc:  # say at once everything that is missing
        raise (exc.adding(NO_DATASET) if dataset is None else exc) from exc
    data = as_evalset(dataset, loaded, limit=limit, seed=seed, **data_options)
    loaded, data = resolve_normalization(loaded, data, chosen)
    return Inputs(loaded, data, dev, check_fit(loaded, data, dev))
