"""The experiment grid of Merolla et al. 2016 (arXiv:1606.01981): training rule x training seed x test-time
distortion, and the five claims it tests.

For each rule and each training seed (:class:`.grid.GridConfig`), one model is trained (:mod:`.train`) and
swept (:class:`robustbench_w.engine.runs.sweep.SweepRunner`, its distortion draws seeded from the training seed)
over the curves and the columns at the paper's strengths (:func:`.grid.plan_points`). The rows get ``rule``
and ``train_seed`` columns; :mod:`.cells` summarises them over seeds and trials and :mod:`.claims` judges the
claims. Nothing is tuned per rule: every rule gets the same recipe and the same seeds.

With ``out_dir``, the checkpoints go to ``out_dir/models/RULE-seedN.pt``, one per rule and seed, each
holding its full training configuration (the checkpoint's ``train`` record): a later run can tell whether
a checkpoint matches the model it needs; and each sweep logs its points to ``out_dir/logs/RULE-seedN.jsonl``.
With ``resume``, matching checkpoints are loaded instead of trained and the sweeps resume from their logs
(:mod:`.resume`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ..engine.runs.resume import RunSetup, run_resumable
from ..engine.runs.signals import Interrupted
from ..engine.runs.meta import run_meta
from ..engine.runs.sweep import Point, SweepRunner
from ..load.checkpoints import LoadedModel, file_sha256
from .cells import summarize_cells
from .claims import Claim, judge_claims
from .grid import Grid, GridConfig, check_grid, plan_points
from .resume import check_resume, check_reusable, load_trained, log_path, logged_train_seconds
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
              resume: bool = False, **options) -> GridResult:
    """Train and sweep every rule x seed; judge the claims. Without a ``config``, keyword ``options`` are its
    fields (``rw.reproduce(quick=True)``). ``resume``: continue the run in ``out_dir`` (:mod:`.resume`)."""
    config = GridConfig(**options) if config is None else replace(config, **options)
    started = time.perf_counter()
    check_resume(resume, out_dir)
    grid = check_grid(config)
    points = plan_points(grid, config.n_trials)
    runs = [(rule, seed) for rule in grid.rules for seed in config.train_seeds]
    files = {run: model_path(out_dir, *run) for run in runs} if out_dir is not None else {}
    reuse = {run: resume and check_reusable(f, config.train_config(*run)) for run, f in files.items()}
    frames, training = [], {rule: {} for rule in grid.rules}
    with cpu_threads(config.threads):
        for i, (rule, seed) in enumerate(runs):
            if progress is not None:
                progress.rule_start(f"{rule} seed {seed}", i, len(runs))
            result = trained(config, rule, seed, files.get((rule, seed)), reuse.get((rule, seed), False), progress)
            frames.append(sweep_trained(result, rule, seed, points, files.get((rule, seed)), resume))
            training[rule][seed] = {**result.record, "train_s": round(result.elapsed_s, 3)}
    rows = pd.concat(frames, ignore_index=True)
    claims = judge_claims(rows, grid.rules, grid.columns, config.within, config.clip)
    meta = grid_meta(config, grid, rows, time.perf_counter() - started)
    return GridResult(rows, summarize_cells(rows), claims, training, config, grid, meta)


def model_path(out_dir: Path, rule: str, seed: int) -> Path:
    """``out_dir/models/RULE-seedN.pt`` (characters other than letters, digits, ``_.=-`` become ``_``)."""
    folder = Path(out_dir) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', rule)}-seed{seed}.pt"


def trained(config: GridConfig, rule: str, seed: int, model_file: Path | None, reuse: bool,
            progress: TrainProgress | None) -> TrainResult:
    """The model of ``rule`` and ``seed``: loaded from ``model_file`` when ``reuse``, else trained (and saved
    there)."""
    if reuse:
        return load_trained(model_file, config.train_config(rule, seed), logged_train_seconds(log_path(model_file)))
    result = train(config.train_config(rule, seed), progress)
    if model_file is not None:
        result.save(model_file)
    return result


def sweep_trained(result: TrainResult, rule: str, seed: int, points: list[Point], model_file: Path | None = None,
                  resume: bool = False) -> pd.DataFrame:
    """Sweep a trained model (its hidden weights) on its test split, the draws seeded from ``seed``; the rows
    get ``rule`` and ``train_seed`` columns first. With its checkpoint ``model_file``, the points are logged
    next to it (``logs/RULE-seedN.jsonl``) and, with ``resume``, taken from that log where it has them."""
    device = next(result.model.parameters()).device
    loaded = LoadedModel(module=result.model.eval(), name=rule, arch=result.arch, dataset=result.test.name,
                         num_classes=result.test.num_classes, input_shape=result.test.input_shape,
                         normalization=result.test.normalization,
                         sha256=None if model_file is None else file_sha256(model_file))
    runner = SweepRunner(loaded, result.test, device=device)
    if model_file is None:
        rows = pd.DataFrame(runner.run(points, seed))
    else:
        rows = pd.DataFrame(logged_sweep(runner, points, seed, log_path(model_file), resume, result.elapsed_s))
    rows.insert(0, "train_seed", seed)
    rows.insert(0, "rule", rule)
    return rows


def logged_sweep(runner: SweepRunner, points: list[Point], seed: int, log: Path, resume: bool,
                 train_s: float) -> list[dict]:
    """The rows of ``runner`` over ``points``, each logged to ``log`` (resumed from it with ``resume``; replaced
    without); SIGINT/SIGTERM raise :class:`..engine.runs.signals.Interrupted` (the log keeps what finished)."""
    if not resume:
        log.unlink(missing_ok=True)  # a run without --resume starts over
    meta = run_meta(runner.model, runner.data, runner, runner.device, seed, 0.0)
    setup = RunSetup(log, resume, kind="reproduce", extra={"train_s": round(train_s, 3)})
    outcome = run_resumable(runner, points, seed, None, setup, meta)
    if outcome.signal:
        raise Interrupted(outcome.signal)
    return outcome.rows


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
