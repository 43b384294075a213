"""The built-in checkpoint is what its script makes."""

import runpy
from pathlib import Path

import torch

from robustbench_w import load_model

ROOT = Path(__file__).resolve().parent.parent


def test_make_builtin_regenerates_the_shipped_digits_mlp(tmp_path):
    script = runpy.run_path(str(ROOT / "scripts" / "make_builtin.py"))
    script["main"](tmp_path / "digits-mlp.pt")
    fresh, shipped = load_model(tmp_path / "digits-mlp.pt"), load_model("builtin:digits-mlp")
    a, b = fresh.module.state_dict(), shipped.module.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert fresh.extra["train"]["test_error"] == shipped.extra["train"]["test_error"]
