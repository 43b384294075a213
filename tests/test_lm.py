"""Language models and encoders from Hugging Face folders: hf:DIR, text:FILE, jsonl:FILE, perplexity, gates."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from robustbench_w.datasets.base import load_dataset
from robustbench_w.engine.runs.sweep import SweepRunner
from robustbench_w.errors import InputFileError, InvalidValueError
from robustbench_w.load.checkpoints import load_model


def sweep_json(run_cli, tmp_path, *args) -> dict:
    out = tmp_path / "r.json"
    code, stdout, err = run_cli("sweep", *args, "-o", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    doc["stdout"] = stdout
    return doc


# ------------------------------------------------------------------ a causal language model

def test_lm_sweep_gives_perplexity_rising_with_sigma_and_equal_to_clean_at_zero(run_cli, gpt2_folder, tmp_path):
    text = gpt2_folder.parent / "eval.txt"
    doc = sweep_json(run_cli, tmp_path, f"hf:{gpt2_folder}", "--dataset", f"text:{text}", "-d", "noise",
                     "-s", "0,0.05,0.1", "--trials", "2")
    assert doc["meta"]["task"] == "language-model" and doc["meta"]["report_metrics"] == ["perplexity"]
    ppl = {}
    for r in doc["rows"]:
        ppl.setdefault("clean" if r["distortion"] == "none" else r["strength"], []).append(r["perplexity"])
    clean = ppl["clean"][0]
    assert 1.0 < clean < 20 and ppl[0.0] == [clean]  # the identity point is the clean model, exactly
    assert clean < sum(ppl[0.05]) / 2 < sum(ppl[0.1]) / 2
    assert len(ppl[0.05]) == len(ppl[0.1]) == 2
    head = next(line for line in doc["stdout"].splitlines() if line.startswith("sigma"))
    assert "clean perplexity" in doc["stdout"] and "perplexity" in head and "error" not in head
    assert all(math.isnan(r["error"]) and math.isnan(r["agreement"]) for r in doc["rows"])  # not measured: NaN


def test_lm_default_targets_are_the_conv1d_weights_not_embeddings_or_norms(gpt2_folder):
    model = load_model(f"hf:{gpt2_folder}")
    data = load_dataset(f"text:{gpt2_folder.parent / 'eval.txt'}", tokenizer=model.tokenizer, seq_len=32, limit=4)
    names = SweepRunner(model, data).patch.names
    assert names == ["transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
                     "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight"]
    included = SweepRunner(model, data, include=["transformer.wte.weight", "*.ln_f.*"]).patch.names
    assert included == ["transformer.wte.weight", "transformer.ln_f.weight", "transformer.ln_f.bias"]
    assert model.format == "hf" and model.task == "causal-lm" and model.sha256


def test_lm_metrics_token_agreement_and_kl_are_identities_on_the_clean_model(gpt2_folder):
    model = load_model(f"hf:{gpt2_folder}")
    data = load_dataset(f"text:{gpt2_folder.parent / 'eval.txt'}", tokenizer=model.tokenizer, seq_len=64, limit=6)
    runner = SweepRunner(model, data, metric=["perplexity", "token-agreement", "kl"], batch_size=4)
    clean = runner.clean.values
    assert clean["token_agreement"] == 1.0 and clean["kl"] == 0.0 and clean["perplexity"] > 1.0


def test_pool_on_lm_logits_and_perplexity_on_pooled_outputs_are_refused(run_cli, gpt2_folder):
    text = gpt2_folder.parent / "eval.txt"
    code, _, err = run_cli("sweep", f"hf:{gpt2_folder}", "--dataset", f"text:{text}", "--pool", "mean",
                           "--metric", "perplexity", "-d", "sign")
    assert code == 2 and "perplexity needs next-token scores" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("sweep", f"hf:{gpt2_folder}", "--dataset", f"text:{text}", "--output-key", "hidden")
    assert code == 2 and "no output 'hidden' (outputs: logits)" in err


def test_gate_with_a_perplexity_requirement_passes_and_fails(run_cli, gpt2_folder, tmp_path):
    text = gpt2_folder.parent / "eval.txt"
    policy = tmp_path / "p.toml"

    def gate(limits: str) -> tuple[int, str, dict]:
        policy.write_text(f'[gate]\ndataset = "text:{text}"\ntrials = 2\nseq_len = 64\nlimit = 8\n'
                          f'[[gate.require]]\ndistortion = "noise"\nstrength = 0.1\nmetric = "perplexity"\n{limits}\n')
        out = tmp_path / "g.json"
        code, stdout, err = run_cli("gate", f"hf:{gpt2_folder}", "--policy", policy, "-o", out)
        return code, stdout + err, json.loads(out.read_text())

    code, text_out, doc = gate("max = 1000\nmax_increase = 100")
    assert code == 0, text_out
    checks = doc["gate"]["requirements"][0]["checks"]
    assert [c["limit"] for c in checks] == ["max", "max_increase"] and all(c["passed"] for c in checks)
    clean = [r for r in doc["summary"] if r["distortion"] == "none"][0]["perplexity_mean"]
    assert checks[1]["mean"] == pytest.approx(checks[0]["mean"] - clean)
    assert "clean perplexity" in text_out
    code, text_out, doc = gate(f"max = {clean:.6f}")  # the noisy model is worse than the clean one
    assert code == 1 and "FAIL addnorm sigma=0.1: perplexity" in text_out and "95% CI high" in text_out


def test_a_gate_policy_naming_an_unknown_metric_or_a_metric_without_limit_is_refused(run_cli, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[gate]\ndataset = "digits"\n[[gate.require]]\ndistortion = "sign"\nmetric = "perplexty"\nmax = 3\n')
    code, _, err = run_cli("gate", "builtin:digits-mlp", "--policy", policy)
    assert code == 2 and "gate.require[0].metric: unknown metric 'perplexty'; did you mean 'perplexity'" in err
    policy.write_text('[gate]\ndataset = "digits"\n[[gate.require]]\ndistortion = "sign"\nmax = 3\n')
    code, _, err = run_cli("gate", "builtin:digits-mlp", "--policy", policy)
    assert code == 2 and "gate.require[0].max: needs metric = NAME" in err
    policy.write_text('[gate]\ndataset = "digits"\n[[gate.require]]\ndistortion = "sign"\nmetric = "cosine"\nmax_error = 0.5\n')
    code, _, err = run_cli("gate", "builtin:digits-mlp", "--policy", policy)
    assert code == 2 and "gate.require[0].metric: cosine needs a limit: max, min, max_increase, min_ratio" in err


def test_gate_min_ratio_on_cosine_of_a_classifier(run_cli, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[gate]\ndataset = "digits"\nlimit = 100\ntrials = 2\n[[gate.require]]\ndistortion = "noise"\n'
                      'strength = 0.1\nmetric = "cosine"\nmin_ratio = 0.9\nmax_error = 0.5\n')
    code, out, err = run_cli("gate", "builtin:digits-mlp", "--policy", policy)
    assert code == 0, out + err
    assert "cosine ratio to clean" in out and "error" in out


# ------------------------------------------------------------------ an encoder, sentence embeddings

def test_encoder_on_jsonl_reports_cosine_and_pooling_changes_the_numbers(run_cli, bert_folder, tmp_path):
    sentences = bert_folder.parent / "sentences.jsonl"
    docs = {pool: sweep_json(run_cli, tmp_path, f"hf:{bert_folder}", "--dataset", f"jsonl:{sentences}", "-d", "noise",
                             "-s", "0,0.3", "--trials", "2", "--pool", pool) for pool in ("mean", "cls")}
    for doc in docs.values():
        assert doc["meta"]["task"] == "outputs" and doc["meta"]["report_metrics"] == ["cosine", "relative-l2"]
        at = {r["strength"]: r for r in doc["summary"]}
        assert at[0.0]["cosine_mean"] == pytest.approx(1.0, abs=1e-6) and at[0.0]["relative_l2_mean"] == 0.0
        assert at[0.3]["cosine_mean"] < at[0.0]["cosine_mean"] and at[0.3]["relative_l2_mean"] > 0
    mean, cls = ([r["cosine_mean"] for r in docs[p]["summary"] if r["strength"] == 0.3][0] for p in ("mean", "cls"))
    assert mean != cls
    assert docs["mean"]["meta"]["pool"] == "mean" and docs["mean"]["meta"]["output_key"] == "last_hidden_state"


def test_a_label_needing_metric_on_unlabelled_text_exits_2_saying_so(run_cli, bert_folder):
    sentences = bert_folder.parent / "sentences.jsonl"
    code, _, err = run_cli("sweep", f"hf:{bert_folder}", "--dataset", f"jsonl:{sentences}", "--metric", "mse", "-d", "sign")
    assert code == 2 and "metric mse needs labels, and dataset jsonl:" in err and "has none" in err


# ------------------------------------------------------------------ the text datasets

def test_text_is_cut_into_windows_the_last_padded_and_masked(gpt2_folder, tmp_path):
    tokenizer = load_model(f"hf:{gpt2_folder}").tokenizer
    path = tmp_path / "t.txt"
    path.write_text("the cat sat on the mat and the dog ran")  # 10 words, 10 tokens
    data = load_dataset(f"text:{path}", tokenizer=tokenizer, seq_len=4)
    ids, mask = data.x["input_ids"], data.x["attention_mask"]
    assert ids.shape == mask.shape == (3, 4) and data.y is None and len(data) == 3
    assert mask[:2].all() and mask[2].tolist() == [1, 1, 0, 0]
    assert ids.flatten()[:10].tolist() == tokenizer("the cat sat on the mat and the dog ran")["input_ids"]
    assert len(load_dataset(f"text:{path}", tokenizer=tokenizer, seq_len=4, limit=2)) == 2
    path.write_text("the")
    with pytest.raises(InputFileError, match="at least two tokens"):
        load_dataset(f"text:{path}", tokenizer=tokenizer)
    with pytest.raises(InvalidValueError, match="needs a tokenizer"):
        load_dataset(f"text:{path}")
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(InputFileError, match="not UTF-8"):
        load_dataset(f"text:{path}", tokenizer=tokenizer)


def test_jsonl_labels_classes_targets_and_errors(bert_folder, tmp_path):
    tokenizer = load_model(f"hf:{bert_folder}").tokenizer
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "the cat", "label": 1}\n\n{"text": "a big red dog ran", "label": 0}\n')
    data = load_dataset(f"jsonl:{path}", tokenizer=tokenizer, seq_len=5)
    assert data.y.tolist() == [1, 0] and data.y.dtype == torch.long and data.x["input_ids"].shape == (2, 5)
    assert data.x["attention_mask"].tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]  # [CLS] the cat [SEP], truncated
    path.write_text('{"text": "the cat", "label": 0.5}\n{"text": "a dog", "label": 2}\n')
    assert load_dataset(f"jsonl:{path}", tokenizer=tokenizer).y.dtype == torch.float32
    for content, match in [('{"text": "a", "label": 1}\n{"text": "b"}\n', "text 2 has no 'label'"),
                           ('{"text": "a"}\nnot json\n', r"d.jsonl:2: not valid JSON"),
                           ('{"txt": "a"}\n', "expected an object with a 'text' string"),
                           ('{"text": "a", "label": "x"}\n', "'label' must be a number")]:
        path.write_text(content)
        with pytest.raises(InputFileError, match=match):
            load_dataset(f"jsonl:{path}", tokenizer=tokenizer)


# ------------------------------------------------------------------ hf:DIR errors

def test_hf_folder_errors_are_one_line_exit_2(run_cli, tmp_path, monkeypatch, gpt2_folder):
    code, _, err = run_cli("sweep", f"hf:{tmp_path / 'none'}")
    assert code == 2 and "no such folder (hf:DIR" in err
    code, _, err = run_cli("sweep", f"hf:{tmp_path}")
    assert code == 2 and "not a Hugging Face model folder (no config.json)" in err
    (tmp_path / "config.json").write_text("{}")
    code, _, err = run_cli("sweep", f"hf:{tmp_path}")
    assert code == 2 and "no weights (model.safetensors or pytorch_model.bin)" in err
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    code, _, err = run_cli("sweep", f"hf:{tmp_path}")
    assert code == 2 and "cannot load the model" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "transformers", None)  # the optional extra is not installed
    code, _, err = run_cli("sweep", f"hf:{gpt2_folder}")
    assert code == 2 and "hf:DIR needs the transformers package: pip install 'robustbench_w[hf]'" in err


def test_gate_min_on_a_metric_reads_as_a_lower_bound(run_cli, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[gate]\ndataset = "digits"\nlimit = 100\ntrials = 2\n[[gate.require]]\ndistortion = "noise"\n'
                      'strength = 0.1\nmetric = "agreement"\nmin = 0.999\n')
    code, out, _ = run_cli("gate", "builtin:digits-mlp", "--policy", policy)
    assert code == 1
    assert ">= 0.999" in out and "<= 0.999" not in out  # the table's limit column
    assert "(95% CI low) < limit 0.999" in out  # the failure line
