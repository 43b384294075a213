"""The experiment grid of Merolla et al. 2016 (arXiv:1606.01981): training rule x test-time distortion.

One model is trained per rule (:mod:`robustbench_w.train`), each is swept under the paper's test-time
distortions over their default grids (:class:`robustbench_w.engine.sweep.SweepRunner`), and the rows are
gathered with a ``rule`` column. :mod:`robustbench_w.grid_report` renders the table and states, from the
numbers, whether the paper's claims show on the dataset; nothing here is tuned per rule: every rule gets
the same architecture, initialisation, optimiser, epochs and seed.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ..engine.stats import summarize
from ..engine.sweep import SweepRunner, parse_distortions, plan
from ..errors import InvalidValueError
from ..load.checkpoints import LoadedModel
from .train import TrainConfig, TrainProgress, TrainResult, parse_rule, train

# The paper's training rules; power and stochm are trained at one strength each (a rule carries its strength).
DEFAULT_RULES = ("none", "clip", "sign", "stoch", "power:beta=0.5", "stochm:gamma=0.5")
# The paper's test-time distortions (the clean model, distortion none, is always evaluated).
GRID_DISTORTIONS = ("none", "sign", "round", "power", "addnorm", "multunif")


@dataclass(frozen=True)
class Preset:
    """Training settings of the grid on one dataset (the same for every rule)."""

    arch: str
    epochs: int
    quick_epochs: int
    lr: float
    batch_size: int
    optimizer: str = "adam"
    schedule: str = "constant"


PRESETS = {
    "digits": Preset("mlp", epochs=40, quick_epochs=20, lr=1e-2, batch_size=64),
    # BinaryConnect's CIFAR-10 setting: its network, batch 50, Adam; no data augmentation (as the paper's 7.64%)
    "cifar10": Preset("binaryconnect", epochs=150, quick_epochs=10, lr=3e-3, batch_size=50, schedule="cosine"),
}
GENERIC = Preset("mlp", epochs=20, quick_epochs=5, lr=1e-2, batch_size=64)
TRIALS, QUICK_TRIALS = 5, 3


@dataclass(frozen=True)
class GridConfig:
    """What ``wrobust reproduce`` runs. ``None`` fields come from the dataset's :data:`PRESETS`."""

    dataset: str = "digits"
    rules: tuple[str, ...] = DEFAULT_RULES
    distortions: tuple[str, ...] = GRID_DISTORTIONS
    trials: int | None = None
    quick: bool = False
    seed: int = 0
    clip: float = 1.0
    arch: str | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    device: str = "auto"
    data_options: dict = field(default_factory=dict)

    @property
    def preset(self) -> Preset:
        return PRESETS.get(self.dataset.lower(), GENERIC)

    @property
    def n_trials(self) -> int:
        return self.trials if self.trials is not None else (QUICK_TRIALS if self.quick else TRIALS)

    def train_config(self, rule: str) -> TrainConfig:
        p = self.preset
        return TrainConfig(
            dataset=self.dataset, arch=self.arch or p.arch, projection=rule, clip=self.clip,
            epochs=self.epochs or (p.quick_epochs if self.quick else p.epochs), lr=self.lr or p.lr,
            batch_size=self.batch_size or p.batch_size, optimizer=p.optimizer, schedule=p.schedule,
            seed=self.seed, device=self.device, data_options=dict(self.data_options))


@dataclass
class GridResult:
    """Rows (one per rule x distortion x strength x trial), their summary, and each rule's training record."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    training: dict[str, dict]
    config: GridConfig
    meta: dict


def check_grid(config: GridConfig) -> tuple[list[str], list]:
    """Validate the whole grid before any training: rule names (unique) and distortions."""
    if not config.rules:
        raise InvalidValueError("--rules: give at least one training rule")
    if config.trials is not None and config.trials < 1:
        raise InvalidValueError(f"--trials must be at least 1, not {config.trials}")
    rules = [parse_rule(r, config.clip).name for r in config.rules]
    dupes = sorted({r for r in rules if rules.count(r) > 1})
    if dupes:
        raise InvalidValueError(f"--rules: {', '.join(dupes)} given twice")
    for rule in rules:
        config.train_config(rule).check()
    return rules, parse_distortions(config.distortions)


def reproduce(config: GridConfig | None = None, out_dir: Path | None = None, progress: TrainProgress | None = None,
              **options) -> GridResult:
    """Train one model per rule, sweep each; checkpoints go to ``out_dir/models/RULE.pt`` when given.
    Without a ``config``, keyword ``options`` are its fields (``rw.reproduce(quick=True)``)."""
    config = GridConfig(**options) if config is None else replace(config, **options)
    started = time.perf_counter()
    rules, distortions = check_grid(config)
    points = plan(distortions, None, config.n_trials)
    frames, training = [], {}
    for i, rule in enumerate(rules):
        if progress is not None:
            progress.rule_start(rule, i, len(rules))
        result = train(config.train_config(rule), progress)
        if out_dir is not None:
            result.save(model_path(out_dir, rule))
        frames.append(sweep_trained(result, rule, points, config))
        training[rule] = {**result.record, "train_s": round(result.elapsed_s, 3)}
    rows = pd.concat(frames, ignore_index=True)
    summary = summarize_grid(rows)
    meta = grid_meta(config, rules, distortions, rows, time.perf_counter() - started)
    return GridResult(rows, summary, training, config, meta)


def model_path(out_dir: Path, rule: str) -> Path:
    folder = Path(out_dir) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (re.sub(r"[^A-Za-z0-9_.-]+", "_", rule) + ".pt")


def sweep_trained(result: TrainResult, rule: str, points: list, config: GridConfig) -> pd.DataFrame:
    """Sweep a freshly trained model (its hidden weights) on its test split; rows get a ``rule`` column."""
    device = next(result.model.parameters()).device
    loaded = LoadedModel(module=result.model.eval(), name=rule, arch=result.arch, dataset=result.test.name,
                         num_classes=result.test.num_classes, input_shape=result.test.input_shape,
                         normalization=result.test.normalization)
    runner = SweepRunner(loaded, result.test, device=device)
    rows = pd.DataFrame(runner.run(points, config.seed))
    rows.insert(0, "rule", rule)
    return rows


def summarize_grid(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`..engine.stats.summarize` per rule, with a ``rule`` column first (the rule is also the model name)."""
    parts = []
    for rule, g in rows.groupby("rule", sort=False):
        s = summarize(g.drop(columns=["rule"]))
        s.insert(0, "rule", rule)
        parts.append(s)
    return pd.concat(parts, ignore_index=True)


def grid_meta(config: GridConfig, rules: list[str], distortions: list, rows: pd.DataFrame, elapsed: float) -> dict:
    import platform

    import torch

    from .. import __version__

    tc = config.train_config(rules[0])
    return {
        "package": "robustbench_w", "version": __version__, "torch": torch.__version__,
        "python": platform.python_version(), "dataset": config.dataset, "arch": tc.arch, "epochs": tc.epochs,
        "lr": tc.lr, "batch_size": tc.batch_size, "optimizer": tc.optimizer, "schedule": tc.schedule,
        "clip": config.clip, "init": tc.init, "seed": config.seed, "trials": config.n_trials, "quick": config.quick,
        "rules": rules, "distortions": [d.spec for d in distortions], "n_test": int(rows["n"].iloc[0]),
        "elapsed_s": round(elapsed, 1),
    }


def with_overrides(config: GridConfig, **changes) -> GridConfig:
    """``config`` with the given fields replaced (``None`` values ignored)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def representative(strengths: list[float], identity: float | None) -> float:
    """The strength a report shows for a distortion: the middle of its grid (in the grid's order, mildest
    first), identity left out (power: beta = 0.1, addnorm: sigma = 0.5, multunif: gamma = 0.4 for the
    default grids)."""
    values = [s for s in strengths if identity is None or s != identity]
    return values[len(values) // 2] if values else math.nan
