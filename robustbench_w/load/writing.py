"""Writing a file atomically: into a temporary file beside it, flushed to disk, then renamed over it.

A failed or interrupted write leaves any earlier file of that name as it was and no temporary file
behind; a finished one is on disk (the temporary file is fsynced before the rename, the folder after it).
An existing file the user made read-only is never replaced, and a write the storage refuses (a full disk, a
quota, a read-only file system) is one line naming the file (:class:`..errors.EnvironmentProblem`, exit 2).
Checkpoints (:func:`.checkpoints.save_checkpoint`) and every result file (``report.files``) are written here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import InvalidValueError, permission_denied, storage_error, write_protected


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)``, fsync ``tmp``, move it over ``path``; on any failure ``path`` is untouched and
    ``tmp`` is removed."""
    path = Path(path)
    check_writable(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        _fsync(tmp)
        tmp.replace(path)
    except PermissionError:
        raise permission_denied(path, "cannot write it") from None
    except OSError as exc:
        problem = storage_error(path, exc, "it (nothing was replaced)")
        if problem is None:
            raise
        raise problem from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)
    return path


def check_writable(path: Path) -> None:
    """Refuse an existing output file that is write-protected (no write bit, mode 0444, or not writable for this
    user): the rename over it would replace it silently. (root may write anything: the mode bits decide.)"""
    if path.is_file() and (not path.stat().st_mode & 0o222 or not os.access(path, os.W_OK)):
        raise write_protected(path)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable, where the system lets a folder be opened (not on Windows)."""
    try:
        fd = os.open(folder if str(folder) else ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the file itself is on disk
    finally:
        os.close(fd)


def check_distinct(outputs: list[tuple[str, Path]], inputs: list[tuple[str, Path]]) -> None:
    """Before any work: no two outputs of different options are one file (``--summary x.json -o x.json``), and no
    output is one of the inputs (``merge -o a.jsonl a.jsonl``, ``--log run.jsonl -o run.jsonl``). ``outputs`` and
    ``inputs`` are ``(option, path)`` pairs; one option naming one file twice writes it once, which is harmless."""
    seen: dict[str, str] = {}
    for option, path in outputs:
        key = _identity(path)
        if key in seen and seen[key] != option:
            raise InvalidValueError(f"{path}: named by both {seen[key]} and {option}: one would overwrite the other "
                                    "(give each its own file)")
        seen[key] = option
    for option, path in inputs:
        key = _identity(path)
        if key in seen:
            raise InvalidValueError(f"{path}: is both an input ({option}) and an output ({seen[key]}): writing it "
                                    "would destroy the input (choose another output)")


def _identity(path: Path) -> str:
    """One string per file: the resolved path (symbolic links followed, ``./a`` and ``a`` alike)."""
    return str(Path(path).expanduser().resolve())
