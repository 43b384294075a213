"""Rich progress bars for training (``wrobust train`` and ``wrobust reproduce``): one bar per epoch."""

from __future__ import annotations

from ..report.text import pct
from .train import TrainProgress


class TrainBars(TrainProgress):
    """Rich progress bars on stderr: one bar per epoch (kept, or reused when ``keep`` is false)."""

    def __init__(self, progress, keep: bool):
        self.progress, self.keep, self.task, self.prefix = progress, keep, None, ""

    def rule_start(self, rule: str, index: int, total: int) -> None:
        self.prefix = f"{rule} ({index + 1}/{total}) "

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        description = f"{self.prefix}epoch {epoch + 1}/{epochs}"
        if self.task is None or self.keep:
            self.task = self.progress.add_task(description, total=steps)
        else:
            self.progress.reset(self.task, total=steps, description=description)

    def step(self, epoch: int, done: int, steps: int) -> None:
        self.progress.update(self.task, completed=done)

    def epoch_end(self, epoch: int, loss: float, test_error: float) -> None:
        description = self.progress.tasks[-1].description if self.keep else None
        if description is not None:
            self.progress.update(self.task, description=f"{description}  loss {loss:.4f}  test error {pct(test_error)}%")
