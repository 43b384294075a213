"""Helpers of the "nothing the user has is lost" tests (issue 26): the files of a test folder before and after a
command, the one-line error it must end in, a small full disk, and signals sent to the test process itself."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from broken_inputs import BUILTIN, builtin_checkpoint, policy_text, write_tensors

EARLIER = b"an earlier, complete result of the user's\n"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Result files of one real sweep (.csv, .json, .jsonl), its run log, a policy, a tensors file."""
    import robustbench_w as rw
    from robustbench_w.engine.runs.stats import summarize
    from robustbench_w.report.files import write_results

    d = tmp_path_factory.mktemp("made")
    rows = rw.sweep(BUILTIN, distortions=["sign", "noise"], strengths=[0.05], trials=2, device="cpu",
                    log=d / "run.jsonl")
    for name in ("a.csv", "b.csv", "a.json", "b.json", "a.jsonl"):
        write_results(d / name, rows, summarize(rows), rows.attrs["meta"])
    (d / "policy.toml").write_text(policy_text(strength=0.05, max_error=1.0))
    write_tensors(d / "data.pt", n=40)
    return d


@pytest.fixture
def work(made, tmp_path, monkeypatch) -> Path:
    """A fresh folder with copies of the made files, as the current folder."""
    for p in made.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def flat_folder(folder: Path, per_class: int = 5, mode: str = "L") -> Path:
    """Two classes of ``per_class`` tiny PNG images each, with no train/ or val/ folders."""
    from PIL import Image

    for c in range(2):
        (folder / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.new(mode, (8, 8), color=(40 * c + 10 * i,) * len(mode)).save(folder / f"c{c}" / f"{i}.png")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (names relative to it) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def changed(before: dict[str, bytes], folder: Path) -> list[str]:
    """The files of ``before`` that are gone or differ now (files added since are not counted)."""
    after = snapshot(folder)
    return [name for name, data in before.items() if after.get(name) != data]


def one_error(code: int, err: str, expected: int, *words: str) -> str:
    """The command ended with ``expected``, one line on stderr (no traceback) holding every one of ``words``."""
    lines = err.strip().splitlines()
    assert code == expected, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def constant_checkpoint(path: Path, label: int = 3) -> Path:
    """The built-in digits MLP with its last layer silenced: every input gets class ``label`` (chance level)."""
    ckpt = builtin_checkpoint()
    state = ckpt["state_dict"]
    state["5.weight"].zero_()
    state["5.bias"].zero_()
    state["5.bias"][label] = 5.0
    torch.save(ckpt, path)
    return path


# ------------------------------------------------------------------ a small disk that fills up

class SmallDisk:
    """A folder whose writes fail with ENOSPC once :meth:`fill` was called: a tmpfs of a few hundred KiB where this
    process may mount one (root on Linux), else the same folder with the writers patched to raise ENOSPC."""

    def __init__(self, folder: Path, monkeypatch):
        self.folder, self.monkeypatch = folder, monkeypatch
        folder.mkdir()
        self.mounted = _mount(folder)

    def fill(self) -> None:
        """Leave no free space (tmpfs: one filler file takes it all), or make every write raise ENOSPC."""
        if self.mounted:
            with open(self.folder / "filler", "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                        f.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
            return
        from robustbench_w.engine.runs import runlog
        from robustbench_w.load import writing

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self.monkeypatch.setattr(writing, "_fsync", full)
        self.monkeypatch.setattr(runlog, "_write_line", full)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.folder)], check=False, capture_output=True)


def _mount(folder: Path) -> bool:
    if os.environ.get("WROBUST_TEST_NO_TMPFS") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(folder)], capture_output=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


# ------------------------------------------------------------------ signals to this process

class SignalEscaped(Exception):
    """SIGTERM reached the test's own handler: the command under test did not handle it."""


@contextmanager
def guarded_sigterm():
    """While a test sends SIGTERM to its own process, a signal that the command does not catch fails the test
    (instead of killing pytest)."""
    def escaped(signum, frame):
        raise SignalEscaped(signal.Signals(signum).name)

    old = signal.signal(signal.SIGTERM, escaped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def kill_on_call(number: int, real):
    """``real`` wrapped to send SIGTERM to this process at its ``number``-th call (then call ``real``)."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    return wrapper
