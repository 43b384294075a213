"""``wrobust reproduce -o DIR --resume``: continue an interrupted grid from what it left in DIR.

- A checkpoint ``DIR/models/RULE-seedN.pt`` whose ``train`` record holds the training configuration this run
  needs (:func:`..paper.train.config_record`: recipe, rule, clip, seed, threads, ...; not the data folder,
  which does not change the data) is loaded instead of trained. One recorded with another configuration
  means the folder belongs to another grid: an error before any work (exit 2) that names the first
  difference, so that nothing is overwritten.
- Each model's sweep logs its points to ``DIR/logs/RULE-seedN.jsonl`` (:mod:`..engine.runs.runlog`) and resumes
  from it: only the missing points are evaluated. The log's header also keeps how long the model took to
  train (``train_s``), so the report of a resumed run shows the training times of the run that trained.

Without ``--resume``, a run into a folder that holds these files starts over and replaces them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..engine.runs.runlog import read_log
from ..errors import InputFileError, InvalidValueError
from ..load.checkpoints import load_model, read_weights_only
from ..load.device import resolve_device
from .train import TrainConfig, TrainResult, config_record, train_and_test

IGNORED = ("data_options",)  # where the data lives does not change what was trained


def check_reusable(path: Path, config: TrainConfig) -> bool:
    """Whether ``path`` holds the model ``config`` trains (False: no such file); raises when it holds another."""
    if not path.is_file():
        return False
    obj = read_weights_only(path)
    record = obj.get("train") if isinstance(obj, dict) else None
    if not isinstance(record, dict):
        raise InputFileError(f"{path}: not a checkpoint written by reproduce (no training record); "
                             "use another -o folder, or remove it")
    for key, wanted in config_record(config).items():
        if key not in IGNORED and _same(record.get(key)) != _same(wanted):
            raise InputFileError(f"{path} was trained with {key}={record.get(key)!r}, this run needs {wanted!r}: "
                                 "the folder holds another grid (use another -o folder, or drop --resume)")
    return True


def _same(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)  # tuples and lists alike


def load_trained(path: Path, config: TrainConfig, train_s: float) -> TrainResult:
    """The checkpointed model as :func:`..paper.train.train` would have returned it (its test split loaded)."""
    device = resolve_device(config.device)
    loaded = load_model(path, device=device)
    test = train_and_test(config)[1]  # the examples it was tested on (held out of a set without splits)
    return TrainResult(loaded.module.eval(), loaded.arch or config.arch, {}, test, dict(loaded.extra["train"]),
                       train_s)


def logged_train_seconds(log: Path) -> float:
    """``train_s`` from a sweep log's header (nan when the log or the figure is missing)."""
    if not log.is_file():
        return math.nan
    header = read_log(log).header or {}
    value = header.get("train_s")
    return float(value) if isinstance(value, (int, float)) else math.nan


def check_resume(resume: bool, out_dir: Path | None) -> None:
    if resume and out_dir is None:
        raise InvalidValueError("--resume needs -o DIR: the folder of the run to continue")


def log_path(model_file: Path) -> Path:
    """``DIR/logs/RULE-seedN.jsonl`` for the checkpoint ``DIR/models/RULE-seedN.pt``."""
    folder = Path(model_file).parent.parent / "logs"
    folder.mkdir(exist_ok=True)
    return folder / f"{Path(model_file).stem}.jsonl"

