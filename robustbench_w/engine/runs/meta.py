"""What a sweep's (or gate's) ``meta`` says about its run: versions and device, model and data, targets and
coverage, the task and metrics (:func:`task_meta`), how the passes ran (:func:`pass_meta`), trials, health,
warnings, layers and hardware. ``runner`` is the run's :class:`~.sweep.SweepRunner`."""

from __future__ import annotations

import torch

from ...datasets.base import EvalSet
from ...datasets.batches import BatchedSet
from ...load.checkpoints import LoadedModel
from .trials import TrialRule


def run_meta(model: LoadedModel, data: EvalSet | BatchedSet, runner, device: torch.device, seed: int,
             elapsed: float, trials: TrialRule | None = None) -> dict:
    """The ``meta`` of a run of ``runner`` on ``model`` and ``data`` (see the module docstring)."""
    import platform
    import sys

    from ... import __version__

    return {
        "package": "robustbench_w", "version": __version__, "torch": torch.__version__,
        "python": platform.python_version(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "seed": seed, "command": " ".join(["wrobust", *sys.argv[1:]] if sys.argv[0].endswith("wrobust") else sys.argv),
        "model": model.name,
        "model_sha256": model.sha256, "dataset": data.name, "split": data.split, "n": len(data),
        "normalization": data.normalization.to_dict(), "normalization_text": data.normalization.describe(),
        "normalization_source": data.normalization_source,
        "targets": runner.patch.names, "target_weights": runner.patch.numel, "coverage": runner.coverage,
        "pristine": runner.patch.mode,
        **task_meta(runner),
        **pass_meta(runner, device), **({"trials": trials.judging(runner.judged()).meta()} if trials else {}),
        "elapsed_s": round(elapsed, 3), **runner.health.to_meta(),
        "notes": [*model.notes, *runner.fast.notes(device)], "warnings": list(runner.warnings),
        **runner.layer_meta(), **runner.hardware.hardware.meta(),
    }


def pass_meta(runner, device: torch.device) -> dict:
    """How the passes ran: precision, layout, compilation, the batch size in use and any halving."""
    return {**runner.fast.meta(device), "batch_size": runner.evaluator.batch_size, "inputs": runner.evaluator.mode,
            "batch_halvings": list(runner.evaluator.halvings)}


def task_meta(runner) -> dict:
    """What was measured: the task, its metrics (name, column, direction, bounds), those the report shows, the
    measured output and its pooling, and whether the clean model reran for lack of room for its references."""
    task = runner.task
    metrics = [{"name": m.name, "column": m.column, "higher_is_better": m.info.higher_is_better,
                "bounds": list(m.info.bounds)} for m in task.metrics]
    return {"task": task.name, "metrics": metrics, "report_metrics": list(task.shown),
            "output_key": task.plan.key, "pool": task.plan.pool, "clean_rerun": runner.evaluator.rerun}
