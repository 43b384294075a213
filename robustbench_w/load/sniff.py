"""Recognising a checkpoint file's kind by its bytes, never by its suffix: ``torch`` (a ``torch.save`` zip or a
legacy pickle), ``safetensors``, ``torchscript`` or ``export`` (a ``torch.export`` ``.pt2`` program)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import InputFileError, first_line, permission_denied


def sniff(path: Path) -> str:
    """The kind of checkpoint file, from its content: ``torch``, ``safetensors``, ``torchscript`` or ``export``."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except PermissionError:
        raise permission_denied(path, "cannot read the checkpoint") from None
    if not head:
        raise InputFileError(f"{path}: empty file, not a checkpoint")
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30):
        return "safetensors"  # an 8-byte little-endian header length, then the JSON header
    if head[:1] == b"\x80":  # a pickle: torch.save's legacy (before PyTorch 1.6) format
        return "torch"
    raise InputFileError(f"{path}: not a checkpoint wrobust can read (expected a PyTorch .pt/.pth/.bin, "
                         f"safetensors, TorchScript or torch.export .pt2 file)")


def _zip_kind(path: Path) -> str:
    try:
        if not _ends_with_directory(path):
            raise zipfile.BadZipFile("the archive's directory is not at its end")
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"{path}: truncated or corrupt checkpoint ({first_line(exc)})") from exc
    tails = {name.split("/", 1)[-1] for name in names}
    if "archive_format" in tails or any(t.startswith("models/") and t.endswith(".json") for t in tails):
        return "export"
    if "constants.pkl" in tails and any(t.startswith("code/") for t in tails):
        return "torchscript"
    if "data.pkl" in tails:
        return "torch"
    raise InputFileError(f"{path}: a zip archive, but not a PyTorch checkpoint")


def _ends_with_directory(path: Path) -> bool:
    """Whether the file ends with a zip end-of-directory record (a truncated archive does not; without this
    check a cut ``.pt2`` would be read as the ``torch.save`` archive it embeds)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 22 - 65535))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    return at >= 0 and at + 22 + int.from_bytes(tail[at + 20:at + 22], "little") == len(tail)
