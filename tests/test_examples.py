"""The examples run as a user would run them."""

import runpy
from pathlib import Path

import pytest

from robustbench_w.distortions import DISTORTIONS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name, word", [("quickstart.py", "error"), ("custom_distortion.py", "error"),
                                        ("any_model.py", "worst_token_change")])
def test_example_runs(name, word, capsys):
    with DISTORTIONS.isolated():
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    out = capsys.readouterr().out
    assert word in out
