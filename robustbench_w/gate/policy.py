"""Gate policies: read a TOML file (or ``[tool.wrobust.gate]`` in ``pyproject.toml``), validate it whole.

A policy names the evaluation (dataset, data root, limit, trials, seed, targets) and a list of
requirements, each at one distortion and strength with one or more limits::

    [gate]
    dataset = "digits"
    trials = 5

    [[gate.require]]
    distortion = "noise"
    strength = 0.1
    max_error = 0.15

    [[gate.require]]                # a limit on any metric
    distortion = "noise"
    strength = 0.05
    metric = "perplexity"
    max = 40                        # or min, max_increase (over the clean model), min_ratio (of the clean value)

Everything is checked before any model is loaded, so that a typo costs nothing. Every error names the
key that is wrong, as a path: ``gate.require[2].strength: expected a number`` (``require`` entries count
from 0). See docs/gate.md for the reference of every key.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..distortions import Distortion, get_distortion
from ..engine.passes.metrics import get_metric
from ..engine.runs.trials import TrialRule, trial_rule
from ..errors import InputFileError, InvalidValueError, WrobustError, permission_denied
from .values import (
    as_count,
    as_fraction,
    as_integer,
    as_number,
    as_string,
    as_strings,
    as_table,
    as_trials,
    no_unknown,
    optional,
)

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 needs the tomli backport
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

JUDGES = ("mean", "ci")
DEFAULT_JUDGE = "ci"
DEFAULT_TRIALS = 5
DEFAULT_MAX_REGRESSION = 0.01


@dataclass(frozen=True)
class LimitKind:
    """One kind of limit: which measure it bounds, from which side, and the values a limit may take."""

    key: str
    measure: str  # error, drop, agreement, bits; for the limits on a requirement's metric: value, increase, ratio
    upper: bool  # True: measured <= limit; False: measured >= limit
    low: float = 0.0
    high: float = math.inf
    on_metric: bool = False  # a limit on the requirement's ``metric``

    @property
    def metric(self) -> str | None:
        """The metric a fixed limit bounds (``max_error``: error), None for bits and the metric limits."""
        return None if self.on_metric else {"error": "error", "drop": "error", "agreement": "agreement"}.get(self.measure)


LIMIT_KINDS = {k.key: k for k in (
    LimitKind("max_error", "error", True, 0.0, 1.0),
    LimitKind("max_drop", "drop", True, 0.0, 1.0),
    LimitKind("min_agreement", "agreement", False, 0.0, 1.0),
    LimitKind("max_bits", "bits", True, 0.0, 64.0),
    LimitKind("max", "value", True, -math.inf, math.inf, on_metric=True),
    LimitKind("min", "value", False, -math.inf, math.inf, on_metric=True),
    LimitKind("max_increase", "increase", True, 0.0, math.inf, on_metric=True),
    LimitKind("min_ratio", "ratio", False, 0.0, math.inf, on_metric=True),
)}
METRIC_LIMITS = tuple(k for k, v in LIMIT_KINDS.items() if v.on_metric)


@dataclass(frozen=True)
class Requirement:
    """One point (distortion, strength) and the limits it must meet."""

    index: int
    key: str  # where it was written: "gate.require[0]"
    name: str
    distortion: Distortion  # without a fixed strength: the strength is in ``strength``
    strength: float  # nan for a parameterless distortion
    limits: dict[str, float]
    judge: str
    max_regression: float
    metric: str | None = None  # the metric that max, min, max_increase and min_ratio bound

    @property
    def metrics(self) -> list[str]:
        """The metrics its limits need measured."""
        found = [self.metric] if self.metric else []
        return found + [m for m in (LIMIT_KINDS[k].metric for k in self.limits) if m and m not in found]

    @property
    def point(self) -> tuple[str, float]:
        """What identifies the measured point: canonical spec and strength."""
        return self.distortion.spec, self.strength


@dataclass(frozen=True)
class Policy:
    """A validated gate policy."""

    source: str  # the file it came from
    requirements: tuple[Requirement, ...]
    dataset: str | None = None
    data_root: str | None = None
    limit: int | None = None
    trials: int | str = DEFAULT_TRIALS  # or "auto", with ci_width and max_trials (engine.runs.trials)
    ci_width: float | None = None
    max_trials: int | None = None
    seed: int = 0
    judge: str = DEFAULT_JUDGE
    max_regression: float = DEFAULT_MAX_REGRESSION
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    table: str = "gate"  # the key of the [gate] table in its file
    normalize: str = "auto"  # "none": the dataset's inputs are already model-ready
    seq_len: int | None = None
    output_key: str | None = None
    pool: str | None = None

    def load_options(self) -> dict:
        """Options for ``inputs.load_inputs`` (the dataset is passed on its own)."""
        return {"limit": self.limit, "seed": self.seed, "data_root": self.data_root, "normalize": self.normalize,
                "seq_len": self.seq_len}

    @property
    def trial_rule(self) -> TrialRule:
        """The policy's trials: a fixed number, or the adaptive rule of ``trials = "auto"``."""
        return trial_rule(self.trials, self.ci_width, self.max_trials)

    @property
    def metrics(self) -> list[str]:
        """Every metric a requirement needs measured, in order of first mention."""
        return list(dict.fromkeys(m for r in self.requirements for m in r.metrics))

    def to_dict(self) -> dict:
        return {"source": self.source, "dataset": self.dataset, "data_root": self.data_root, "limit": self.limit,
                "trials": self.trials, "ci_width": self.ci_width, "max_trials": self.max_trials, "seed": self.seed, "judge": self.judge, "max_regression": self.max_regression,
                "include": list(self.include), "exclude": list(self.exclude), "normalize": self.normalize,
                "seq_len": self.seq_len, "output_key": self.output_key, "pool": self.pool}


# ------------------------------------------------------------------ reading files

def read_toml(path: Path) -> dict:
    """The parsed TOML document at ``path``; unreadable or invalid files are input errors."""
    if tomllib is None:
        raise InvalidValueError("reading TOML on Python 3.10 needs the tomli package: pip install tomli")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except PermissionError:
        raise permission_denied(path, "cannot read the policy") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{path}: not valid TOML: {exc}") from None


def load_policy(path: Path | None = None, project: Path = Path("pyproject.toml")) -> Policy:
    """The policy in ``path`` or ``project``; a malformed one raises an error that names the file and key."""
    source = str(path if path is not None else project)
    try:
        return _load_policy(path, project)
    except WrobustError as exc:
        if str(exc).startswith(source):
            raise
        raise type(exc)(f"{source}: {exc}") from exc


def _load_policy(path: Path | None, project: Path) -> Policy:
    """The policy in ``path`` (a ``[gate]`` table, or ``[tool.wrobust.gate]``), else in ``project``."""
    if path is None:
        if not project.is_file():
            raise InputFileError(f"no policy: pass --policy FILE.toml, or add [tool.wrobust.gate] to {project} "
                                 f"(there is no {project} here)")
        table = _tool_table(read_toml(project))
        if table is None:
            raise InputFileError(f"no policy: pass --policy FILE.toml, or add [tool.wrobust.gate] to {project}")
        return parse_policy(table, str(project), "tool.wrobust.gate", base=project.parent)
    doc = read_toml(path)
    if "gate" in doc:
        no_unknown(doc, {"gate"}, "", f"{path}: ")
        return parse_policy(doc["gate"], str(path), "gate", base=path.parent)
    table = _tool_table(doc)
    if table is None:
        raise InputFileError(f"{path}: no [gate] table (nor [tool.wrobust.gate]): not a wrobust gate policy")
    return parse_policy(table, str(path), "tool.wrobust.gate", base=path.parent)


def _tool_table(doc: dict) -> object | None:
    tool = doc.get("tool")
    wrobust = tool.get("wrobust") if isinstance(tool, dict) else None
    return wrobust.get("gate") if isinstance(wrobust, dict) else None


# ------------------------------------------------------------------ validation

GATE_KEYS = {"dataset", "data_root", "limit", "trials", "ci_width", "max_trials", "seed", "judge", "max_regression", "include", "exclude",
             "normalize", "require", "seq_len", "output_key", "pool"}
NORMALIZE = ("auto", "none")
REQUIRE_KEYS = {"distortion", "strength", "name", "judge", "max_regression", "metric", *LIMIT_KINDS}
POOLS = ("mean", "cls", "none")


def parse_policy(table: object, source: str = "<policy>", key: str = "gate", base: Path | None = None) -> Policy:
    """Validate a policy table (the content of ``[gate]``) and return the :class:`Policy`.

    ``base`` is the folder that relative paths (``data_root``, the file of ``tensors:FILE``, the folder of
    ``imagefolder:PATH``) are resolved against: the policy file's folder.
    """
    t = as_table(table, key)
    no_unknown(t, GATE_KEYS, key)
    root = _path(optional(t, "data_root", key, as_string), base)
    common = dict(
        source=source, table=key, dataset=_dataset(optional(t, "dataset", key, as_string), f"{key}.dataset", base),
        data_root=root, normalize=optional(t, "normalize", key, _normalize, "auto"),
        limit=optional(t, "limit", key, as_count), trials=optional(t, "trials", key, as_trials, DEFAULT_TRIALS),
        ci_width=optional(t, "ci_width", key, as_number), max_trials=optional(t, "max_trials", key, as_count),
        seed=optional(t, "seed", key, as_integer, 0), judge=optional(t, "judge", key, _judge, DEFAULT_JUDGE),
        max_regression=optional(t, "max_regression", key, as_fraction, DEFAULT_MAX_REGRESSION),
        include=tuple(optional(t, "include", key, as_strings, ())), exclude=tuple(optional(t, "exclude", key, as_strings, ())),
        seq_len=optional(t, "seq_len", key, as_count), output_key=optional(t, "output_key", key, as_string),
        pool=optional(t, "pool", key, _pool),
    )
    _check_trials(common, key)
    entries = t.get("require")
    if not isinstance(entries, list) or not entries:
        raise InvalidValueError(f"{key}.require: expected at least one [[{key}.require]] table")
    reqs = tuple(parse_requirement(e, i, f"{key}.require[{i}]", common) for i, e in enumerate(entries))
    return Policy(requirements=reqs, **common)


def parse_requirement(entry: object, index: int, key: str, common: dict) -> Requirement:
    """Validate one ``[[gate.require]]`` table; ``common`` holds the validated [gate] settings."""
    t = as_table(entry, key)
    no_unknown(t, REQUIRE_KEYS, key)
    if "distortion" not in t:
        raise InvalidValueError(f"{key}.distortion: missing (every requirement names a distortion)")
    dist = _distortion(t["distortion"], f"{key}.distortion")
    strength = _strength(t, dist, key)
    dist = dist.with_strength(None)
    limits = {k: _limit(t[k], LIMIT_KINDS[k], f"{key}.{k}") for k in LIMIT_KINDS if k in t}
    if not limits:
        raise InvalidValueError(f"{key}: no limit (give at least one of {', '.join(LIMIT_KINDS)})")
    metric = _metric(t, limits, key)
    judge = optional(t, "judge", key, _judge, common["judge"])
    if judge == "ci" and common["trials"] != "auto" and common["trials"] < 2 and dist.is_random_at(strength):
        raise InvalidValueError(f"{key}.judge: 'ci' needs trials >= 2 for the random distortion {dist.name} "
                                f"(trials = {common['trials']}); raise trials or use judge = 'mean'")
    name = optional(t, "name", key, as_string) or point_name(dist, strength)
    return Requirement(index, key, name, dist, strength, limits, judge,
                       optional(t, "max_regression", key, as_fraction, common["max_regression"]), metric)


def _metric(t: dict, limits: dict[str, float], key: str) -> str | None:
    """The requirement's ``metric`` (canonical name): needed by, and only by, the limits on a metric."""
    on_metric = [k for k in limits if LIMIT_KINDS[k].on_metric]
    if "metric" not in t:
        if on_metric:
            raise InvalidValueError(f"{key}.{on_metric[0]}: needs metric = NAME (the metric it limits, for example "
                                    f"metric = \"perplexity\")")
        return None
    name = as_string(t["metric"], f"{key}.metric")
    try:
        name = get_metric(name).name
    except WrobustError as exc:
        raise type(exc)(f"{key}.metric: {exc}") from None
    if not on_metric:
        raise InvalidValueError(f"{key}.metric: {name} needs a limit: {', '.join(METRIC_LIMITS)}")
    return name


def _pool(value: object, key: str) -> str:
    s = as_string(value, key).lower()
    if s not in POOLS:
        raise InvalidValueError(f"{key}: expected one of {', '.join(repr(p) for p in POOLS)}, not {value!r}")
    return s


def _path(text: str | None, base: Path | None) -> str | None:
    """``$VARIABLES`` and ``~`` expanded; a relative path is taken from the policy file's folder."""
    if text is None:
        return None
    path = Path(os.path.expandvars(text)).expanduser()
    return str(path if path.is_absolute() or base is None else base / path)


def _dataset(name: str | None, key: str, base: Path | None) -> str | None:
    """A registered dataset name; the path of ``tensors:FILE`` or ``imagefolder:PATH`` taken from the policy's folder."""
    if name is None:
        return None
    from ..datasets.base import parse_dataset_name

    try:
        definition, source = parse_dataset_name(name)
    except WrobustError as exc:
        raise type(exc)(f"{key}: {exc}") from None
    return f"{definition.name}:{_path(source['source'], base)}" if source else name


def _normalize(value: object, key: str) -> str:
    s = as_string(value, key).lower()
    if s not in NORMALIZE:
        raise InvalidValueError(f"{key}: expected one of {', '.join(repr(n) for n in NORMALIZE)}, not {value!r}")
    return s


def point_name(dist: Distortion, strength: float) -> str:
    """A readable name for a point: ``addnorm sigma=0.1``, ``sign``."""
    return dist.spec if math.isnan(strength) else f"{dist.spec} {dist.info.strength}={strength:g}"


def _distortion(value: object, key: str) -> Distortion:
    spec = as_string(value, key)
    try:
        return get_distortion(spec)
    except WrobustError as exc:
        raise type(exc)(f"{key}: {exc}") from None


def _strength(t: dict, dist: Distortion, key: str) -> float:
    """The requirement's strength: given, or fixed by the spec; nan for a parameterless distortion."""
    info = dist.info
    given = optional(t, "strength", key, as_number)
    if info.parameterless:
        if given is not None:
            raise InvalidValueError(f"{key}.strength: {dist.no_strength(f'{given:g}')}")
        return math.nan
    fixed = dist.fixed_strength
    if given is not None and fixed is not None and given != fixed:
        raise InvalidValueError(f"{key}.strength: {given:g} conflicts with {info.strength}={fixed:g} in the spec")
    value = given if given is not None else fixed
    if value is None:
        raise InvalidValueError(f"{key}.strength: missing ({info.name} needs its {info.strength}, "
                                f"valid range {info.valid})")
    try:
        dist.check_strength(value)
    except InvalidValueError as exc:
        raise InvalidValueError(f"{key}.strength: {exc}") from None
    return float(value)


def _limit(value: object, kind: LimitKind, key: str) -> float:
    x = as_number(value, key)
    if not kind.low <= x <= kind.high:
        high = "inf" if math.isinf(kind.high) else f"{kind.high:g}"
        raise InvalidValueError(f"{key}: {x:g} is outside [{kind.low:g}, {high}]")
    return x


# ------------------------------------------------------------------ values that know the gate

def _check_trials(common: dict, key: str) -> None:
    """``ci_width`` and ``max_trials`` belong to ``trials = "auto"`` and must be valid there."""
    try:
        trial_rule(common["trials"], common["ci_width"], common["max_trials"])
    except InvalidValueError as exc:
        text = str(exc).replace("--ci-width", "ci_width").replace("--max-trials", "max_trials")
        raise InvalidValueError(f"{key}: {text.replace('--trials', 'trials')}") from None


def _judge(value: object, key: str) -> str:
    s = as_string(value, key).lower()
    if s not in JUDGES:
        raise InvalidValueError(f"{key}: expected one of {', '.join(repr(j) for j in JUDGES)}, not {value!r}")
    return s


__all__ = ["LIMIT_KINDS", "METRIC_LIMITS", "LimitKind", "Policy", "Requirement", "load_policy", "parse_policy"]
