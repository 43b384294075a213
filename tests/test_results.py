"""Reading result files back (report/results.py) and choosing the metric to show (report/columns.py)."""

from __future__ import annotations

import importlib.util
import json
import math

import pandas as pd
import pytest
from conftest import result_rows

from robustbench_w.engine.runs.stats import summarize
from robustbench_w.errors import InputFileError, InvalidValueError
from robustbench_w.report.columns import (
    Metric,
    choose_metric,
    metrics_in,
    strength_label,
)
from robustbench_w.report.files import write_results
from robustbench_w.report.results import load_results, point_key, point_text, series_of

POINTS = [("addnorm", 0.1, [0.10, 0.12, 0.14]), ("addnorm", 0.3, [0.30, 0.34, 0.32]), ("sign", math.nan, [0.2])]


@pytest.mark.parametrize("suffix", [".json", ".csv", ".jsonl", ".parquet"])
def test_every_result_format_reads_back_to_the_same_summary(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    rows = result_rows("m.pt", POINTS)
    summary = summarize(rows)
    path = write_results(tmp_path / f"r{suffix}", rows, summary, {"model": "m.pt", "seed": 3})
    loaded = load_results(path)
    assert list(loaded.summary["spec"]) == ["none", "addnorm", "addnorm", "sign"]
    for col in ("strength", "error_mean", "error_ci_low", "error_ci_high", "agreement_mean"):
        pd.testing.assert_series_equal(loaded.summary[col].astype(float), summary[col].astype(float), check_names=False)
    assert loaded.summary["strength_name"].tolist() == ["", "sigma", "sigma", ""]  # never NaN
    assert loaded.meta["model"] == "m.pt" and loaded.meta["n"] == 1000
    assert (loaded.meta.get("seed") == 3) == (suffix == ".json")  # only .json carries the meta


HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


def test_rows_with_a_layer_column_are_summarised_per_layer(tmp_path):
    a = result_rows("m.pt", POINTS).assign(layer="fc1")
    b = result_rows("m.pt", POINTS).assign(layer="fc2", error=lambda f: f["error"] / 2)
    rows = pd.concat([a, b[b["spec"] != "none"]], ignore_index=True)
    rows.loc[rows["spec"] == "none", "layer"] = None
    rows.to_csv(tmp_path / "layers.csv", index=False)
    loaded = load_results(tmp_path / "layers.csv")
    assert loaded.per_layer
    s = loaded.summary.set_index(["layer", "spec", "strength"])
    assert s.loc[("fc1", "addnorm", 0.3), "error_mean"] == pytest.approx(0.32)
    assert s.loc[("fc2", "addnorm", 0.3), "error_mean"] == pytest.approx(0.16)
    assert list(loaded.summary["layer"]).count("") == 1  # the clean model, once


def test_series_are_labelled_by_model_and_by_file_where_models_repeat(tmp_path):
    paths = []
    for name, model in (("x.csv", "m.pt"), ("y.csv", "m.pt"), ("z.csv", "other.pt")):
        result_rows(model, POINTS).to_csv(tmp_path / name, index=False)
        paths.append(load_results(tmp_path / name))
    assert [s.label for s in series_of(paths)] == ["m.pt (x)", "m.pt (y)", "other.pt"]
    twice = series_of([paths[2], paths[2]])
    assert [s.label for s in twice] == [f"other.pt ({paths[2].path}) #1", f"other.pt ({paths[2].path}) #2"]
    (tmp_path / "run2").mkdir()
    result_rows("m.pt", POINTS).to_csv(tmp_path / "run2" / "x.csv", index=False)
    same_stem = series_of([paths[0], load_results(tmp_path / "run2" / "x.csv")])
    assert [s.label for s in same_stem] == [f"m.pt ({tmp_path / 'x.csv'})", f"m.pt ({tmp_path / 'run2' / 'x.csv'})"]
    two_models = pd.concat([result_rows("none", POINTS), result_rows("sign", POINTS)])  # like reproduce's results
    two_models.to_csv(tmp_path / "grid.csv", index=False)
    series = series_of([load_results(tmp_path / "grid.csv")])
    assert [s.label for s in series] == ["none", "sign"] and all(s.n == 1000 for s in series)


@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    ("", "not valid JSON"),
    ("{not json", r"not valid JSON \(Expecting property name"),
    ('{"meta": {}, "layers": [], "total": {}}', "is a 'wrobust bits' file"),
    ('{"hello": 1}', "not a wrobust result file"),
    ('[1, 2]', "not a wrobust result file"),
    ('{"rows": "nope"}', "is not a list of objects"),
    ('{"rows": []}', "holds no results"),
    ('{"rows": [{"a": 1}]}', "no column model, distortion, spec, strength"),
])
def test_bad_json_files_are_one_clear_error(tmp_path, content, words):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputFileError, match=words) as info:
        load_results(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_csv_parquet_jsonl_and_suffixes_are_one_clear_error(tmp_path):
    cases = {
        "empty.csv": ("", "the file is empty"),
        "foreign.csv": ("a,b\n1,2\n", "no column model"),
        "binary.csv": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a readable CSV file"),
        "bad.parquet": ("not parquet", "not a readable parquet file" if HAS_PYARROW else "needs pyarrow"),
        "bad.jsonl": ('{"model": "m"}\n[1]\n', "line 2 is not a JSON object"),
        "bad2.jsonl": ('{"model": "m"}\n{oops\n', "not valid JSON .* at line 2"),
        "summary.md": ("# wrobust sweep\n", "cannot read '.md' results"),
        "noext": ("x", "without suffix"),
    }
    for name, (content, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        with pytest.raises(InputFileError, match=words):
            load_results(path)
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(InputFileError, match="is a directory"):
        load_results(tmp_path / "folder.json")


def test_the_metric_is_error_by_default_else_the_first_with_values(tmp_path):
    summary = summarize(result_rows("m.pt", POINTS))
    assert metrics_in(summary)[:2] == ["error", "agreement"]
    assert choose_metric({"a": summary}).name == "error"
    unlabelled = summary.assign(error_mean=math.nan, accuracy_mean=math.nan)
    assert choose_metric({"a": unlabelled}).name == "agreement"
    assert choose_metric({"a": summary}, "Loss").name == "loss"
    with_ppl = summary.assign(perplexity_mean=3.0, perplexity_ci_low=2.0, perplexity_ci_high=4.0)
    assert choose_metric({"a": with_ppl}, "perplexity").name == "perplexity"
    with pytest.raises(InvalidValueError, match="b: no metric 'perplexity' .*it has: error, agreement"):
        choose_metric({"a": with_ppl, "b": summary}, "perplexity")


def test_metric_units_and_directions():
    assert Metric("error").label == "error (%)" and Metric("error").shown(0.25) == 25
    assert not Metric("error").higher_is_better and Metric("agreement").higher_is_better
    assert Metric("loss").label == "loss (nats per input)" and Metric("loss").shown(0.25) == 0.25
    assert Metric("snr_db").higher_is_better and "dB" in Metric("snr_db").label
    assert strength_label("addnorm", "sigma") == "sigma: w + N(0, a*sigma), a = max |w| per tensor"
    assert strength_label("multunif", "gamma") == "gamma: w * U(g, 1/g)"
    assert strength_label("not-installed-plugin", "p") == "p"


def test_points_are_keyed_by_layer_spec_and_strength():
    assert point_key("addnorm", 0.1) == point_key("addnorm", 0.1000000000000001)
    assert point_key("sign", math.nan) != point_key("sign", math.nan, "fc1")
    assert point_text("none", "", math.nan) == "clean"
    assert point_text("addnorm", "sigma", 0.25, "fc1") == "fc1: addnorm sigma=0.25"


def test_a_json_without_summary_is_summarised_from_its_rows(tmp_path):
    rows = result_rows("m.pt", POINTS)
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"rows": rows.astype(object).where(rows.notna(), None).to_dict(orient="records")}))
    loaded = load_results(path)
    assert loaded.summary.loc[2, "error_mean"] == pytest.approx(0.32) and loaded.meta == {
        "model": "m.pt", "dataset": "digits", "n": 1000}


def test_a_summary_table_is_read_as_a_summary(tmp_path):
    summary = summarize(result_rows("m.pt", POINTS))
    summary.to_csv(tmp_path / "summary.csv", index=False)
    loaded = load_results(tmp_path / "summary.csv")
    assert loaded.rows.empty and loaded.summary["error_mean"].tolist() == pytest.approx(summary["error_mean"].tolist())
