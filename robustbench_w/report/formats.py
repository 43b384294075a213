"""The file formats each command writes, by suffix, and the check of an output path before any work.

Kept apart from the writers (which need pandas, rich, matplotlib) so that the command line can offer and
check them without importing any of those: ``wrobust --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..errors import InputFileError, InvalidValueError
from ..load.writing import check_writable

OUTPUT_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet", ".md")  # sweep, demo, merge (report.files)
BITS_SUFFIXES = (".json", ".csv", ".md")  # bits (report.bits)
TARGETS_SUFFIXES = (".csv", ".json")  # targets (report.targets)
COMPARE_SUFFIXES = (".csv", ".json", ".md")  # compare (report.comparison)
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")  # plot (report.figures)
REPORT_SUFFIXES = (".html", ".md")  # report (report.publish)
PLOT_KINDS = ("curves", "frontier", "layers")  # plot --kind (report.plots)
DPI = 150  # plot --dpi (report.figures)


def check_output_path(path: Path, suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> Path:
    """Validate an output path before any work is done: known suffix, existing writable folder."""
    if path.suffix.lower() not in suffixes:
        raise InvalidValueError(f"{path}: unknown output format {path.suffix or '(no suffix)'!r} (use {', '.join(suffixes)})")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputFileError(f"{path}: folder {folder} does not exist")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory")
    if not os.access(folder, os.W_OK):
        raise InputFileError(f"{path}: folder {folder} is not writable (permission denied)")
    check_writable(path)
    if path.suffix.lower() == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise InvalidValueError(f"{path}: writing .parquet needs pyarrow: pip install 'robustbench_w[parquet]'")
    return path


def partial_path(path: Path) -> Path:
    """Where an interrupted run writes what it has: ``NAME.partial.SUFFIX`` beside ``NAME.SUFFIX``, which stays
    as it was (an earlier complete result is never replaced by a partial one)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")
