"""Bad inputs to every command (issue 10): the exit code, exactly one line on stderr, no traceback, the key
words of the message, and an earlier output file left byte for byte as it was.

Each case is a command line with ``{placeholders}`` for files the module fixture writes. A failing case with
``out`` also names an earlier output file (``-o earlier.SUFFIX``) that must survive unchanged; ``deny`` makes
a file unreadable (``open`` raises ``PermissionError``, as it does for a chmod 000 file, even as root). Cases
with exit code 0 are the ones that must go on but say, in one warning line, what they did.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pytest
import torch
from broken_inputs import (
    BUILTIN,
    bert_state,
    deny,
    policy_text,
    write_net,
    write_nonfinite,
    write_safetensors,
    write_state_dict,
    write_tensors,
)
from torch import nn

from robustbench_w.load.archspec import build

EARLIER = b"results of an earlier run\n"

POLICY = policy_text(strength=0.05, max_error=1.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    net = write_net(d)
    (d / "locked.py").write_text(net.read_text())  # imported only by the case that cannot read it
    torch.save(build(f"{net}:boom", 10).state_dict(), d / "boom.pt")
    torch.save(bert_state(net, extra={"pooler.dense.weight": torch.ones(8, 8)}), d / "bert_param.pt")
    torch.save(bert_state(net, extra={"embeddings.position_ids": torch.arange(4).unsqueeze(0)}), d / "bert_pos.pt")
    torch.save(nn.Linear(64, 10), d / "pickled.pt")
    (d / "empty.pt").write_bytes(b"")
    (d / "garbage.pt").write_bytes(b"this is not a checkpoint at all")
    write_safetensors(d / "m.safetensors")
    (d / "cut.safetensors").write_bytes((d / "m.safetensors").read_bytes()[:200])
    texts = {"policy.toml": POLICY, "bad.toml": "[gate\n", "nogate.toml": "[other]\nx = 1\n",
             "sign.toml": POLICY.replace('"noise"', '"sign"'), "norequire.toml": '[gate]\ndataset = "digits"\n',
             "baseline.json": "{", "rows.json": '{"rows": []}'}
    for name, text in texts.items():
        (d / name).write_text(text)
    (d / "a_file").write_text("not a folder")
    paths = {"nan": write_nonfinite(d / "nan.pt", float("nan")), "inf": write_nonfinite(d / "inf.pt", float("inf")),
             "sd": write_state_dict(d / "sd.pt"), "data": write_tensors(d / "data.pt"), "net": net}
    names = {p.stem.replace(".", "_"): p for p in d.iterdir()} | paths
    return {"model": BUILTIN, "dir": str(d), **{k: str(v) for k, v in names.items()}}


@dataclass(frozen=True)
class Case:
    argv: str  # the command line after ``wrobust``, with {placeholders}
    code: int
    words: tuple[str, ...]  # all must appear in the stderr line
    out: str | None = None  # suffix of an earlier output file passed as -o (must survive a failure)
    deny: str | None = None  # placeholder of a file that cannot be read


def case(argv: str, code: int, *words: str, out: str | None = None, deny: str | None = None, id: str = ""):
    return pytest.param(Case(argv, code, words, out, deny), id=id or argv[:60])


SWEEP = "sweep {model} --device cpu"
BITS = "bits {model}"
GATE = "gate {model} --device cpu"
TRAIN = "train --epochs 1 --device cpu"

CASES = [
    # ---- sweep: names, strengths, lists
    case(f"{SWEEP} -d nosie", 2, "unknown", "noise", out=".csv"),
    case(f"{SWEEP} -d multunif -s 1.5", 2, "(0, 1]", out=".csv"),
    case(f"{SWEEP} -d noise -s 1,,2", 2, "empty item", out=".csv"),
    case(f"{SWEEP} -d noise -s 0.1,", 2, "empty item", out=".json"),
    case(f"{SWEEP} -d noise -s ,", 2, "names nothing", out=".csv"),
    case(f"{SWEEP} -d noise -s abc", 2, "not a comma-separated list", out=".csv"),
    case(f"{SWEEP} -d noise --input-shape 3,,64", 2, "empty item", out=".csv"),
    case(f"{SWEEP} -d noise --mean 0.5,,0.5", 2, "empty item", out=".csv"),
    case(f"{SWEEP} -d noise --std 0.2,", 2, "empty item", out=".csv"),
    case(f"{SWEEP} -d sign -s 0.5", 2, "sign takes no strength", "-s 0.5", out=".csv"),
    case(f"{SWEEP} -d sign -d round -s 0.5,1", 2, "sign takes no strength", out=".md"),
    case(f"{SWEEP} -d noise:scale=max,,granularity=channel", 2, "empty option", out=".csv"),
    case(f"{SWEEP} -d noise:scale=max,", 2, "empty option", out=".csv"),
    case(f"{SWEEP} -d power:beta=0.5 -s 0.3", 2, "fixes beta", out=".csv"),
    case(f"{SWEEP} -d noise:scale=huge", 2, "scale must be one of", out=".csv"),
    case(f"{SWEEP} --trials 0", 2, "--trials", out=".csv"),
    case(f"{SWEEP} --limit 0", 2, "--limit", out=".csv"),
    case(f"{SWEEP} --batch-size 0", 2, "--batch-size", out=".csv"),
    case(f"{SWEEP} --target-error 2", 2, "not an error rate", out=".csv"),
    case(f"{SWEEP} --num-classes 0", 2, "--num-classes", out=".csv"),
    case(f"{SWEEP} --include zzz* -d sign", 2, "no parameters selected", "zzz*", out=".csv"),
    case(f"{SWEEP} --dataset nosuch -d sign", 2, "unknown dataset", out=".csv"),
    case(f"{SWEEP} --dataset imagefolder -d sign", 2, "needs an argument", out=".csv"),
    # ---- sweep: files
    case("sweep {dir}/absent.pt -d sign", 2, "absent.pt", "no such file", out=".csv"),
    case("sweep {dir} -d sign", 2, "is a directory", out=".csv"),
    case("sweep {empty} -d sign", 2, "empty file", out=".csv"),
    case("sweep {garbage} -d sign", 2, "not a checkpoint", out=".csv"),
    case("sweep {cut} -d sign --arch net.py:digits", 2, "truncated or corrupt", out=".csv", id="sweep-cut-safetensors"),
    case("sweep {sd} -d sign --dataset digits", 2, "needs --arch", out=".csv"),
    case("sweep {sd} -d sign --dataset digits --arch nosuch_arch", 2, "unknown architecture", out=".csv"),
    case("sweep {pickled} -d sign --dataset digits", 2, "--trust-checkpoint", out=".csv"),
    case("sweep {sd} -d sign --dataset digits --arch {net}:digits", 2, "permission denied", out=".csv", deny="sd",
         id="sweep-model-permission-denied"),
    case("sweep {model} -d sign --dataset tensors:{data}", 2, "permission denied", out=".csv", deny="data",
         id="sweep-data-permission-denied"),
    case("sweep {sd} -d sign --dataset digits --arch {locked}:digits", 2, "permission denied", "locked.py",
         out=".csv", deny="locked", id="sweep-arch-file-permission-denied"),
    case("sweep {boom} -d sign --dataset digits --arch {net}:boom", 2, "your model raised RuntimeError: boom",
         "(in net.py:forward)", out=".csv", id="sweep-user-forward-raises"),
    case("sweep {bert_param} -d sign --dataset digits --arch {net}:bert", 2, "unexpected", "pooler.dense.weight",
         out=".csv", id="sweep-bert-extra-parameter"),
    case("sweep {bert_pos} -d sign --dataset digits --arch {net}:bert --strict", 2, "unexpected",
         "embeddings.position_ids", out=".csv", id="sweep-bert-buffer-strict"),
    # ---- sweep and demo: outputs
    case(f"{SWEEP} -d sign -o {{dir}}/x.txt", 2, "unknown output format", out=".csv", id="sweep-o-bad-suffix-after-good"),
    case(f"{SWEEP} -d sign -o {{dir}}/nowhere/x.csv", 2, "does not exist", out=".json", id="sweep-o-missing-folder"),
    case(f"{SWEEP} -d sign -o {{dir}}", 2, "directory", out=".csv", id="sweep-o-folder"),
    case("demo -o {dir}/demo.txt", 2, "unknown output format", out=".csv"),
    case("demo --trials 0", 2, "--trials", out=".csv"),
    # ---- sweep: goes on, but says what it did (exit 0, one warning line)
    case(f"{SWEEP} -d sign --limit 100000", 0, "warning", "--limit 100,000", "355 examples"),
    case(f"{SWEEP} -d sign --arch resnet18", 0, "warning", "--arch resnet18 is not used", "(mlp)"),
    case(f"{SWEEP} -d sign --num-classes 3", 0, "warning", "--num-classes 3 is not used", "10 classes"),
    case("sweep {nan} -d sign --device cpu", 0, "warning", "broken model", "1 non-finite weight in 1.weight"),
    case("sweep {inf} -d sign --device cpu", 0, "warning", "broken model", "non-finite outputs"),
    case("sweep {bert_pos} -d sign --dataset synthetic --input-shape 1,8,8 --arch {net}:bert", 0, "note",
         "embeddings.position_ids",
         id="sweep-bert-position-ids-note"),
    # ---- bits
    case(f"{BITS} -d sign --strength 0.5", 2, "sign takes no strength", "--strength 0.5", out=".json"),
    case(f"{BITS} -d noise", 2, "needs a strength", out=".json"),
    case(f"{BITS} --strength 0.1", 2, "needs a distortion", out=".csv"),
    case(f"{BITS} -d noise --strength -1", 2, "outside its valid range", out=".json"),
    case(f"{BITS} --resolution 0", 2, "--resolution", out=".json"),
    case(f"{BITS} -d sign:,", 2, "empty option", out=".json"),
    case(f"{BITS} -o {{dir}}/b.parquet", 2, "unknown output format", out=".json", id="bits-o-bad-suffix"),
    case("bits {m} --include zzz*", 2, "no parameters selected", "zzz*", out=".json", id="bits-safetensors-no-match"),
    case("bits {cut}", 2, "truncated or corrupt", out=".json"),
    case("bits {garbage}", 2, "not a checkpoint", out=".md"),
    case(f"{BITS} -d power:beta=0.5 --strength 0.3", 2, "fixes beta", "give the strength once", out=".json",
         id="bits-strength-twice"),
    case("bits {nan}", 2, "permission denied", out=".json", deny="nan", id="bits-model-permission-denied"),
    case("bits {nan}", 0, "warning", "1 non-finite weight in 1.weight", "left out of the counts"),
    case("bits {bert_pos} --arch {net}:bert", 0, "note", "ignored 1 buffer", id="bits-bert-position-ids-note"),
    # ---- gate
    case(f"{GATE} --policy {{policy}}", 2, "permission denied", out=".json", deny="policy", id="gate-policy-denied"),
    case(f"{GATE} --policy {{dir}}/absent.toml", 2, "does not exist", out=".json"),
    case(f"{GATE} --policy {{bad}}", 2, "not valid TOML", out=".json"),
    case(f"{GATE} --policy {{nogate}}", 2, "no [gate] table", out=".json"),
    case(f"{GATE} --policy {{sign}}", 2, "sign takes no strength", out=".json"),
    case(f"{GATE} --policy {{norequire}}", 2, "gate.require", out=".json"),
    case(f"{GATE} --policy {{policy}} --baseline {{baseline}}", 2, "not valid JSON", out=".json"),
    case(f"{GATE} --policy {{policy}} --baseline {{rows}}", 2, "not a wrobust results file", out=".json"),
    case(f"{GATE} --policy {{policy}} --baseline {{rows}}", 2, "permission denied", out=".json", deny="rows",
         id="gate-baseline-denied"),
    case(f"{GATE} --policy {{policy}} -o {{dir}}/g.csv", 2, "unknown output format", out=".json", id="gate-o-csv"),
    case(f"{GATE} --policy {{policy}} --junit {{dir}}/j.txt", 2, "unknown output format", out=".json"),
    case("gate {boom} --policy {policy} --arch {net}:boom --device cpu", 2, "your model raised RuntimeError: boom",
         out=".json", id="gate-user-forward-raises"),
    case("gate {nan} --policy {policy} --device cpu", 2, "permission denied", out=".json", deny="nan",
         id="gate-model-denied"),
    # ---- train
    case(f"{TRAIN} -A hidden=[0]", 2, "-A hidden=[0]", "positive integers", out=".pt"),
    case(f"{TRAIN} -A hidden=abc", 2, "-A hidden=abc", "positive integers", out=".pt"),
    case(f"{TRAIN} -A batch_norm=maybe", 2, "-A batch_norm=maybe", "true or false", out=".pt"),
    case(f"{TRAIN} -A width=2", 2, "has no option 'width'", out=".pt"),
    case(f"{TRAIN} -A =3", 2, "expected KEY=VALUE", out=".pt"),
    case(f"{SWEEP} --log {{dir}}/run.csv", 2, "a run log is JSON lines, not a .csv results file", out=".csv",
         id="sweep-log-with-a-results-suffix"),
    case(f"{TRAIN} --arch resnet1", 2, "unknown architecture 'resnet1'; did you mean 'resnet18'", out=".pt"),
    case(f"{TRAIN} -p nosuch", 2, "unknown", out=".pt"),
    case(f"{TRAIN} -p power", 2, "needs its strength", out=".pt"),
    case(f"{TRAIN} --dataset nosuch", 2, "unknown dataset", out=".pt"),
    case(f"{TRAIN} --epochs 0", 2, "--epochs", out=".pt"),
    case(f"{TRAIN} -o {{dir}}/model.txt", 2, "unknown output format", out=".pt", id="train-o-bad-suffix"),
    case(f"{TRAIN} --lr 1e30", 2, "training diverged", "no checkpoint written", out=".pt", id="train-diverges"),
    case(TRAIN, 2, "Missing option", id="train-without-o"),
    # ---- reproduce
    case("reproduce --rules none,,clip", 2, "empty item"),
    case("reproduce --distortions sign,", 2, "empty item"),
    case("reproduce --rules ,", 2, "names nothing"),
    case("reproduce -o {a_file}", 2, "file", id="reproduce-o-is-a-file"),
    # ---- list
    case("list distortions --include zzz*", 0, "warning", "no distortions match --include 'zzz*'"),
    case("list datasets --exclude *", 0, "warning", "no datasets match --exclude '*'"),
    case("list archs --include zzz*", 0, "warning", "no archs match"),
    case("list models --include zzz*", 0, "warning", "no models match"),
    case("list nonsense", 2, "nonsense"),
]


def test_the_suite_is_large():
    assert len(CASES) >= 60


@pytest.mark.parametrize("c", CASES)
def test_bad_input(c: Case, files, run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(files["dir"])  # --arch net.py:NAME is found from here
    argv = [part.format(**files) for part in shlex.split(c.argv)]
    earlier = tmp_path / f"earlier{c.out}" if c.out else None
    if earlier is not None:
        earlier.write_bytes(EARLIER)
        argv = [argv[0], "-o", str(earlier), *argv[1:]]  # the earlier file comes first: its writing must not happen
    if c.deny:
        deny(monkeypatch, files[c.deny])
    code, out, err = run_cli(*argv)
    lines = err.strip().splitlines()
    assert code == c.code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in c.words:
        assert word in lines[0], lines[0]
    assert lines[0].startswith("wrobust: error: " if c.code else ("wrobust: warning: ", "wrobust: note: "))
    if earlier is not None and c.code:
        assert earlier.read_bytes() == EARLIER
