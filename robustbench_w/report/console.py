"""Consoles for the terminal and the progress bar of long work (quiet in pipes and with ``--quiet``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

PIPE_WIDTH = 160  # output to a file or pipe is not wrapped at 80 columns


def stdout_console() -> Console:
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPE_WIDTH if wide else None)


def stderr_console() -> Console:
    return Console(stderr=True)


@contextmanager
def progress_bar(quiet: bool, description: str = "sweep") -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich progress bar on a terminal's stderr; ``None`` (no output at all) when quiet or piped."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr_console(), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{description}: {label}")

        yield update
