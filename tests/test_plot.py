"""``wrobust plot``: each kind written as a PNG, opened and checked; the figure objects; the error paths."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from conftest import result_rows

from robustbench_w.report.columns import Metric
from robustbench_w.report.figures import OKABE_ITO
from robustbench_w.report.plots import figure, pareto_front
from robustbench_w.report.results import load_all

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib (the [plot] extra) is not installed")


def check_png(path, colours: int) -> np.ndarray:
    """The image is large, not blank, and shows the first ``colours`` series colours."""
    from matplotlib.image import imread

    image = imread(path)[..., :3]
    height, width, _ = image.shape
    assert width >= 600 and height >= 300
    drawn = (image < 0.95).any(axis=-1).mean()
    assert 0.02 < drawn < 0.9  # neither blank nor a solid block
    for hex_colour in OKABE_ITO[:colours]:
        rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        assert (np.abs(image - rgb).max(axis=-1) < 0.02).sum() > 50, f"series colour {hex_colour} not drawn"
    return image


def curve_lines(fig, gid: str = "curve") -> list[list[str]]:
    """Per visible panel: the labels of its data lines."""
    return [[line.get_label() for line in ax.get_lines() if line.get_gid() == gid]
            for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


@needs_matplotlib
def test_curves_png_has_one_line_per_result_file(run_cli, sweep_results, tmp_path):
    files = [sweep_results["a.json"], sweep_results["b.csv"]]
    code, out, err = run_cli("plot", *files, "-o", tmp_path / "curves.png")
    assert (code, err) == (0, "") and "wrote" in out
    check_png(tmp_path / "curves.png", colours=2)
    fig = figure(load_all(files), "curves")
    labels = ["builtin:digits-mlp (a)", "builtin:digits-mlp (b)"]
    assert curve_lines(fig)[0] == labels  # the addnorm panel
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["addnorm", "without a strength"]
    assert fig.axes[0].get_xlabel().startswith("sigma: w + N(0, a*sigma)") and fig.axes[0].get_ylabel() == "error (%)"
    flat = fig.axes[1]
    assert [t.get_text() for t in flat.get_xticklabels()] == ["clean", "sign", "round"]
    assert len(flat.containers) == 2  # one set of interval points per file
    assert [t.get_text() for t in fig.legends[0].get_texts()] == labels


@needs_matplotlib
def test_frontier_png_has_one_frontier_per_result_file(run_cli, sweep_results, tmp_path):
    files = [sweep_results["a.json"], sweep_results["b.csv"]]
    code, _, err = run_cli("plot", *files, "--kind", "frontier", "-o", tmp_path / "frontier.png")
    assert (code, err) == (0, "")
    check_png(tmp_path / "frontier.png", colours=2)
    fig = figure(load_all(files), "frontier")
    assert curve_lines(fig) == [["builtin:digits-mlp (a)", "builtin:digits-mlp (b)"]]
    assert len(curve_lines(fig, "clean")[0]) == 2
    assert fig.axes[0].get_xlabel().startswith("effective bits per weight")


@needs_matplotlib
def test_layers_png_has_one_heatmap_per_result_file(run_cli, sweep_results, tmp_path):
    layers = sweep_results["layers.csv"]
    code, _, err = run_cli("plot", layers, "--kind", "layers", "-o", tmp_path / "layers.png")
    assert (code, err) == (0, "")
    image = check_png(tmp_path / "layers.png", colours=0)
    assert ((image[..., 0] > 0.5) & (image[..., 2] < 0.3)).sum() > 100  # the worse direction is red
    fig = figure(load_all([layers, layers]), "layers")
    heatmaps = [ax for ax in fig.axes if ax.get_images()]
    assert len(heatmaps) == 2
    ax = heatmaps[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1.weight", "3.weight", "5.weight"]
    data = ax.get_images()[0].get_array()
    assert data.shape == (3, 8)  # 7 noise strengths and sign
    assert np.allclose(data[:, 0], 0)  # sigma = 0 changes nothing
    assert data[:, 6].min() > 5  # sigma = 1 on any one layer costs more than 5 points of error


@needs_matplotlib
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_svg_and_pdf_are_written_and_reproducible(run_cli, sweep_results, tmp_path, suffix, magic):
    for name in ("one", "two"):
        assert run_cli("plot", sweep_results["a.json"], "-o", tmp_path / f"{name}{suffix}")[0] == 0
    one, two = ((tmp_path / f"{n}{suffix}").read_bytes() for n in ("one", "two"))
    assert one.startswith(magic) and one == two


def test_the_frontier_keeps_only_points_that_fewer_bits_do_not_beat():
    import pandas as pd

    points = pd.DataFrame({"eff_bits": [0.5, 1.0, 1.5, 2.0, 3.0], "error_mean": [0.8, 0.1, 0.2, 0.05, 0.06]})
    assert pareto_front(points, Metric("error"))["eff_bits"].tolist() == [0.5, 1.0, 2.0]
    agreement = points.rename(columns={"error_mean": "agreement_mean"})
    assert pareto_front(agreement, Metric("agreement"))["eff_bits"].tolist() == [0.5]


@needs_matplotlib
def test_plot_errors_are_one_line_and_keep_the_old_figure(run_cli, tmp_path):
    result_rows("m.pt", [("addnorm", 0.1, [0.1, 0.2])]).to_csv(tmp_path / "noise.csv", index=False)
    old = tmp_path / "old.png"
    old.write_bytes(b"an earlier figure")
    cases = [
        (["--kind", "frontier"], "no effective bits for m.pt: a frontier needs a sweep of a discrete distortion"),
        (["--kind", "layers"], "no per-layer results"),
        (["--metric", "perplexity"], "no metric 'perplexity'"),
    ]
    for extra, words in cases:
        code, out, err = run_cli("plot", tmp_path / "noise.csv", "-o", old, *extra)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert old.read_bytes() == b"an earlier figure"
    code, _, err = run_cli("plot", tmp_path / "noise.csv", "-o", tmp_path / "fig.gif")
    assert code == 2 and "unknown output format '.gif' (use .png, .svg, .pdf)" in err
    code, _, err = run_cli("plot", tmp_path / "noise.csv")
    assert code == 2 and "Missing option '-o'" in err
    code, _, err = run_cli("plot", "-o", tmp_path / "x.png")
    assert code == 2 and "Missing argument 'RESULTS...'" in err


def test_without_matplotlib_plot_is_one_line_and_exit_2(run_cli, tmp_path, monkeypatch):
    result_rows("m.pt", [("addnorm", 0.1, [0.1, 0.2])]).to_csv(tmp_path / "noise.csv", index=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    code, out, err = run_cli("plot", tmp_path / "noise.csv", "-o", tmp_path / "fig.png")
    assert code == 2 and out == ""
    assert err == "wrobust: error: wrobust plot needs matplotlib, which is not installed: pip install 'robustbench_w[plot]'\n"
    assert not (tmp_path / "fig.png").exists()


def test_many_series_stay_distinguishable():
    from robustbench_w.report.figures import style

    styles = {(s["color"], s["marker"], s["linestyle"]) for s in map(style, range(20))}
    assert len(styles) == 20
