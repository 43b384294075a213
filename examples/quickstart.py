"""Sweep the built-in digits MLP from Python and print the summary.

    python examples/quickstart.py
"""

import robustbench_w as rw

rows = rw.sweep("builtin:digits-mlp", distortions=["noise", "sign", "quantize"], strengths=None, trials=3, seed=0,
                device="cpu")
summary = rw.summarize(rows)
columns = ["spec", "strength", "trials", "error_mean", "error_ci_low", "error_ci_high", "agreement_mean"]
print(summary[columns].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
