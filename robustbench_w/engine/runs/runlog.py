"""Run logs: a header line, then one JSON line per finished point, each flushed and fsynced as it is written.

A log lets a killed run lose nothing: ``--resume`` reads it back, checks that it belongs to the same run
(model, dataset, targets, seed, hardware, what is measured: :func:`differences`), and evaluates only the
points it lacks. Format::

    {"format": "wrobust-log", "version": 1, "kind": "sweep", "model": ..., "model_sha256": ..., "dataset": ...,
     "split": ..., "n": ..., "seed": ..., "targets": [...], "normalization": {...}, "points": [KEY, ...],
     "units": [...] (a per-layer sweep's units, compared like the targets),
     "coverage": {...} (what the targets distort and leave clean, engine.weights.coverage),
     "hardware": {"redraw": "point", "converters": "off" or {...}} (compared: rows behind converters differ),
     "measured": {"task": ..., "metrics": [column, ...], "output_key": ..., "pool": ...} (compared),
     "shard": "1/2" or null, "command": ..., "package_version": ..., "torch": ..., "created": ...}
    {"model": ..., "spec": "addnorm", "strength": 0.1, "trial": 0, ... one result row ...}

Rows are written with Python's ``json`` (non-finite numbers as ``NaN``/``Infinity``, which it reads back),
so a row read from a log is exactly the row that was evaluated. Each line goes out in one ``write`` on a file
opened for appending, then ``fsync``: a kill can only leave the *last* line incomplete. Such a torn line (no
final newline, or one that does not parse) is detected and dropped, never read as a row, and the file is cut
back to its last whole line before anything is appended to it. A line that does not parse anywhere else
means the file is damaged: that is an error naming the line.

Processes of one distributed run log to one file each (:func:`rank_path`: ``run.jsonl``, ``run.rank1.jsonl``,
...), so that no two processes append to one file, also not over a network file system.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputFileError, storage_error
from ...load.writing import check_writable
from .points import row_key

FORMAT = "wrobust-log"
VERSION = 1
# What a run's rows depend on; a log or result file is refused when one of these differs (the precision of the
# passes too: bf16 rows are not fp32 rows; the hardware, ``--redraw`` and the converters, since rows behind a
# 2-bit DAC are not rows without one; what was measured, the task, metrics, output and pooling, since rows
# without a cosine column do not join rows with one; a side that does not record a field, an older file, is
# not compared).
IDENTITY = ("model", "dataset", "split", "n", "seed", "targets", "normalization", "units", "precision", "hardware",
            "measured")
LABELS = {"model_sha256": "model sha256", "n": "dataset size", "normalization": "normalisation"}


def header(kind: str, meta: Mapping, points: Iterable[str], **extra: object) -> dict:
    """The first line of a log: the run's identity (from a sweep's ``meta``), its grid and how it was started."""
    keep = ("model", "model_sha256", "dataset", "split", "n", "seed", "targets", "normalization", "units",
            "precision", "coverage", "command", "torch", "device")
    return {"format": FORMAT, "version": VERSION, "kind": kind, **{k: meta.get(k) for k in keep if k in meta},
            **derived_identity(meta), "package_version": meta.get("version"), "points": list(points), **extra,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def derived_identity(meta: Mapping) -> dict:
    """The identity fields a log header and a result file derive from a sweep's or gate's meta: ``hardware``
    and ``measured`` (:func:`hardware_identity`, :func:`measured_identity`)."""
    return {**hardware_identity(meta), **measured_identity(meta)}


def measured_identity(meta: Mapping) -> dict:
    """``{"measured": {"task": ..., "metrics": [column, ...], "output_key": ..., "pool": ...}}`` for the meta of a
    sweep or gate, ``{}`` for one that does not say (an older log, a reproduce run)."""
    if "metrics" not in meta or "task" not in meta:
        return {}
    columns = sorted(m["column"] if isinstance(m, Mapping) else str(m) for m in meta["metrics"])  # order is free
    return {"measured": {"task": meta["task"], "metrics": columns, "output_key": meta.get("output_key"),
                         "pool": meta.get("pool")}}


def hardware_identity(meta: Mapping) -> dict:
    """``{"hardware": {"redraw": ..., "converters": ...}}`` for the meta of a sweep or gate (converters ``"off"``
    where there are none, so that a run without them is told from one with them), ``{}`` for a meta that does
    not say (a log of an older version, a reproduce run)."""
    if "redraw" not in meta:
        return {}
    return {"hardware": {"redraw": meta["redraw"], "converters": meta.get("converters") or "off"}}


def is_header(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def differences(ours: Mapping, theirs: Mapping) -> list[str]:
    """What differs between two runs' identities, as ``"seed 0 vs 1"``; a field either side lacks is not
    compared. The model is compared by its file's hash when both sides have one, else by its name."""
    fields = list(IDENTITY)
    if ours.get("model_sha256") and theirs.get("model_sha256"):
        fields[0] = "model_sha256"
    found = []
    for name in fields:
        a, b = ours.get(name), theirs.get(name)
        if a is not None and b is not None and _canonical(a) != _canonical(b):
            found.append(f"{LABELS.get(name, name)} {_show(name, a)} vs {_show(name, b)}")
    return found


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def _show(name: str, value: object) -> str:
    if name == "model_sha256":
        return str(value)[:12]
    if name == "hardware" and isinstance(value, dict):
        conv = value.get("converters")
        conv = ", ".join(f"{k} {v}" for k, v in conv.items() if v is not None) if isinstance(conv, dict) else conv
        return f"(redraw {value.get('redraw')}, converters {conv})"
    if name == "measured" and isinstance(value, dict):
        parts = [", ".join(map(str, value.get("metrics", [])))]
        parts += [f"{k} {value[k]}" for k in ("output_key", "pool") if value.get(k) is not None]
        return f"({value.get('task')}: {'; '.join(parts)})"
    if isinstance(value, list):
        text = ",".join(map(str, value))
        return f"[{len(value)}: {text[:40]}{'...' if len(text) > 40 else ''}]"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def dumps(row: Mapping) -> str:
    """One row as one JSON line (exact floats; NaN and Infinity as Python's json writes them)."""
    return json.dumps(dict(row), default=_plain) + "\n"


def _plain(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()  # numpy and torch scalars
    raise TypeError(f"cannot write {type(value).__name__} to a run log")


# ------------------------------------------------------------------ reading

@dataclass
class LogContents:
    """A log as read: its header (None when the file holds none yet), its rows, and whether a torn last
    line was dropped (``good_bytes``: the length of the file up to its last whole line)."""

    path: Path
    header: dict | None
    rows: list[dict] = field(default_factory=list)
    torn: bool = False
    good_bytes: int = 0


def read_log(path: Path) -> LogContents:
    """Read a log, dropping a torn last line; raise :class:`InputFileError` for a damaged or foreign file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the run log: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a line torn by a kill
    parsed, good = [], 0
    for i, line in enumerate(lines):
        obj = _parse(line)
        if obj is None and i == len(lines) - 1 and not tail:
            return _contents(path, parsed, torn=True, good=good)  # e.g. zeros left by a crash
        if obj is None:
            raise InputFileError(f"{path}: line {i + 1} is not a JSON object: the run log is damaged")
        parsed.append(obj)
        good += len(line) + 1
    return _contents(path, parsed, torn=bool(tail), good=good)


def _parse(line: bytes) -> dict | None:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _contents(path: Path, objs: list[dict], torn: bool, good: int) -> LogContents:
    if not objs:
        return LogContents(Path(path), None, [], torn, good)
    if not is_header(objs[0]):
        raise InputFileError(f"{path}: not a wrobust run log (its first line is not a wrobust-log header)")
    if objs[0].get("version", 0) > VERSION:
        raise InputFileError(f"{path}: run log version {objs[0]['version']} is newer than this wrobust reads "
                             f"({VERSION}); upgrade wrobust")
    for line, row in enumerate(objs[1:], start=2):
        problem = row_problem(objs[0], row)
        if problem:
            raise InputFileError(f"{path}: line {line}: {problem}: the row is not one of this log's run (edited, or "
                                 "from another run); remove that line, or start a new log")
    return LogContents(Path(path), objs[0], objs[1:], torn, good)


ROW_NUMBERS = ("accuracy", "error", "loss", "agreement", "weight_change")  # numbers (or null) in every row
ROW_IDENTITY = ("model", "dataset", "seed", "n")  # what a row must share with the header that heads it


def row_problem(head: Mapping, row: Mapping) -> str:
    """What is wrong with a row read from a log under ``head`` ('' for a good row): it names its point (spec,
    strength, trial), its identity is the header's (model, dataset, seed, size), its measures are numbers. (Its
    point need not be in the header's ``points``: a resumed run may extend the grid.)"""
    if not isinstance(row.get("spec"), str) or not _number(row.get("strength")) or not _integer(row.get("trial", 0)):
        return "no 'spec' text, 'strength' number and 'trial' count"
    for name in ROW_IDENTITY:
        if name in row and head.get(name) is not None and row[name] != head[name]:
            return f"{name} {row[name]!r} differs from the header's {head[name]!r}"
    bad = [name for name in ROW_NUMBERS if name in row and not _number(row[name])]
    return f"{bad[0]} {row[bad[0]]!r} is not a number" if bad else ""


def _number(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_compatible(contents: LogContents, expected: Mapping) -> None:
    """Raise unless the log belongs to the run described by ``expected`` (a header or a sweep's meta)."""
    if contents.header is None:
        return
    found = differences(contents.header, expected)
    if found:
        raise InputFileError(f"{contents.path}: the log belongs to another run ({'; '.join(found)}; "
                             f"log vs this run): use another --log, or the command that wrote it")


# ------------------------------------------------------------------ paths

def rank_path(path: Path, rank: int) -> Path:
    """The log of one process of a distributed run: ``run.jsonl`` for rank 0, ``run.rank3.jsonl`` for rank 3."""
    path = Path(path)
    return path if rank == 0 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def family(path: Path) -> list[Path]:
    """A log and the existing logs of the other processes of distributed runs that used it."""
    path = Path(path)
    ranks = sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"), key=lambda p: _rank_number(p, path))
    return [p for p in [path, *ranks] if p.is_file() and _rank_number(p, path) >= 0]


def _rank_number(candidate: Path, path: Path) -> int:
    if candidate == path:
        return 0
    middle = candidate.name[len(path.stem) + len(".rank"):len(candidate.name) - len(path.suffix)]
    return int(middle) if middle.isdigit() else -1


def consolidate(path: Path) -> None:
    """Fold the logs of a distributed run's other processes (``run.rank1.jsonl``, ...) into ``path`` and remove
    them; every row of every file is kept (once)."""
    path = Path(path)
    files = family(path)
    others = [p for p in files if p != path]
    if not others:
        return
    contents = {p: read_log(p) for p in files}
    head = next((c.header for c in contents.values() if c.header is not None), None)
    if head is None:
        return
    have = {row_key(r) for r in contents[path].rows} if path in contents else set()
    with RunLog(path, head, resume=True) as log:
        for p in others:
            for row in contents[p].rows:
                if row_key(row) not in have:
                    log.append(row)
                    have.add(row_key(row))
    for p in others:
        p.unlink(missing_ok=True)


# ------------------------------------------------------------------ writing

class RunLog:
    """An open log, appended to one whole line at a time (write, flush, fsync)."""

    def __init__(self, path: Path, head: dict, resume: bool = False):
        self.path = Path(path)
        self._fd = self._open(head, resume)

    def _open(self, head: dict, resume: bool) -> int:
        exists = self.path.exists()
        if exists and not resume:
            raise InputFileError(f"{self.path}: the run log exists; pass --resume to continue it, or choose "
                                 "another --log")
        if not self.path.parent.is_dir():
            raise InputFileError(f"{self.path}: folder {self.path.parent} does not exist")
        check_writable(self.path)
        contents = read_log(self.path) if exists else LogContents(self.path, None)
        check_compatible(contents, head)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise InputFileError(f"{self.path}: cannot write the run log: {exc.strerror or exc}") from None
        try:
            if exists:
                os.truncate(fd, contents.good_bytes if contents.header is not None else 0)  # drop a torn line
            if contents.header is None:
                self._write(fd, dumps(head))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def append(self, row: Mapping) -> None:
        self._write(self._fd, dumps(row))

    def _write(self, fd: int, line: str) -> None:
        """One whole line; a write the storage refuses (a full disk) is one line naming the log, exit 2."""
        try:
            _write_line(fd, line)
        except OSError as exc:
            raise storage_error(self.path, exc, "the run log (the points before are kept)") or InputFileError(
                f"{self.path}: cannot write the run log: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_line(fd: int, line: str) -> None:
    data = line.encode()
    written = os.write(fd, data)
    while written < len(data):  # a short write (rare: a full disk, a signal) continues where it stopped
        written += os.write(fd, data[written:])
    os.fsync(fd)
