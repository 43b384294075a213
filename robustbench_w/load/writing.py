"""Writing a file atomically: into a temporary file beside it, flushed to disk, then renamed over it.

A failed or interrupted write leaves any earlier file of that name as it was and no temporary file
behind; a finished one is on disk (the temporary file is fsynced before the rename, the folder after it).
Checkpoints (:func:`.checkpoints.save_checkpoint`) and every result file (``report.files``) are written here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import permission_denied


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)``, fsync ``tmp``, move it over ``path``; on any failure ``path`` is untouched and
    ``tmp`` is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        _fsync(tmp)
        tmp.replace(path)
    except PermissionError:
        raise permission_denied(path, "cannot write it") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)
    return path


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
