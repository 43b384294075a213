"""Start-up (issue 14): help and the distortion list come up without importing torch or pandas, which only the
command that runs imports. Timings are measured in benchmarks/RESULTS.md, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "numpy", "scipy", "rich.console", "matplotlib", "transformers")

PROBE = """
import json, sys
from robustbench_w.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("\\n@@" + json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in %r)}))
"""


def run(*args: str) -> tuple[int, list[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE % (tuple(h.split(".")[0] for h in HEAVY),), *args], env=env,
                          capture_output=True, text=True, timeout=120)
    out, _, tail = done.stdout.rpartition("\n@@")
    report = json.loads(tail)
    return report["code"], report["loaded"], out


@pytest.mark.parametrize("args", [["--help"], ["sweep", "--help"], ["demo", "--help"], ["gate", "--help"],
                                  ["list", "distortions"], ["list"], ["--version"]])
def test_help_and_the_distortion_list_import_neither_torch_nor_pandas(args):
    code, loaded, out = run(*args)
    assert code == 0 and out.strip()
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "pandas", "numpy", "scipy", "matplotlib",
                                                        "transformers")], loaded


def test_every_command_s_help_is_light():
    code, _, out = run("--help")
    commands = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert {"sweep", "demo", "gate", "list", "bits"} <= set(commands)
    for command in commands:
        code, loaded, text = run(command, "--help")
        assert code == 0 and "Usage:" in text
        assert not [m for m in loaded if m.split(".")[0] in ("torch", "pandas")], (command, loaded)


def test_the_distortion_list_is_the_registry_s():
    code, _, out = run("list", "distortions")
    for name in ("addnorm", "multunif", "power", "sign", "round", "stoch", "quantize", "bitflip"):
        assert f" {name} " in out
    import robustbench_w as rw

    assert len(rw.list_distortions()) >= 15


def test_the_light_constants_are_the_ones_the_library_uses():
    """The command line takes its choices from light modules; the library uses the very same values."""
    from robustbench_w.report import formats, plots

    assert tuple(plots.KINDS) == formats.PLOT_KINDS
