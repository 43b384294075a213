"""Gate policies: read a TOML file (or ``[tool.wrobust.gate]`` in ``pyproject.toml``), validate it whole.

A policy names the evaluation (trials, seed, and the settings shared with ``sweep``'s options: dataset,
image size, normalisation, device, ...; :mod:`.settings`) and a list of requirements, each at one
distortion and strength with one or more limits::

    [gate]
    dataset = "digits"
    image_size = 32                 # --image-size on the command line wins

    [[gate.require]]
    distortion = "noise"
    strength = 0.1
    max_error = 0.15

    [[gate.require]]                # a limit on any metric
    distortion = "noise"
    strength = 0.05
    metric = "perplexity"
    max = 40                        # or min, max_increase (over the clean model), min_ratio (of the clean value)

Everything is checked before any model is loaded, so that a typo costs nothing, and every problem is
listed at once (:class:`PolicyProblems`). Every error names the key that is wrong, as a path:
``gate.require[2].strength: expected a number`` (``require`` entries count from 0). See docs/gate.md for
the reference of every key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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
    as_table,
    as_trials,
    no_unknown,
    optional,
    Problems,
    unknown_keys,
)
from .settings import (
    ARGUMENT,
    COMMAND_LINE,
    LOAD_KEYS,
    POLICY,
    SETTINGS,
    as_bool,
    check_settings,
    given_where,
    origin_text,
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
DEFAULT_TRIALS = "auto"
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
    """A validated gate policy: the requirements, how they are judged, and the settings of the run
    (:mod:`.settings`: the model, data and pass options, from the policy or the command line)."""

    source: str  # the file it came from
    requirements: tuple[Requirement, ...]
    trials: int | str = DEFAULT_TRIALS  # or "auto": each random point until its requirements are decided
    ci_width: float | None = None
    max_trials: int | None = None
    seed: int = 0
    judge: str = DEFAULT_JUDGE
    max_regression: float = DEFAULT_MAX_REGRESSION
    allow_chance: bool = False  # true: a clean model at chance level is gated like any other (else it fails)
    table: str = "gate"  # the key of the [gate] table in its file
    settings: dict = field(default_factory=dict)  # validated settings (.settings.SETTINGS), those given only
    sources: dict = field(default_factory=dict)  # where each setting and run key came from: policy, command line
    raw: dict = field(default_factory=dict, repr=False, compare=False)  # the [gate] table as read
    base: Path | None = field(default=None, repr=False, compare=False)  # the policy file's folder

    def get(self, name: str, default: object = None) -> object:
        """A setting's value (``image_size``, ``precision``, ...), ``default`` when neither place gave it."""
        return self.settings.get(name, default)

    dataset = property(lambda self: self.get("dataset"))
    data_root = property(lambda self: self.get("data_root"))
    limit = property(lambda self: self.get("limit"))
    normalize = property(lambda self: self.get("normalize", "auto"))
    include = property(lambda self: self.get("include", ()))
    exclude = property(lambda self: self.get("exclude", ()))

    def given(self, values: dict, origin: str = ARGUMENT) -> Policy:
        """This policy with ``values`` (settings and run keys such as ``trials``; a Python call's arguments,
        unless ``origin`` says otherwise) in place of its own, validated again as a whole."""
        given = {k: v for k, v in values.items() if v is not None and v != ()}
        if not given:
            return self
        before = self.given_values
        origins = {**{k: self.sources[k] for k in before}, **dict.fromkeys(given, origin)}
        return parse_policy(self.raw, self.source, self.table, self.base, given={**before, **given},
                            origins=origins)

    @property
    def given_values(self) -> dict:
        """The values given in place of the policy's (by the command line or a call's arguments)."""
        return {k: self.settings.get(k, getattr(self, k, None)) for k, v in self.sources.items() if v != POLICY}

    def load_options(self) -> dict:
        """Options for ``inputs.load_inputs`` (the dataset is passed on its own), with where a mean/std came
        from (the run's ``normalization_source``: ``policy p.toml [gate] mean/std``, ``--mean/--std``)."""
        options = {k: self.settings[k] for k in LOAD_KEYS if k in self.settings}
        given = tuple(k for k in ("mean", "std") if k in options)
        if given:
            options["overrides_from"] = origin_text(given, self.sources, f"policy {self.source} [{self.table}]")
        return {"limit": self.limit, "seed": self.seed, **options}

    @property
    def trial_rule(self) -> TrialRule:
        """The policy's trials: a fixed number, or the adaptive rule of ``trials = "auto"``."""
        return trial_rule(self.trials, self.ci_width, self.max_trials)

    @property
    def metrics(self) -> list[str]:
        """Every metric a requirement needs measured, in order of first mention."""
        return list(dict.fromkeys(m for r in self.requirements for m in r.metrics))

    def to_dict(self) -> dict:
        return {"source": self.source, "trials": self.trials, "ci_width": self.ci_width,
                "max_trials": self.max_trials, "seed": self.seed, "judge": self.judge,
                "max_regression": self.max_regression, "allow_chance": self.allow_chance, **{k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in self.settings.items()},
                "sources": dict(self.sources)}


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
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: not valid TOML: not UTF-8 text (byte {exc.start})") from None


def load_policy(path: Path | None = None, project: Path = Path("pyproject.toml"), given: dict | None = None
                ) -> Policy:
    """The policy in ``path`` or ``project`` (with the command line's ``given`` values in place of its own); a
    malformed one raises an error that names the file and key, or every one (:class:`PolicyProblems`)."""
    source = str(path if path is not None else project)
    try:
        return _load_policy(path, project, given)
    except PolicyProblems as exc:
        raise PolicyProblems(exc.problems, source) from None
    except WrobustError as exc:
        if str(exc).startswith(source):
            raise
        raise type(exc)(f"{source}: {exc}") from exc


def _load_policy(path: Path | None, project: Path, given: dict | None = None) -> Policy:
    """The policy in ``path`` (a ``[gate]`` table, or ``[tool.wrobust.gate]``), else in ``project``."""
    if path is None:
        if not project.is_file():
            raise InputFileError(f"no policy: pass --policy FILE.toml, or add [tool.wrobust.gate] to {project} "
                                 f"(there is no {project} here)")
        table = _tool_table(read_toml(project))
        if table is None:
            raise InputFileError(f"no policy: pass --policy FILE.toml, or add [tool.wrobust.gate] to {project}")
        return parse_policy(table, str(project), "tool.wrobust.gate", base=project.parent, given=given)
    doc = read_toml(path)
    if "gate" in doc:
        no_unknown(doc, {"gate"}, "", f"{path}: ")
        return parse_policy(doc["gate"], str(path), "gate", base=path.parent, given=given)
    table = _tool_table(doc)
    if table is None:
        raise InputFileError(f"{path}: no [gate] table (nor [tool.wrobust.gate]): not a wrobust gate policy")
    return parse_policy(table, str(path), "tool.wrobust.gate", base=path.parent, given=given)


def _tool_table(doc: dict) -> object | None:
    tool = doc.get("tool")
    wrobust = tool.get("wrobust") if isinstance(tool, dict) else None
    return wrobust.get("gate") if isinstance(wrobust, dict) else None


# ------------------------------------------------------------------ validation

RUN_KEYS = {"trials": as_trials, "ci_width": as_number, "max_trials": as_count, "seed": as_integer,
            "judge": None, "max_regression": as_fraction, "allow_chance": as_bool}
GATE_KEYS = {*RUN_KEYS, *SETTINGS, "require"}
REQUIRE_KEYS = {"distortion", "strength", "name", "judge", "max_regression", "metric", *LIMIT_KINDS}


class PolicyProblems(InvalidValueError):
    """Every problem of a policy at once: the first line says how many, then one line each."""

    def __init__(self, problems: list[WrobustError], source: str = ""):
        self.problems, self.source = list(problems), source
        where = f"{source}: " if source else ""
        lines = [f"{where}{len(self.problems)} problems in the policy"]
        lines += [f"{where}{p}" for p in self.problems]
        super().__init__("\n".join(lines))


def parse_policy(table: object, source: str = "<policy>", key: str = "gate", base: Path | None = None,
                 given: dict | None = None, origins: dict | None = None) -> Policy:
    """Validate a policy table (the content of ``[gate]``) whole and return the :class:`Policy`; ``given``
    holds values of the command line (or, where ``origins`` says so, of a call's arguments: ``ARGUMENT``),
    which win over the table's. Every problem is found before one is
    raised: a single one as itself, several as :class:`PolicyProblems`.

    ``base`` is the folder that relative paths (``data_root``, the file of ``tensors:FILE``, the folder of
    ``imagefolder:PATH``) are resolved against: the policy file's folder (not for values ``given``).
    """
    t = as_table(table, key)
    given = {k: v for k, v in (given or {}).items() if v is not None}
    problems = Problems()
    for exc in unknown_keys(t, GATE_KEYS, key) + unknown_keys(given, GATE_KEYS - {"require"}, "", "option "):
        problems.add(exc)
    settings, sources = check_settings(t, given, key, base, problems.add, origins)
    run = {}
    for name, check in RUN_KEYS.items():
        origin = (origins or {}).get(name, COMMAND_LINE) if name in given else POLICY if name in t else None
        if origin is not None:
            where = f"{key}.{name}" if origin == POLICY else given_where(name, origin)
            value = problems.attempt(check or _judge, {**t, **given}[name], where, default=_MISSING)
            if value is not _MISSING:
                run[name], sources[name] = value, origin
    common = dict(trials=DEFAULT_TRIALS, ci_width=None, max_trials=None, seed=0, judge=DEFAULT_JUDGE,
                  max_regression=DEFAULT_MAX_REGRESSION, allow_chance=False)
    common.update(run)
    problems.attempt(_check_trials, common, key)
    entries = t.get("require")
    reqs: list[Requirement | None] = []
    if not isinstance(entries, list) or not entries:
        problems.add(InvalidValueError(f"{key}.require: expected at least one [[{key}.require]] table"))
    else:
        reqs = [parse_requirement(e, i, f"{key}.require[{i}]", common, problems) for i, e in enumerate(entries)]
    problems.raise_any(PolicyProblems)
    return Policy(source=source, requirements=tuple(reqs), table=key, settings=settings, sources=sources,
                  raw=dict(t), base=base, **common)


_MISSING = object()


def parse_requirement(entry: object, index: int, key: str, common: dict, problems: Problems | None = None
                      ) -> Requirement | None:
    """Validate one ``[[gate.require]]`` table; ``common`` holds the validated [gate] settings. With
    ``problems`` each problem is noted there (and None returned when the requirement cannot be built)."""
    own = problems or Problems()
    before = len(own.found)
    t = own.attempt(as_table, entry, key)
    if t is None:
        return _done(own, problems)
    unknown = unknown_keys(t, REQUIRE_KEYS, key)
    for exc in unknown:
        own.add(exc)
    if "distortion" not in t:
        own.add(InvalidValueError(f"{key}.distortion: missing (every requirement names a distortion)"))
        return _done(own, problems)
    dist = own.attempt(_distortion, t["distortion"], f"{key}.distortion")
    strength = None if dist is None else own.attempt(_strength, t, dist, key)
    limits = {k: own.attempt(_limit, t[k], LIMIT_KINDS[k], f"{key}.{k}") for k in LIMIT_KINDS if k in t}
    if not limits and not unknown:  # a misspelt limit is said once, as an unknown key
        own.add(InvalidValueError(f"{key}: no limit (give at least one of {', '.join(LIMIT_KINDS)})"))
    metric = own.attempt(_metric, t, limits, key)
    judge = own.attempt(optional, t, "judge", key, _judge, common["judge"])
    name = own.attempt(optional, t, "name", key, as_string)
    regression = own.attempt(optional, t, "max_regression", key, as_fraction, common["max_regression"])
    if len(own.found) > before or dist is None or strength is None:
        return _done(own, problems)
    if judge == "ci" and common["trials"] != "auto" and common["trials"] < 2 and dist.is_random_at(strength):
        own.add(InvalidValueError(f"{key}.judge: 'ci' needs trials >= 2 for the random distortion {dist.name} "
                                  f"(trials = {common['trials']}); raise trials or use judge = 'mean'"))
        return _done(own, problems)
    dist = dist.with_strength(None)
    return Requirement(index, key, name or point_name(dist, strength), dist, strength, limits, judge, regression,
                       metric)


def _done(own: Problems, problems: Problems | None) -> None:
    """A requirement with problems: noted (``problems`` given), else raised."""
    if problems is None:
        own.raise_any(PolicyProblems)


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


def point_name(dist: Distortion, strength: float) -> str:
    """A readable name for a point: ``addnorm sigma=0.1``, ``sign``."""
    return dist.spec if math.isnan(strength) else f"{dist.spec} {dist.info.strength}={strength:g}"


def _distortion(value: object, key: str) -> Distortion:
    spec = as_string(value, key)
    try:
        dist = get_distortion(spec)
        dist.one_strength()
        return dist
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
