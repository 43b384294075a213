"""Exit codes (issue 26): the machine's problems are one line naming the file or the resource, exit 2 (a full disk
for every kind of output, no C++ compiler for --compile, not enough memory for an --image-size); a damaged file read
back is exit 2 naming it (text in a numeric column, a policy that is not UTF-8, an idx pair of different sizes);
SIGTERM exits 130 from every command, at start-up and while it writes. Never 3 ("internal error"), never 143.

Each case checks the exit code, one stderr line without a traceback, the key words of the message, and that the
files the test folder held before are byte for byte as they were (or, for a run log, still the start of the file).
"""

from __future__ import annotations

import json
import logging
import shlex
import struct
from pathlib import Path

import pandas as pd
import pytest
from broken_inputs import BUILTIN
import file_guard as fg
from file_guard import made, work  # noqa: F401  (fixtures)

from robustbench_w.engine.runs.runlog import read_log

SWEEP = f"sweep {BUILTIN} --device cpu -q -d sign"
GATE = f"gate {BUILTIN} --device cpu -q --policy policy.toml"


@pytest.fixture
def disk(work, monkeypatch):
    small = fg.SmallDisk(work / "disk", monkeypatch)
    yield small
    small.close()


# ------------------------------------------------------------------ a full disk, for every kind of output

FULL = [  # (command line writing to disk/NAME, NAME)
    (SWEEP, "r.csv"), (SWEEP, "r.json"), (SWEEP, "r.jsonl"), (SWEEP, "r.md"),
    (f"bits {BUILTIN}", "b.json"), (f"bits {BUILTIN}", "b.csv"),
    (GATE, "g.json"), ("train --epochs 1 --device cpu -q", "m.pt"),
    ("merge a.csv b.csv", "m.csv"), ("compare a.csv b.csv", "c.md"), ("plot a.csv", "f.png"),
    ("report a.csv", "r.html"), ("report a.csv", "r.md"),
]


@pytest.mark.parametrize(("argv", "name"), FULL, ids=[f"{a.split()[0]}-{n}" for a, n in FULL])
def test_a_full_disk_is_exit_2_naming_the_file_and_the_earlier_file_stays(argv, name, work, disk, run_cli):
    target = disk.folder / name
    target.write_bytes(fg.EARLIER)
    disk.fill()
    before = fg.snapshot(work)
    code, _, err = run_cli(*shlex.split(argv), "-o", target)
    first = target.with_name("r-curves.png") if argv.startswith("report") and name == "r.md" else target  # a report.md writes its figures first
    fg.one_error(code, err, 2, str(first), "no space left on device")
    assert fg.changed(before, work) == [] and not list(disk.folder.glob(".*.tmp"))


@pytest.mark.parametrize("option", ["--junit", "--summary"])
def test_a_full_disk_under_a_gate_file_is_exit_2_naming_it(option, work, disk, run_cli):
    target = disk.folder / ("j.xml" if option == "--junit" else "s.md")
    target.write_bytes(fg.EARLIER)
    disk.fill()
    before = fg.snapshot(work)
    code, _, err = run_cli(*shlex.split(GATE), option, target)
    fg.one_error(code, err, 2, str(target), "no space left on device")
    assert fg.changed(before, work) == []


def test_a_full_disk_under_a_new_run_log_is_exit_2_naming_it(work, disk, run_cli):
    disk.fill()
    (work / "out.csv").write_bytes(fg.EARLIER)
    before = fg.snapshot(work)
    code, _, err = run_cli(*shlex.split(SWEEP), "--log", disk.folder / "new.jsonl", "-o", "out.csv")
    fg.one_error(code, err, 2, "new.jsonl", "cannot write the run log", "no space left on device")
    assert fg.changed(before, work) == []


def test_a_full_disk_while_a_resumed_run_log_grows_keeps_every_earlier_line(work, disk, run_cli):
    log = disk.folder / "run.jsonl"
    earlier = (work / "run.jsonl").read_bytes()
    log.write_bytes(earlier)
    disk.fill()
    argv = f"sweep {BUILTIN} --device cpu -q -d sign -d noise -s 0.05,0.1,0.2,0.3,0.4 --trials 2 --resume"
    code, _, err = run_cli(*shlex.split(argv), "--log", log)
    fg.one_error(code, err, 2, str(log), "no space left on device", "the points before are kept")
    assert log.read_bytes().startswith(earlier)
    assert len(read_log(log).rows) >= len(read_log(work / "run.jsonl").rows)  # a torn last line is dropped


def test_a_full_disk_under_reproduce_is_exit_2(work, disk, run_cli):
    disk.fill()
    argv = "reproduce -q --rules none --seeds 1 --trials 1 --epochs 1 --distortions sign --at sign --device cpu"
    code, _, err = run_cli(*shlex.split(argv), "-o", disk.folder / "grid")
    fg.one_error(code, err, 2, "grid", "no space left on device")


# ------------------------------------------------------------------ SIGTERM: 130 from every command

EVERY = [
    SWEEP + " -o out.csv", "demo --trials 1 -q -o out.csv", f"bits {BUILTIN} -o out.json", GATE + " -o out.json",
    "train --epochs 1 --device cpu -q -o out.pt", "reproduce -q --rules none --seeds 1 --epochs 1 -o grid",
    "merge a.csv -o out.csv", "plot a.csv -o out.png", "compare a.csv b.csv -o out.md", "report a.csv -o out.html",
    "list distortions",
]


@pytest.mark.parametrize("argv", EVERY, ids=[a.split()[0] for a in EVERY])
def test_sigterm_at_start_up_exits_130_from_every_command(argv, work, run_cli, monkeypatch):
    from robustbench_w.load import writing

    (work / "out.csv").write_bytes(fg.EARLIER)
    before = fg.snapshot(work)
    monkeypatch.setattr(writing, "check_distinct", fg.kill_on_call(1, writing.check_distinct))
    with fg.guarded_sigterm():
        code, _, err = run_cli(*shlex.split(argv))
    fg.one_error(code, err, 130, "wrobust: interrupted: SIGTERM")
    assert fg.changed(before, work) == [] and not (work / "grid").exists()


WRITERS = [a for a in EVERY if " -o out." in a and not a.startswith(("demo", "reproduce"))]


@pytest.mark.parametrize("argv", WRITERS, ids=[a.split()[0] for a in WRITERS])
def test_sigterm_while_writing_exits_130_and_leaves_the_earlier_file_whole(argv, work, run_cli, monkeypatch):
    from robustbench_w.load import writing

    out = work / argv.rsplit(" ", 1)[-1]
    out.write_bytes(fg.EARLIER)
    before = fg.snapshot(work)
    monkeypatch.setattr(writing, "_fsync", fg.kill_on_call(1, writing._fsync))
    with fg.guarded_sigterm():
        code, _, err = run_cli(*shlex.split(argv))
    fg.one_error(code, err, 130, "wrobust: interrupted: SIGTERM")
    assert fg.changed(before, work) == [] and not list(work.glob(".*.tmp"))


# ------------------------------------------------------------------ damaged files read back

def with_text(work: Path, name: str, column: str, value: str) -> str:
    frame = pd.read_csv(work / "a.csv")
    frame[column] = frame[column].astype(object)
    frame.loc[2, column] = value
    frame.to_csv(work / name, index=False)
    return name


TEXT = [("plot {} -o f.png", "error", "abc"), ("plot {} -o f.png --kind frontier", "strength", "high"),
        ("compare a.csv {}", "error", "bad"), ("compare {} b.csv", "accuracy", "ok"),
        ("report {} -o r.html", "error", "--"), ("report a.csv {} -o r.md", "loss", "big")]


@pytest.mark.parametrize(("argv", "column", "value"), TEXT, ids=[f"{a.split()[0]}-{c}" for a, c, _ in TEXT])
def test_text_in_a_numeric_column_is_exit_2_naming_file_column_and_value(argv, column, value, work, run_cli):
    name = with_text(work, "t.csv", column, value)
    before = fg.snapshot(work)
    code, _, err = run_cli(*shlex.split(argv.format(name)))
    fg.one_error(code, err, 2, "t.csv", f"column {column!r} holds text", repr(value), "row 3")
    assert fg.changed(before, work) == []


def test_text_in_a_summary_column_of_a_json_file_is_exit_2(work, run_cli):
    doc = json.loads((work / "a.json").read_text())
    doc["summary"][1]["error_mean"] = "n/a"
    (work / "t.json").write_text(json.dumps(doc))
    fg.one_error(*run_cli("compare", "t.json", "a.json")[::2], 2, "t.json", "column 'error_mean' holds text", "'n/a'")


@pytest.mark.parametrize("where", ["--policy", "pyproject.toml"])
def test_a_policy_that_is_not_utf8_is_exit_2(where, work, run_cli):
    text = (work / "policy.toml").read_bytes().replace(b'"digits"', b'"digits\xff\xfe"')
    name = "latin.toml" if where == "--policy" else "pyproject.toml"
    (work / name).write_bytes(text)
    argv = [f"gate", BUILTIN, "--device", "cpu"] + (["--policy", name] if where == "--policy" else [])
    fg.one_error(*run_cli(*argv)[::2], 2, name, "not UTF-8")


def write_idx(root: Path, images: int, labels: int) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, images, 28, 28) + bytes(784 * images))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, labels) + bytes(labels))
    return root


@pytest.mark.parametrize(("images", "labels"), [(5, 3), (3, 5)])
def test_an_idx_pair_of_different_sizes_is_exit_2_naming_the_files(images, labels, work, run_cli):
    root = write_idx(work / "data", images, labels)
    argv = f"sweep {BUILTIN} -d sign --dataset mnist --data-root {root}"
    fg.one_error(*run_cli(*shlex.split(argv))[::2], 2, f"{images:,} images but {labels:,} labels",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ------------------------------------------------------------------ resources of the machine

@pytest.mark.parametrize("size", [1000000, 100000, 60000])
def test_an_image_size_beyond_the_machines_memory_is_exit_2_before_any_allocation(size, work, run_cli):
    pics = fg.flat_folder(work / "pics", per_class=1, mode="RGB")
    argv = f"sweep {BUILTIN} -d sign --dataset imagefolder:{pics} --image-size {size} -o out.csv"
    fg.one_error(*run_cli(*shlex.split(argv))[::2], 2, f"--image-size {size}", "smaller --image-size")
    assert not (work / "out.csv").exists()


@pytest.mark.parametrize("argv", [f"{SWEEP} --compile", f"{GATE} --compile"])
def test_compile_without_a_cxx_compiler_is_one_line_exit_2(argv, work, run_cli, monkeypatch):
    (work / "bin").mkdir()
    monkeypatch.setenv("PATH", str(work / "bin"))
    monkeypatch.delenv("CXX", raising=False)
    fg.one_error(*run_cli(*shlex.split(argv))[::2], 2, "--compile", "needs a C++ compiler", "drop --compile")


def test_torch_cpp_extension_warnings_reach_stderr_only_with_debug(run_cli, capsys):
    run_cli("list", "metrics")
    logging.getLogger("torch.utils.cpp_extension").warning("No CUDA runtime is found, using CUDA_HOME=/usr/local")
    assert capsys.readouterr().err == ""
    run_cli("list", "metrics", "--debug")
    assert logging.getLogger("torch.utils.cpp_extension").getEffectiveLevel() < logging.ERROR
