"""The experiment grid of Merolla et al. 2016 (arXiv:1606.01981): training rule x training seed x test-time
distortion, and the five claims it tests.

For each rule and each training seed (:class:`.grid.GridConfig`), one model is trained (:mod:`.train`) and
swept (:class:`robustbench_w.engine.sweep.SweepRunner`, its distortion draws seeded from the training seed)
over the curves and the columns at the paper's strengths (:func:`.grid.plan_points`). The rows get ``rule``
and ``train_seed`` columns; :mod:`.cells` summarises them over seeds and trials and :mod:`.claims` judges the
claims. Nothing is tuned per rule: every rule gets the same recipe and the same seeds.

With ``out_dir``, the checkpoints go to ``out_dir/models/RULE-seedN.pt``, one per rule and seed, each
holding its full training configuration (the checkpoint's ``train`` record): a later run can tell whether
a checkpoint matches the model it needs.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ..engine.sweep import Point, SweepRunner
from ..load.checkpoints import LoadedModel
from .cells import summarize_cells
from .claims import Claim, judge_claims
from .grid import Grid, GridConfig, check_grid, plan_points
from .train import TrainProgress, TrainResult, cpu_threads, train


@dataclass
class GridResult:
    """Rows (rule x seed x distortion x strength x trial), cells over seeds and trials, the claims, and the
    training record of each rule and seed (``training[rule][seed]``)."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    claims: list[Claim]
    training: dict[str, dict[int, dict]]
    config: GridConfig
    grid: Grid
    meta: dict


def reproduce(config: GridConfig | None = None, out_dir: Path | None = None, progress: TrainProgress | None = None,
              **options) -> GridResult:
    """Train and sweep every rule x seed; judge the claims. Without a ``config``, keyword ``options`` are its
    fields (``rw.reproduce(quick=True)``)."""
    config = GridConfig(**options) if config is None else replace(config, **options)
    started = time.perf_counter()
    grid = check_grid(config)
    points = plan_points(grid, config.n_trials)
    runs = [(rule, seed) for rule in grid.rules for seed in config.train_seeds]
    frames, training = [], {rule: {} for rule in grid.rules}
    with cpu_threads(config.threads):
        for i, (rule, seed) in enumerate(runs):
            if progress is not None:
                progress.rule_start(f"{rule} seed {seed}", i, len(runs))
            result = train(config.train_config(rule, seed), progress)
            if out_dir is not None:
                result.save(model_path(out_dir, rule, seed))
            frames.append(sweep_trained(result, rule, seed, points))
            training[rule][seed] = {**result.record, "train_s": round(result.elapsed_s, 3)}
    rows = pd.concat(frames, ignore_index=True)
    claims = judge_claims(rows, grid.rules, grid.columns, config.within)
    meta = grid_meta(config, grid, rows, time.perf_counter() - started)
    return GridResult(rows, summarize_cells(rows), claims, training, config, grid, meta)


def model_path(out_dir: Path, rule: str, seed: int) -> Path:
    """``out_dir/models/RULE-seedN.pt`` (characters other than letters, digits, ``_.=-`` become ``_``)."""
    folder = Path(out_dir) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', rule)}-seed{seed}.pt"


def sweep_trained(result: TrainResult, rule: str, seed: int, points: list[Point]) -> pd.DataFrame:
    """Sweep a freshly trained model (its hidden weights) on its test split, the draws seeded from ``seed``;
    the rows get ``rule`` and ``train_seed`` columns first."""
    device = next(result.model.parameters()).device
    loaded = LoadedModel(module=result.model.eval(), name=rule, arch=result.arch, dataset=result.test.name,
                         num_classes=result.test.num_classes, input_shape=result.test.input_shape,
                         normalization=result.test.normalization)
    rows = pd.DataFrame(SweepRunner(loaded, result.test, device=device).run(points, seed))
    rows.insert(0, "train_seed", seed)
    rows.insert(0, "rule", rule)
    return rows


def grid_meta(config: GridConfig, grid: Grid, rows: pd.DataFrame, elapsed: float) -> dict:
    import platform

    import torch

    from .. import __version__

    tc = config.train_config(grid.rules[0], config.seed)
    return {
        "package": "robustbench_w", "version": __version__, "torch": torch.__version__,
        "python": platform.python_version(), "dataset": config.dataset, "arch": tc.arch, "epochs": tc.epochs,
        "lr": tc.lr, "schedule": tc.schedule, "batch_size": tc.batch_size, "optimizer": tc.optimizer,
        "clip": config.clip, "init": tc.init, "threads": config.threads, "seeds": config.train_seeds,
        "trials": config.n_trials, "quick": config.quick, "within": config.within, "rules": grid.rules,
        "curves": [d.spec for d in grid.curves], "columns": [c.label for c in grid.columns[1:]],
        "n_test": int(rows["n"].iloc[0]), "elapsed_s": round(elapsed, 1),
    }


def with_overrides(config: GridConfig, **changes) -> GridConfig:
    """``config`` with the given fields replaced (``None`` values ignored)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
