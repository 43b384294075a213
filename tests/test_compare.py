"""``wrobust compare``: common points, differences judged against the intervals, points in one file only."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from conftest import result_rows

from robustbench_w.errors import InputFileError
from robustbench_w.report.columns import Metric
from robustbench_w.report.compare import (
    NO_CLEAR,
    NOT_DISTORTED,
    NO_INTERVAL,
    compare,
    margin,
    verdict_col,
    where_better,
)
from robustbench_w.report.results import load_all

A = [("addnorm", 0.1, [0.10, 0.12, 0.14]), ("addnorm", 0.3, [0.30, 0.34, 0.32]), ("sign", math.nan, [0.2]),
     ("addnorm", 0.5, [0.5], True)]
B = [("addnorm", 0.1, [0.11, 0.12, 0.13]), ("addnorm", 0.3, [0.10, 0.11, 0.12]), ("sign", math.nan, [0.4]),
     ("addnorm", 0.5, [0.2], True), ("quantize", 4, [0.06])]


@pytest.fixture
def two_files(tmp_path):
    result_rows("base.pt", A).to_csv(tmp_path / "base.csv", index=False)
    result_rows("robust.pt", B).to_csv(tmp_path / "robust.csv", index=False)
    return [tmp_path / "base.csv", tmp_path / "robust.csv"]


def test_each_difference_is_judged_against_the_intervals_and_the_sampling_error(two_files):
    c = compare(load_all(two_files))
    assert c.labels == ["base.pt", "robust.pt"] and c.reference == "base.pt"
    verdicts = dict(zip(c.points["point"], c.points[verdict_col("robust.pt", "base.pt")]))
    assert verdicts == {"clean": NOT_DISTORTED, "addnorm sigma=0.1": NO_CLEAR, "addnorm sigma=0.3": "robust.pt",
                        "sign": "base.pt", "addnorm sigma=0.5": NO_INTERVAL}
    row = c.points.set_index("point").loc["addnorm sigma=0.3"]
    assert row["robust.pt - base.pt"] == pytest.approx(-0.21)
    h_a, h_b = 4.302653 * 0.02 / math.sqrt(3), 4.302653 * 0.01 / math.sqrt(3)  # t(0.975, 2) * std / sqrt(n)
    binomial = 1.96 ** 2 * (0.32 * 0.68 + 0.11 * 0.89) / 1000
    assert row["robust.pt - base.pt margin"] == pytest.approx(math.sqrt(h_a ** 2 + h_b ** 2 + binomial), rel=1e-5)
    assert list(c.only["point"]) == ["quantize bits=4"] and list(c.only["in"]) == ["robust.pt"]
    assert where_better(c) == [
        "robust.pt vs base.pt on error: robust.pt better at 1 point(s): addnorm sigma=0.3; base.pt better at 1 "
        "point(s): sign; no clear difference at 1 point(s); not judged (no interval) at 1 point(s)"]


def test_higher_is_better_metrics_turn_the_verdict_around(two_files):
    c = compare(load_all(two_files), "agreement")  # agreement = 1.05 - error in these rows
    verdicts = dict(zip(c.points["point"], c.points[verdict_col("robust.pt", "base.pt")]))
    assert verdicts["addnorm sigma=0.3"] == "robust.pt" and verdicts["sign"] == "base.pt"


def test_the_margin_without_interval_or_sample_size():
    error, loss = Metric("error"), Metric("loss")
    assert margin((0.2, 0.2, 0.2), (0.4, 0.4, 0.4), error, None, None) == 0  # exact points, n unknown
    assert margin((0.2, 0.1, 0.3), (0.4, 0.4, 0.4), loss, 100, 100) == pytest.approx(0.1)  # no binomial for a loss
    assert math.isnan(margin((0.2, math.nan, math.nan), (0.4, 0.4, 0.4), error, 100, 100))


def test_compare_prints_the_table_and_exits_0(run_cli, sweep_results):
    code, out, err = run_cli("compare", sweep_results["a.json"], sweep_results["b.csv"])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("A = builtin:digits-mlp (a) (") and lines[0].endswith("a.json), the reference")
    assert lines[1].startswith("B = builtin:digits-mlp (b) (")
    assert "error (%) at 10 common point(s)" in out
    for point in ("clean", "addnorm sigma=0.3", "sign", "round"):
        assert any(line.startswith(point + " ") for line in lines), point
    assert "B − A (pp)" in out and "better" in out
    assert "builtin:digits-mlp (b) vs builtin:digits-mlp (a) on error:" in out


def test_compare_writes_csv_json_and_markdown(run_cli, two_files, tmp_path):
    for suffix in (".csv", ".json", ".md"):
        code, out, err = run_cli("compare", *two_files, "-o", tmp_path / f"c{suffix}")
        assert (code, err) == (0, "") and f"wrote {tmp_path / f'c{suffix}'}" in out
    table = pd.read_csv(tmp_path / "c.csv")
    assert list(table["point"]) == ["clean", "addnorm sigma=0.1", "addnorm sigma=0.3", "sign", "addnorm sigma=0.5",
                                    "quantize bits=4"]
    assert list(table["in"]) == ["all"] * 5 + ["robust.pt"]
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["metric"] == "error" and doc["reference"] == "base.pt" and len(doc["points"]) == 5
    assert [s["file"] for s in doc["series"]] == [str(p) for p in two_files] and doc["only"][0]["in"] == "robust.pt"
    md = (tmp_path / "c.md").read_text()
    assert "| point | A (%) | B (%) | B − A (pp) | better |" in md
    assert "| addnorm sigma=0.3 | 32.00 [27.03, 36.97] | 11.00 [8.52, 13.48] | -21.00 ± 6.56 | B |" in md
    assert "- only in robust.pt: 1 point(s): quantize bits=4" in md


def test_three_files_are_each_compared_with_the_first(run_cli, two_files, tmp_path):
    result_rows("third.pt", A).to_csv(tmp_path / "third.csv", index=False)
    code, out, err = run_cli("compare", *two_files, tmp_path / "third.csv")
    assert code == 0 and "C = third.pt" in out and "better (B)" in out and "better (C)" in out
    assert "third.pt vs base.pt on error: no clear difference at 3 point(s); not judged (no interval) at 1 point(s)" in out.replace("\n", " ")


def test_files_without_common_points_exit_2(run_cli, tmp_path):
    result_rows("a.pt", [("addnorm", 0.1, [0.1, 0.2])]).to_csv(tmp_path / "a.csv", index=False)
    result_rows("b.pt", [("sign", math.nan, [0.3])]).to_csv(tmp_path / "b.csv", index=False)
    out_file = tmp_path / "c.md"
    code, out, err = run_cli("compare", tmp_path / "a.csv", tmp_path / "b.csv", "-o", out_file)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "a.pt, b.pt: no point in common (the same distortion spec at the same strength): a.pt has addnorm; " \
           "b.pt has sign" in err
    assert not out_file.exists()
    with pytest.raises(InputFileError, match="no point in common"):
        compare(load_all([tmp_path / "a.csv", tmp_path / "b.csv"]))


def test_compare_usage_errors(run_cli, tmp_path, two_files):
    code, _, err = run_cli("compare", two_files[0])
    assert code == 2 and "one model only; compare needs two or more result files" in err
    code, _, err = run_cli("compare", two_files[0], tmp_path / "missing.json")
    assert code == 2 and "missing.json: no such file" in err
    code, _, err = run_cli("compare", *two_files, "-o", tmp_path / "c.xlsx")
    assert code == 2 and "unknown output format '.xlsx' (use .csv, .json, .md)" in err
    code, _, err = run_cli("compare", *two_files, "--metric", "cosine")
    assert code == 2 and "no metric 'cosine'" in err


def test_one_file_with_several_models_compares_them(run_cli, tmp_path):
    pd.concat([result_rows("none", A), result_rows("sign", B)]).to_csv(tmp_path / "grid.csv", index=False)
    code, out, _ = run_cli("compare", tmp_path / "grid.csv")
    assert code == 0 and "A = none (" in out and "B = sign (" in out
