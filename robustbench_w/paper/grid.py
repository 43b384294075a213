"""What ``wrobust reproduce`` runs: the training rules, the recipe, the training seeds, the curves and the
columns at the paper's strengths (Merolla et al. 2016, arXiv:1606.01981).

Every rule gets the same recipe (architecture, initialisation, optimiser, learning-rate schedule, epochs,
batch size) and the same training seeds: nothing is tuned per rule. ``--quick`` on digits trains with the
same recipe as the full run and keeps its first seeds and trials (2 seeds and 3 trials instead of 3 and 5),
so its models are the full run's first models and its verdicts rest on a subset of the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..distortions import Distortion, get_distortion
from ..engine.runs.sweep import Point, parse_distortions
from ..errors import InvalidValueError
from .defaults import CURVES, DEFAULT_RULES, PAPER_COLUMNS, QUICK_SEEDS, QUICK_TRIALS, SEEDS, TRIALS, WITHIN  # noqa: F401
from .projection import parse_rule
from .train import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """Training settings of the grid on one dataset (the same for every rule and seed)."""

    arch: str
    epochs: int
    lr: float
    batch_size: int
    schedule: str
    optimizer: str = "adam"
    quick_epochs: int | None = None  # None: --quick trains as long as the full run

    def describe(self) -> str:
        return (f"{self.optimizer} lr {self.lr:g} ({self.schedule}), {self.epochs} epochs, batch {self.batch_size}, "
                f"arch {self.arch}")


# digits: Adam from lr 0.01 with a cosine decay to 0 over 40 epochs: of the recipes tried (docs/training.md),
# the one with the lowest clean error for every rule; the weights of `none` stay moderate (max|w| about 1.6,
# against about 2 without the decay). cifar10: BinaryConnect's network, Adam lr 0.003 (BinaryConnect's), batch
# 50, no data augmentation (as the paper's 7.64%); its --quick is a short smoke run, not the experiment.
PRESETS = {
    "digits": Recipe("mlp", epochs=40, lr=1e-2, batch_size=64, schedule="cosine"),
    "cifar10": Recipe("binaryconnect", epochs=150, lr=3e-3, batch_size=50, schedule="cosine", quick_epochs=10),
}
GENERIC = Recipe("mlp", epochs=40, lr=1e-2, batch_size=64, schedule="cosine", quick_epochs=10)


@dataclass(frozen=True)
class Column:
    """One column of the table: a distortion at one strength (``nan`` for a distortion without one)."""

    dist: Distortion
    strength: float

    @property
    def spec(self) -> str:
        return self.dist.spec

    @property
    def label(self) -> str:
        if math.isnan(self.strength):
            return self.dist.spec
        return f"{self.dist.spec} {self.dist.info.strength}={self.strength:g}"


CLEAN = Column(get_distortion("none"), math.nan)


@dataclass(frozen=True)
class GridConfig:
    """What ``wrobust reproduce`` runs. ``None`` fields come from the dataset's recipe (:data:`PRESETS`) and
    from ``quick``."""

    dataset: str = "digits"
    rules: tuple[str, ...] = DEFAULT_RULES
    distortions: tuple[str, ...] = CURVES
    at: tuple[str, ...] = PAPER_COLUMNS
    seeds: int | None = None
    trials: int | None = None
    quick: bool = False
    seed: int = 0
    within: float = WITHIN
    clip: float = 1.0
    arch: str | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    schedule: str | None = None
    device: str = "auto"
    threads: int | None = 1
    data_options: dict = field(default_factory=dict)

    @property
    def preset(self) -> Recipe:
        return PRESETS.get(self.dataset.lower(), GENERIC)

    @property
    def recipe(self) -> Recipe:
        """The recipe in use: the preset with the given overrides (and ``--quick``'s epochs)."""
        p = self.preset
        epochs = self.epochs or (p.quick_epochs if self.quick and p.quick_epochs else p.epochs)
        return replace(p, arch=self.arch or p.arch, epochs=epochs, lr=self.lr or p.lr,
                       batch_size=self.batch_size or p.batch_size, schedule=self.schedule or p.schedule,
                       quick_epochs=None)

    @property
    def n_seeds(self) -> int:
        return self.seeds if self.seeds is not None else (QUICK_SEEDS if self.quick else SEEDS)

    @property
    def n_trials(self) -> int:
        return self.trials if self.trials is not None else (QUICK_TRIALS if self.quick else TRIALS)

    @property
    def train_seeds(self) -> list[int]:
        """``seed, seed + 1, ...``: the first seeds of a larger run are the seeds of a smaller one."""
        return [self.seed + i for i in range(self.n_seeds)]

    def train_config(self, rule: str, seed: int) -> TrainConfig:
        r = self.recipe
        return TrainConfig(dataset=self.dataset, arch=r.arch, projection=rule, clip=self.clip, epochs=r.epochs,
                           lr=r.lr, batch_size=r.batch_size, optimizer=r.optimizer, schedule=r.schedule, seed=seed,
                           device=self.device, threads=self.threads, data_options=dict(self.data_options))


@dataclass(frozen=True)
class Grid:
    """The checked grid: canonical rule names, the curve distortions and the columns (clean first)."""

    rules: list[str]
    curves: list[Distortion]
    columns: list[Column]


def check_grid(config: GridConfig) -> Grid:
    """Validate the whole grid before any training: rules (unique), seeds, trials, curves and columns."""
    for flag, value in (("--seeds", config.seeds), ("--trials", config.trials)):
        if value is not None and value < 1:
            raise InvalidValueError(f"{flag} must be at least 1, not {value}")
    if not (math.isfinite(config.within) and config.within >= 0):
        raise InvalidValueError(f"--within must be a number of percentage points >= 0, not {config.within}")
    if not config.rules:
        raise InvalidValueError("--rules: give at least one training rule")
    rules = [parse_rule(r, config.clip).name for r in config.rules]
    dupes = sorted({r for r in rules if rules.count(r) > 1})
    if dupes:
        raise InvalidValueError(f"--rules: {', '.join(dupes)} given twice")
    for rule in rules:
        config.train_config(rule, config.seed).check()
    return Grid(rules, parse_distortions(config.distortions) if config.distortions else [], parse_columns(config.at))


def parse_columns(specs: tuple[str, ...]) -> list[Column]:
    """The clean column, then one column per ``--at`` spec: a distortion without a strength (``sign``) or with
    its strength fixed in the spec (``addnorm:sigma=0.3``). Repeats count once."""
    columns = [CLEAN]
    for spec in specs:
        dist = get_distortion(spec)
        dist.one_strength(f"--at {spec}")
        if dist.name == "none":
            continue
        if not dist.info.parameterless and dist.fixed_strength is None:
            raise InvalidValueError(f"--at {spec}: give its strength ({dist.name}:{dist.info.strength}=VALUE)")
        strength = math.nan if dist.info.parameterless else float(dist.fixed_strength)
        column = Column(dist.with_strength(None), strength)
        if column not in columns:
            columns.append(column)
    return columns


def plan_points(grid: Grid, trials: int) -> list[Point]:
    """Every point to sweep, in order: each curve over its default grid with the columns' strengths of the
    same distortion added, then the columns whose distortion has no curve. A random point gets ``trials``
    draws, a deterministic one is evaluated once."""
    strengths: dict[str, list[float]] = {}
    dists: dict[str, Distortion] = {}
    for dist in grid.curves:
        dists[dist.spec] = dist
        strengths[dist.spec] = list(dist.strengths())
    for col in grid.columns[1:]:
        dists.setdefault(col.spec, col.dist)
        values = strengths.setdefault(col.spec, [])
        if not any(_same(col.strength, s) for s in values):
            values.append(col.strength)
    points = []
    for spec, dist in dists.items():
        for s in _in_grid_order(dist, strengths[spec]):
            stochastic = dist.is_random_at(s)
            points.extend(Point(dist, s, t, stochastic) for t in range(trials if stochastic else 1))
    return points


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _in_grid_order(dist: Distortion, values: list[float]) -> list[float]:
    """Mildest first, as the default grid runs (ascending when it starts at its low end, else descending)."""
    grid = list(dist.info.grid)
    if len(values) < 2 or len(grid) < 2:
        return values
    return sorted(values, reverse=grid[0] > grid[-1])
