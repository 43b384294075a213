"""When the user's own code raises: an ``--arch file.py:callable`` or the classes of a trusted pickle.

Such an error is the user's to fix, not a bug of wrobust: it becomes one line, ``your model raised
RuntimeError: boom (in net.py:forward)`` (exit 2). The user's code is the deepest frame of the traceback
that runs inside a module call (below ``torch.nn.Module.__call__``) and lies outside wrobust, PyTorch and
its companions, and the standard library; an error with no such frame (raised by a torchvision model, by
torch itself, or by wrobust outside any forward pass) is not the user's code and is left as it is.
"""

from __future__ import annotations

import sys
import sysconfig
import traceback
from pathlib import Path

from ..errors import UserCodeError

# Packages whose frames are never the user's code (only those already imported are looked up).
LIBRARIES = ("robustbench_w", "torch", "torchvision", "timm", "transformers", "safetensors", "numpy", "click", "rich")


def library_roots() -> tuple[str, ...]:
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
    for name in LIBRARIES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            roots.add(str(Path(module.__file__).resolve().parent))
    return tuple(str(Path(r).resolve()) for r in roots)


MODULE_CALL = str(Path("torch", "nn", "modules", "module.py"))


def user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The deepest frame of ``exc``'s traceback in the user's code inside a module call, if any."""
    roots, found, inside = library_roots(), None, False
    for frame in traceback.extract_tb(exc.__traceback__):
        name = frame.filename
        inside = inside or name.endswith(MODULE_CALL)
        if inside and not name.startswith("<") and not str(Path(name).resolve()).startswith(roots):
            found = frame  # <frozen ...>, <string>, <eval_with_key>: never a file of the user
    return found


def user_code_error(exc: BaseException, what: str = "your model") -> UserCodeError | None:
    """``your model raised RuntimeError: boom (in net.py:forward)`` when ``exc`` came from the user's code."""
    frame = user_frame(exc)
    if frame is None:
        return None
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    message = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
    return UserCodeError(f"{what} raised {message} (in {Path(frame.filename).name}:{frame.name})")
