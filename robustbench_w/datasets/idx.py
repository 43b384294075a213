"""The header of an idx file (MNIST's format, LeCun et al., http://yann.lecun.com/exdb/mnist/), checked before
torchvision reads it: a zero-byte, truncated or foreign file, or one whose header counts more items than it
holds, is one line naming the file instead of a raw ``int()`` or tensor error.

Layout: two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), the number of dimensions, then each dimension as a big-endian 32-bit integer, then the data.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

from ..errors import InputFileError

ITEM_SIZES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def check_idx(path: Path, dataset: str) -> None:
    """Refuse ``path`` unless its header is an idx header whose dimensions fit the file's size (and, where the
    name says ``idxN``, has N dimensions)."""
    size = path.stat().st_size
    where = f"dataset {dataset}: cannot read {path}:"
    if size == 0:
        raise InputFileError(f"{where} it is empty (0 bytes); fetch it again (--download into an empty --data-root)")
    with open(path, "rb") as f:
        head = f.read(4)
        if head[:2] != b"\0\0"[:len(head[:2])] or (len(head) > 2 and head[2] not in ITEM_SIZES):
            raise InputFileError(f"{where} not an idx file (bad magic number 0x{head.hex()})")
        dims = f.read(4 * head[3]) if len(head) == 4 else b""
    if len(head) < 4 or len(dims) < 4 * head[3]:
        raise InputFileError(f"{where} truncated inside its header ({size} bytes)")
    shape = struct.unpack(f">{head[3]}i", dims)
    named = re.search(r"idx(\d)", path.name)
    if named and int(named.group(1)) != len(shape):
        raise InputFileError(f"{where} it has {len(shape)} dimensions, its name says {named.group(1)}")
    expected = 4 + len(dims) + math.prod(shape) * ITEM_SIZES[head[2]]
    if size < expected:
        raise InputFileError(f"{where} truncated: its header counts {' x '.join(map(str, shape))} items "
                             f"({expected:,} bytes), the file has {size:,} bytes")
