"""Hardware in the sweep: pcm over time, chains, --redraw batch and the converters, on the digits MLP."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from robustbench_w import effective_bits, sweep
from robustbench_w.bits.tensor import tensor_bits
from robustbench_w.distortions import get_distortion
from robustbench_w.engine.passes.converters import ConverterSpec
from robustbench_w.load.checkpoints import load_model

MODEL = "builtin:digits-mlp"
MEASURED = ["error", "loss", "agreement", "weight_change"]


def run(distortions, strengths=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sweep(MODEL, distortions=distortions, strengths=strengths, device="cpu", **kwargs)


def by_strength(rows, column):
    return rows[rows.distortion != "none"].groupby("strength")[column].mean()


def test_pcm_degrades_with_time_and_global_compensation_helps_at_a_year():
    """On the digits MLP the classification error hardly moves (a common shrink of every weight keeps the
    argmax): the loss shows the drift, growing with t uncompensated; compensated it stays near t = 1."""
    times = [1.0, 86400.0, 3.2e7]
    none = by_strength(run(["pcm:compensate=none"], times, trials=4), "loss")
    comp = by_strength(run(["pcm"], times, trials=4), "loss")
    assert list(none) == sorted(none) and none[3.2e7] > 2 * none[1.0]
    assert comp[3.2e7] < none[3.2e7] / 2 and comp[3.2e7] < 1.5 * comp[1.0]


def test_chain_at_zero_gives_the_rows_of_its_first_part_and_bits_of_the_composed_values():
    chain = run(["quantize:bits=4+noise"], [0.0, 0.1], trials=2)
    alone = run(["quantize:bits=4"], trials=2)
    at_zero = chain[chain.strength == 0.0]
    quant = alone[alone.distortion == "quantize"]
    assert len(at_zero) == 1 and not at_zero.stochastic.iloc[0]
    for column in [*MEASURED, "eff_bits"]:
        assert at_zero[column].iloc[0] == pytest.approx(quant[column].iloc[0], rel=1e-12)
    assert at_zero.spec.iloc[0] == "quantize:bits=4+addnorm"
    assert chain[chain.strength == 0.1].eff_bits.isna().all()  # continuous values: no exact entropy
    # the bits command at 0.1 counts the composed values (quantized, then noise) at its resolution
    frame = effective_bits(MODEL, distortion="quantize:bits=4+noise", strength=0.1)
    module = load_model(MODEL).module
    w = dict(module.named_parameters())[frame.name.iloc[0]].detach()
    from robustbench_w.engine.weights.perturb import WeightPatch

    patch = WeightPatch([(frame.name.iloc[0], w)])
    (_, composed), = patch.distorted(get_distortion("quantize:bits=4+noise"), 0.1, seed=0, trial=0)
    assert frame.bits_per_weight.iloc[0] == pytest.approx(tensor_bits(composed, 8).bits)
    assert frame.bits_per_weight.iloc[0] > tensor_bits(get_distortion("quantize:bits=4")(w)).bits


def test_cli_chain_typo_names_the_part(run_cli):
    code, out, err = run_cli("sweep", MODEL, "-d", "quantize:bits=4+nosie", "-q")
    assert code == 2 and "Traceback" not in err
    assert "part 2 of 'quantize:bits=4+nosie' ('nosie')" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- redraw

def seen_weights(redraw: str, strength: float):
    """The first layer's weight as each batch sees it (a forward pre-hook), and the rows."""
    loaded = load_model(MODEL)
    first = next(m for m in loaded.module.modules() if isinstance(m, torch.nn.Linear))
    seen = []
    first.register_forward_pre_hook(lambda m, args: seen.append(m.weight.detach().clone()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = sweep(loaded, distortions=["noise"], strengths=[strength], trials=1, batch_size=178, redraw=redraw,
                     device="cpu")
    return seen, rows


def test_redraw_batch_draws_each_batch_anew_and_repeats():
    seen, rows = seen_weights("batch", 0.2)
    clean, b0, b1 = seen[0], seen[-2], seen[-1]  # the clean pass (2 batches), then the point's 2 batches
    assert len(seen) == 5 and torch.equal(seen[0], seen[1])  # the probe, the clean pass, the point
    assert not torch.equal(b0, b1) and not torch.equal(b0, clean) and not torch.equal(b1, clean)
    point_seen, point_rows = seen_weights("point", 0.2)
    assert torch.equal(point_seen[-2], point_seen[-1]) and torch.equal(point_seen[-2], b0)  # batch 0: the point's
    again_seen, again = seen_weights("batch", 0.2)
    assert torch.equal(again_seen[-1], b1)
    assert rows[MEASURED].equals(again[MEASURED]) and list(rows.redraw) == ["point", "batch"]
    assert rows.attrs["meta"]["redraw"] == "batch"
    assert not rows[MEASURED].iloc[1:].equals(point_rows[MEASURED].iloc[1:])


def test_redraw_batch_at_strength_zero_gives_the_clean_numbers():
    _, rows = seen_weights("batch", 0.0)
    assert rows[["error", "loss", "agreement"]].iloc[1].tolist() == rows[["error", "loss", "agreement"]].iloc[0].tolist()


# ------------------------------------------------------------------------------------------ converters

def test_converters_eight_bits_barely_move_the_clean_error_two_bits_do():
    plain = run(["sign"])
    eight = run(["sign"], converters=ConverterSpec(dac=8, adc=8))
    two = run(["sign"], converters=ConverterSpec(dac=2))
    clean = [r[r.distortion == "none"].error.iloc[0] for r in (plain, eight, two)]
    assert abs(clean[1] - clean[0]) < 0.01 and abs(clean[2] - clean[0]) > 0.01
    assert eight.attrs["meta"]["converters"] == {"dac": 8, "adc": 8, "out_noise": None, "range": "static",
                                                 "apply": "all"}
    assert plain.attrs["meta"]["converters"] is None


def test_out_noise_zero_is_no_converters_and_noise_is_seeded():
    plain = run(["noise"], [0.1], trials=2)
    zero = run(["noise"], [0.1], trials=2, converters=ConverterSpec(out_noise=0.0))
    assert plain[MEASURED].equals(zero[MEASURED])
    noisy = [run(["noise"], [0.1], trials=2, converters=ConverterSpec(out_noise=0.2), seed=s) for s in (0, 0, 1)]
    assert noisy[0][MEASURED].equals(noisy[1][MEASURED]) and not noisy[0][MEASURED].equals(noisy[2][MEASURED])
    assert not noisy[0][MEASURED].equals(plain[MEASURED])


def test_converters_distorted_only_leave_the_clean_row_alone():
    plain = run(["noise"], [0.0])
    only = run(["noise"], [0.0], converters=ConverterSpec(dac=2, apply="distorted-only"))
    assert only.error.iloc[0] == plain.error.iloc[0]
    assert only.error.iloc[1] > plain.error.iloc[1] + 0.1  # evaluated behind the converters, not the clean pass


def test_dynamic_ranges_and_cli_options(run_cli):
    dynamic = run(["sign"], converters=ConverterSpec(dac=8, adc=8, dac_range="dynamic"))
    static = run(["sign"], converters=ConverterSpec(dac=8, adc=8))
    assert not math.isnan(dynamic.error.iloc[0]) and dynamic.attrs["meta"]["converters"]["range"] == "dynamic"
    assert abs(dynamic.error.iloc[0] - static.error.iloc[0]) < 0.01
    code, out, err = run_cli("sweep", MODEL, "-d", "sign", "--dac", "8", "--adc", "8", "--device", "cpu")
    assert code == 0, err
    assert "converters dac 8 bits, adc 8 bits (static ranges; the clean row is the converter baseline)" in out
    code, _, err = run_cli("sweep", MODEL, "--dac", "1")
    assert code == 2 and "--dac" in err
    code, _, err = run_cli("sweep", MODEL, "-d", "sign", "--dac", "8", "--per-layer")
    assert code == 2 and "do not apply to --per-layer" in err


def test_gate_policies_take_the_hardware_keys():
    from robustbench_w.gate.policy import parse_policy
    from robustbench_w.gate.verdict import run_gate

    def policy(**keys):
        return parse_policy({**keys, "require": [{"distortion": "quantize", "strength": 8, "max_error": 0.1}]})

    assert run_gate(MODEL, policy(), device="cpu").passed
    behind = run_gate(MODEL, policy(dac=2, redraw="batch"), device="cpu")
    assert not behind.passed and behind.meta["converters"]["dac"] == 2 and behind.meta["redraw"] == "batch"
    with pytest.raises(Exception, match="gate.dac: must be a number of bits from 2 to 24"):
        policy(dac=1)
    with pytest.raises(Exception, match="gate.redraw: expected one of 'point', 'batch'"):
        policy(redraw="always")


def test_gate_command_line_takes_the_hardware_options(run_cli, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[gate]\ntrials = 1\n[[gate.require]]\ndistortion = "quantize"\nstrength = 8\nmax_error = 0.1\n')
    assert run_cli("gate", MODEL, "--policy", path, "--device", "cpu", "-q")[0] == 0
    code, out, err = run_cli("gate", MODEL, "--policy", path, "--device", "cpu", "--dac", "2", "-o", tmp_path / "g.json")
    assert code == 1
    import json

    assert json.loads((tmp_path / "g.json").read_text())["meta"]["converters"]["dac"] == 2


@pytest.mark.parametrize("other", [{"converters": ConverterSpec(dac=2)}, {"redraw": "batch"}])
def test_resume_refuses_a_log_written_with_other_hardware(tmp_path, other):
    """Rows behind a 2-bit DAC (or redrawn per batch) are not the rows of the plain model: a log of one is not
    resumed by the other (it was, and mixed 2% with 88% error rows in one table), and the log is left as it was."""
    from robustbench_w.errors import InputFileError
    from robustbench_w.report.merge import merge_files

    log = tmp_path / "run.jsonl"
    run(["noise"], [0.1], trials=2, log=log)
    before = log.read_bytes()
    with pytest.raises(InputFileError, match="hardware .*redraw point, converters off.* vs "):
        run(["noise"], [0.1, 0.2], trials=2, log=log, resume=True, **other)
    assert log.read_bytes() == before
    assert run(["noise"], [0.1, 0.2], trials=2, log=log, resume=True).attrs["meta"]["points_resumed"] == 2

    behind = tmp_path / "behind.jsonl"
    run(["noise"], [0.2], trials=2, log=behind, **other)
    with pytest.raises(InputFileError, match="does not belong with"):
        merge_files([log, behind])
