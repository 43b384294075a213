"""The ``[gate]`` keys that are the command's input options: every model, data and pass option that
``wrobust gate`` shares with ``wrobust sweep`` (``--image-size`` is ``image_size``, ``--compile`` is
``compile``). A value comes from the policy or from the command line (or a ``run_gate`` call's arguments), which
wins; :func:`check_settings` says where each came from (``sources``), and a run records it (JSON and JUnit).

What a setting is for, at run time: :data:`LOAD_KEYS` go to ``load.inputs.load_inputs`` (the model and its
data), the others to the sweep runner (targets, measured output, batch size) and its fast path.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from ..engine.defaults import (
    CONVERTER_RANGES,
    CONVERTERS_APPLY,
    DATA_ON,
    DEVICE_PATTERN,
    IMAGE_MODES,
    NORMALIZE,
    POOLS,
    PRECISIONS,
    PRISTINE_MODES,
    REDRAW_MODES,
    SPLITS,
)
from ..errors import InvalidValueError, WrobustError
from .values import as_count, as_integer, as_number, as_string, as_strings, kind_of

# Where a value came from (a run's ``sources``): the policy file, the command line (``wrobust gate``) or an
# argument of a Python call (``run_gate(..., device="cpu")``).
COMMAND_LINE, POLICY, ARGUMENT = "command line", "policy", "argument"


def given_where(name: str, origin: str) -> str:
    """How an error names a value given in place of the policy's: ``--image-size``, ``argument image_size``."""
    return f"--{name.replace('_', '-')}" if origin == COMMAND_LINE else f"argument {name}"


def origin_text(names: tuple[str, ...], sources: dict, policy: str) -> str:
    """Where the values of ``names`` came from, in words (``policy`` names the policy's table):
    ``--mean/--std``, ``policy p.toml [gate] mean/std``, ``--mean and policy p.toml [gate] std``."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(sources.get(name, POLICY), []).append(name)
    words = {COMMAND_LINE: lambda ns: "/".join(f"--{n.replace('_', '-')}" for n in ns),
             POLICY: lambda ns: f"{policy} {'/'.join(ns)}", ARGUMENT: lambda ns: f"arguments {'/'.join(ns)}"}
    return " and ".join(words[origin](ns) for origin, ns in groups.items())


def choice(*names: str, fold: Callable[[str], str] = str.lower) -> Callable[[object, str], str]:
    """A checker: one of ``names`` (compared after ``fold``)."""
    def check(value: object, key: str) -> str:
        s = fold(as_string(value, key))
        if s not in names:
            raise InvalidValueError(f"{key}: expected one of {', '.join(repr(n) for n in names)}, not {value!r}")
        return s

    return check


def as_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidValueError(f"{key}: expected true or false, not {kind_of(value)} {value!r}")
    return value


def _items(value: object, key: str, what: str) -> list:
    """A list of values from an array, a tuple (the command line's) or a comma-separated string."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",")]
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    raise InvalidValueError(f"{key}: expected {what}, not {kind_of(value)} {value!r}")


def as_shape(value: object, key: str) -> tuple[int, ...]:
    """An input shape without the batch: ``[3, 32, 32]`` or ``"3,32,32"``."""
    what = 'positive integers, as [3, 32, 32] or "3,32,32"'
    items = _items(value, key, what)
    try:
        shape = tuple(int(v) if isinstance(v, str) else as_integer(v, key) for v in items)
    except (ValueError, InvalidValueError):
        shape = ()
    if not shape or min(shape) < 1:
        raise InvalidValueError(f"{key}: expected {what}, not {value!r}")
    return shape


def as_numbers(value: object, key: str) -> tuple[float, ...]:
    """One number or one per channel: ``0.5``, ``[0.49, 0.48, 0.45]`` or ``"0.49,0.48,0.45"``."""
    what = 'a number or an array of numbers (one per channel)'
    try:
        numbers = tuple(float(v) if isinstance(v, str) else as_number(v, key) for v in _items(value, key, what))
    except (ValueError, InvalidValueError):
        numbers = ()
    if not numbers or any(math.isnan(x) for x in numbers):
        raise InvalidValueError(f"{key}: expected {what}, not {value!r}")
    return numbers


def as_count_or_auto(value: object, key: str) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, str):
        raise InvalidValueError(f"{key}: expected an integer or \"auto\", not {value!r}")
    return as_count(value, key)


def as_device(value: object, key: str) -> str:
    s = as_string(value, key).lower()
    if not re.fullmatch(DEVICE_PATTERN, s):
        raise InvalidValueError(f"{key}: {value!r} is not a device: use auto, cpu, cuda, cuda:N or mps")
    return s


def as_metrics(value: object, key: str) -> tuple[str, ...]:
    """Registered metric names, canonical."""
    from ..engine.passes.metrics import get_metric

    names = as_strings(list(value) if isinstance(value, tuple) else value, key)
    try:
        return tuple(get_metric(n).name for n in names)
    except WrobustError as exc:
        raise type(exc)(f"{key}: {exc}") from None


def expand_path(text: str, base: Path | None) -> str:
    """``$VARIABLES`` and ``~`` expanded; a relative path is taken from ``base`` (the policy file's folder)."""
    path = Path(os.path.expandvars(text)).expanduser()
    return str(path if path.is_absolute() or base is None else base / path)


def as_dataset(value: object, key: str, base: Path | None = None) -> str:
    """A registered dataset name; the path of ``tensors:FILE`` or ``imagefolder:PATH`` taken from ``base``."""
    from ..datasets.base import parse_dataset_name

    name = as_string(value, key)
    try:
        definition, source = parse_dataset_name(name)
    except WrobustError as exc:
        raise type(exc)(f"{key}: {exc}") from None
    return f"{definition.name}:{expand_path(source['source'], base)}" if source else name


def as_folder(value: object, key: str, base: Path | None = None) -> str:
    return expand_path(as_string(value, key), base)


def as_tuple_of_strings(value: object, key: str) -> tuple[str, ...]:
    return tuple(as_strings(list(value) if isinstance(value, tuple) else value, key))


def as_bits(value: object, key: str) -> int:
    """Converter bits (``dac``, ``adc``): a whole number from 2 to 24."""
    n = as_integer(value, key)
    if not 2 <= n <= 24:
        raise InvalidValueError(f"{key}: must be a number of bits from 2 to 24, not {n}")
    return n


def as_nonnegative(value: object, key: str) -> float:
    x = as_number(value, key)
    if x < 0:
        raise InvalidValueError(f"{key}: must be at least 0, not {x:g}")
    return x


PATHS = {"dataset": as_dataset, "data_root": as_folder}  # relative to the policy file's folder (from the policy)
SETTINGS: dict[str, Callable[[object, str], object]] = {
    # the model (--arch, ...; --trust-checkpoint is the command line's alone)
    "arch": as_string, "num_classes": as_count, "strict": as_bool, "key": as_string,
    "ignore_keys": as_tuple_of_strings,
    # the data
    "dataset": as_dataset, "split": choice(*SPLITS), "data_root": as_folder, "download": as_bool,
    "image_size": as_count, "image_mode": choice(*IMAGE_MODES, fold=str.upper), "input_shape": as_shape,
    "mean": as_numbers, "std": as_numbers, "normalize": choice(*NORMALIZE), "limit": as_count,
    # what is measured
    "metric": as_metrics, "output_key": as_string, "pool": choice(*POOLS), "seq_len": as_count,
    "include": as_tuple_of_strings, "exclude": as_tuple_of_strings,
    # how passes run
    "precision": choice(*PRECISIONS), "channels_last": as_bool, "compile": as_bool,
    "batch_size": as_count_or_auto, "device": as_device,
    # analog hardware (docs/hardware.md): per-batch redraws and converters
    "redraw": choice(*REDRAW_MODES), "dac": as_bits, "adc": as_bits, "out_noise": as_nonnegative,
    "dac_range": choice(*CONVERTER_RANGES), "converters": choice(*CONVERTERS_APPLY),
    # where the clean weights and the evaluation set live (docs/large-models.md)
    "pristine": choice(*PRISTINE_MODES), "data_on": choice(*DATA_ON),
}
LOAD_KEYS = ("arch", "num_classes", "strict", "key", "ignore_keys", "split", "data_root", "download", "image_size", "image_mode",
             "input_shape", "mean", "std", "normalize", "seq_len")


def check_settings(table: dict, given: dict, key: str, base: Path | None,
                   report: Callable[[WrobustError], None], origins: dict | None = None) -> tuple[dict, dict]:
    """``(values, sources)`` of the settings in ``table`` (the policy's) and ``given`` (the command line's or
    a call's arguments, by ``origins``, default the command line; they win); each problem goes to ``report``
    and leaves its key out."""
    values, sources = {}, {}
    for name, check in SETTINGS.items():
        if name in given:
            origin = (origins or {}).get(name, COMMAND_LINE)
            raw, where, folder = given[name], given_where(name, origin), None
        elif name in table:
            raw, where, origin, folder = table[name], f"{key}.{name}", POLICY, base
        else:
            continue
        try:
            values[name] = PATHS[name](raw, where, folder) if name in PATHS else check(raw, where)
            sources[name] = origin
        except WrobustError as exc:
            report(exc)
    if values.get("normalize") == "none" and ("mean" in values or "std" in values):
        report(InvalidValueError(f"{key}.normalize: 'none' and mean/std contradict each other: give one of them"))
    return values, sources
