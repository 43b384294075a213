"""Ctrl-C and SIGTERM during a run: stop promptly and keep what is finished.

While :func:`interruptible` is active (in the main thread), SIGINT and SIGTERM raise :class:`Interrupted`, a
``KeyboardInterrupt``: the point being evaluated is dropped (its weights are restored on the way out, by
``WeightPatch.applied``) and the caller writes the points that finished, saying they are partial. A point
can take minutes on a large model, so it is dropped rather than finished: a batch scheduler's grace period
after SIGTERM is often shorter, and a resumed run evaluates it again. Inside :func:`deferred` (recording a
finished point: its row and its log line) a signal waits until the block ends, so a point is recorded
everywhere or nowhere. Outside :func:`interruptible` the handlers are whatever they were before.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal. ``partial``: what the interrupted function had finished (set by it), or None;
    ``message``: what the command line says after "interrupted" (set by the command); ``silent``: say nothing
    (the processes of a torchrun job other than rank 0)."""

    def __init__(self, signal_name: str = "SIGINT", partial: object = None, message: str = ""):
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.partial = partial
        self.message = message
        self.silent = False


class _Guard:
    depth = 0  # open deferred() blocks
    pending: str | None = None  # a signal that arrived inside one


_guard = _Guard()


def _handler(signum: int, frame: object) -> None:
    name = signal.Signals(signum).name
    if _guard.depth:
        _guard.pending = _guard.pending or name
        return
    raise Interrupted(name)


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` inside the block (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _guard.pending = None


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends; then raise :class:`Interrupted` if one arrived."""
    _guard.depth += 1
    try:
        yield
    finally:
        _guard.depth -= 1
    if not _guard.depth and _guard.pending:
        name, _guard.pending = _guard.pending, None
        raise Interrupted(name)
