"""Poor messages made clear (issue 26, second half): each rule exercised on several commands. Every case asserts
the exit code, exactly one line on stderr (none for a case that must simply work), no traceback, the key words
of the message and words it must not have.

Rules: an option that takes one value given twice is an error (a repeated ``-s`` shows the spec's list form);
the list form ``NAME:KEY=A/B/C`` is one distortion's own grid and is refused where one strength is needed; an
empty file name is an error, not ``.``; trial counts are bounded; an idx file is checked before it is read; a
metric that needs numeric targets says so; ``--seq-len`` fits the model's positions; a corrupt image is named
by its path; checkpoint wrappers are unwrapped naming the key, several candidates need ``--key``, keys the
architecture lacks are refused with the ``--ignore-keys`` hint; outputs that do not fit the classes list each
entry's shape and suggest ``--output-key N``, ``--num-classes`` only where the factory takes it; a per-layer
file is plotted with ``--kind layers``.
"""

from __future__ import annotations

import io
import math
import re
import shlex
import struct
import urllib.error
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from broken_inputs import BUILTIN, builtin_checkpoint, policy_text, write_net, write_tensors
from torch import nn

from robustbench_w.errors import InputFileError, first_line, shorten
from robustbench_w.load.checkpoints import load_model

NET2_PY = '''
import torch
from torch import nn


class Two(nn.Module):
    def __init__(self, as_dict=False):
        super().__init__()
        self.flat, self.a, self.b, self.as_dict = nn.Flatten(), nn.Linear(64, 5), nn.Linear(64, 10), as_dict

    def forward(self, x):
        x = self.flat(x)
        return {"logits": self.a(x), "aux": self.b(x)} if self.as_dict else (self.a(x), self.b(x))


def two():
    return Two()


def named():
    return Two(as_dict=True)


def five():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5))


def five_n(num_classes=5):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))
'''


def as_cuda_file(obj: object, path: Path) -> Path:
    """``torch.save(obj)`` as if its tensors had been on ``cuda:0``: the storages' location tag rewritten in the
    archive's pickle (the tag is memoised, so its one occurrence covers every storage)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            out.writestr(info.filename, data)
    return path


def trained_state() -> tuple[dict, dict]:
    """The built-in model's state dict, and the state of an SGD optimizer with momentum after one step on it."""
    sd = builtin_checkpoint()["state_dict"]
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    model.load_state_dict(sd)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    opt.step()
    return sd, opt.state_dict()


def write_idx(path: Path, array: np.ndarray) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape) + \
        array.astype(np.uint8).tobytes()
    path.write_bytes(data)
    return data


def mnist_root(root: Path, folder: str = "MNIST", images: bytes | None = None, labels: bytes | None = None,
               split: str = "t10k") -> str:
    """A torchvision MNIST layout of 20 images; ``images``/``labels`` replace the bytes of the split's file."""
    rng = np.random.default_rng(0)
    for part in ("t10k", "train"):
        raw = root / folder / "raw"
        write_idx(raw / f"{part}-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
        write_idx(raw / f"{part}-labels-idx1-ubyte", np.arange(20) % 10)
    raw = root / folder / "raw"
    if images is not None:
        (raw / f"{split}-images-idx3-ubyte").write_bytes(images)
    if labels is not None:
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(labels)
    return str(root)


def idx_header(*dims: int, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def image_tree(root: Path, bad: bytes) -> str:
    from PIL import Image

    for c in ("a", "b"):
        (root / "val" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / "val" / c / f"{i}.png")
    (root / "val" / "a" / "bad.png").write_bytes(bad)
    return str(root)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("messages")
    write_net(d)
    (d / "net2.py").write_text(NET2_PY)
    sd, opt = trained_state()
    ns = {"torch": torch, "nn": nn}
    exec(NET2_PY, ns)
    paths = {
        "cuda_wrapped": as_cuda_file({"model_state": sd, "optimizer_state": opt, "step": 3}, d / "cuda_wrapped.pt"),
        "nested": d / "nested.pt", "two": d / "two.pt", "extra": d / "extra.pt", "optonly": d / "optonly.pt",
        "two_out": d / "two_out.pt", "five": d / "five.pt", "five_n": d / "five_n.pt", "named_out": d / "named.pt",
        "data": write_tensors(d / "data.pt"),
    }
    torch.save({"checkpoint": {"model": sd, "epoch": 4}, "optimizer": opt}, paths["nested"])
    torch.save({"model": sd, "ema": {k: v.clone() for k, v in sd.items()}, "step": 3}, paths["two"])
    torch.save({**sd, "aux_head.weight": torch.ones(3, 128), "aux_head.bias": torch.zeros(3)}, paths["extra"])
    torch.save({"optimizer": opt, "step": 3}, paths["optonly"])
    for name, factory in (("two_out", "two"), ("five", "five"), ("five_n", "five_n"), ("named_out", "named")):
        torch.save(ns[factory]().state_dict(), paths[name])
    for key in ("model_state_dict", "net", "network", "ema", "module"):
        torch.save({key: sd, "epoch": 2}, d / f"under_{key}.pt")
        paths[f"under_{key}"] = d / f"under_{key}.pt"
    texts = {"policy.toml": policy_text(strength=0.05, max_error=1.0),
             "listpolicy.toml": policy_text(strength=0.05, max_error=1.0).replace('"noise"', '"noise:sigma=0/0.1"'),
             "manytrials.toml": policy_text(strength=0.05, max_error=1.0).replace("trials = 2", "trials = 100000000000")}
    for name, text in texts.items():
        (d / name).write_text(text)
        paths[name.split(".")[0]] = d / name
    hdr = idx_header(20, 28, 28)
    roots = {"idx_empty": dict(images=b""), "idx_empty_labels": dict(labels=b""),
             "idx_magic": dict(images=b"PK\x03\x04" + bytes(100)), "idx_head": dict(images=b"\x00\x00\x08"),
             "idx_short_head": dict(images=hdr[:9]), "idx_count": dict(images=hdr + bytes(100)),
             "idx_labels_count": dict(labels=idx_header(50) + bytes(20)), "idx_dims": dict(images=idx_header(15680)),
             "idx_code": dict(images=bytes([0, 0, 0x42, 1]) + bytes(8)),
             "idx_train": dict(images=hdr + bytes(10), split="train")}
    for name, bad in roots.items():
        paths[name] = Path(mnist_root(d / name, **bad))
    paths["idx_fashion"] = Path(mnist_root(d / "fashion", "FashionMNIST", images=hdr + bytes(7)))
    png = (d / "ok.png")
    from PIL import Image

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(png)
    paths["img_garbage"] = Path(image_tree(d / "img_garbage", b"not an image at all"))
    paths["img_cut"] = Path(image_tree(d / "img_cut", png.read_bytes()[:60]))
    return {"model": BUILTIN, "dir": str(d), **{k: str(v) for k, v in paths.items()}}


@pytest.fixture(scope="module")
def layer_file(tmp_path_factory) -> str:
    import robustbench_w as rw
    from robustbench_w.engine.runs.stats import summarize
    from robustbench_w.report.files import write_results

    rows = rw.sweep(BUILTIN, distortions=["sign"], trials=1, per_layer=True, device="cpu")
    path = tmp_path_factory.mktemp("layers") / "layers.csv"
    write_results(path, rows, summarize(rows), rows.attrs["meta"])
    return str(path)


@dataclass(frozen=True)
class Case:
    argv: str
    code: int
    words: tuple[str, ...]  # all in the one stderr line; none: stderr must be empty
    absent: tuple[str, ...] = ()  # none of these may be in it


def case(argv: str, code: int, *words: str, absent: tuple[str, ...] = (), id: str = ""):
    return pytest.param(Case(argv, code, words, absent), id=id or argv[:70])


SWEEP = "sweep {model} --device cpu -q"
SIGN = f"{SWEEP} -d sign"
GATE = "gate {model} --policy {policy} --device cpu -q"
TRAIN = "train --epochs 1 --device cpu -q"
REPEAT = "given more than once"
LIST_HINT = "noise:sigma=0/0.01/0.05"
EMPTY = "an empty file name"
MNIST = f"{SWEEP} -d sign --dataset mnist --data-root"
DIGITS_ARCH = "--arch {dir}/net.py:digits --dataset digits -d sign --device cpu -q"
TWO_ARCH = "--dataset digits -d sign --device cpu -q --arch {dir}/net2.py"

REPEATS = [
    case(f"{SWEEP} -d noise -s 0,0.1 -d quantize -s 8,4", 2, "-s/--strengths", REPEAT, LIST_HINT, "quantize:bits=8/4",
         id="sweep-s-twice"),
    case(f"{SWEEP} -d noise --strengths 0,0.1 -s 0.2", 2, "-s/--strengths", REPEAT, LIST_HINT, id="sweep-s-long-short"),
    case(f"{SIGN} --seed 1 --seed 2", 2, "--seed", REPEAT, "give it once"),
    case(f"{SIGN} --dataset digits --dataset mnist", 2, "--dataset", REPEAT),
    case(f"{SIGN} --trials 3 --trials 4", 2, "--trials", REPEAT),
    case(f"{SIGN} --batch-size 8 --batch-size=16", 2, "--batch-size", REPEAT, id="sweep-batch-size-equals-form"),
    case("bits {model} -d noise --strength 0.1 --strength 0.2", 2, "--strength", REPEAT),
    case("bits {model} --resolution 8 --resolution 4", 2, "--resolution", REPEAT),
    case(f"{GATE} --policy {{policy}}", 2, "--policy", REPEAT, id="gate-policy-twice"),
    case(f"{GATE} --seq-len 8 --seq-len 16", 2, "--seq-len", REPEAT),
    case(f"{TRAIN} --epochs 2 -o {{dir}}/t.pt", 2, "--epochs", REPEAT, id="train-epochs-twice"),
    case("reproduce --trials 2 --trials 3", 2, "--trials", REPEAT),
    case("demo --seed 1 --seed 2", 2, "--seed", REPEAT),
]

LIST_FORM = [
    case(f"{SWEEP} -d noise:sigma=0/x", 2, "sigma='0/x'", "not a number or a list of numbers"),
    case(f"{SWEEP} -d noise:sigma=0//0.1", 2, "not a number or a list"),
    case(f"{SWEEP} -d noise:sigma=0/-1", 2, "sigma=-1", "outside its valid range"),
    case(f"{SWEEP} -d quantize:bits=8/0.5", 2, "bits=0.5", "outside its valid range"),
    case(f"{SWEEP} -d noise:sigma=0/0.1 -s 0.2", 2, "lists its own grid of sigma", "not both"),
    case("bits {model} -d noise:sigma=0/0.1", 2, "-d", "takes one sigma here, not a list (0/0.1)"),
    case("bits {model} -d quantize:bits=4+noise:sigma=0/0.1", 2, "takes one sigma here", id="bits-chain-list"),
    case("gate {model} --policy {listpolicy} --device cpu", 2, "distortion", "takes one sigma here"),
    case(f"{TRAIN} -p power:beta=0/0.5 -o {{dir}}/p.pt", 2, "--projection", "takes one beta here", id="train-p-list"),
    case("reproduce --at noise:sigma=0/0.1 --quick", 2, "--at", "takes one sigma here"),
]

EMPTY_PATHS = [
    case("sweep ''", 2, "MODEL", EMPTY, absent=("'.'", ".:"), id="sweep-model-empty"),
    case("sweep ' '", 2, "MODEL", EMPTY, id="sweep-model-blank"),
    case(f"{SIGN} -o ''", 2, "-o/--output", EMPTY, id="sweep-o-empty"),
    case(f"{SIGN} -o {{dir}}/r.csv -o ''", 2, "-o/--output", EMPTY, id="sweep-second-o-empty"),
    case(f"{SIGN} --log ''", 2, "--log", EMPTY, id="sweep-log-empty"),
    case(f"{SIGN} --data-root ''", 2, "--data-root", EMPTY, id="sweep-data-root-empty"),
    case("bits ''", 2, "MODEL", EMPTY, id="bits-model-empty"),
    case("bits {model} -o ''", 2, "-o/--output", EMPTY, id="bits-o-empty"),
    case("gate '' --policy {policy}", 2, "MODEL", EMPTY, id="gate-model-empty"),
    case("gate {model} --policy ''", 2, "--policy", EMPTY, id="gate-policy-empty"),
    case("gate {model} --policy {policy} --junit ''", 2, "--junit", EMPTY, id="gate-junit-empty"),
    case(f"{TRAIN} -o ''", 2, "-o/--output", EMPTY, id="train-o-empty"),
    case("reproduce -o ''", 2, "-o/--output", EMPTY, id="reproduce-o-empty"),
    case("plot '' -o {dir}/x.png", 2, EMPTY, id="plot-results-empty"),
    case("compare '' {data}", 2, EMPTY, id="compare-results-empty"),
    case("merge '' -o {dir}/m.csv", 2, EMPTY, id="merge-input-empty"),
    case("report '' -o {dir}/r.html", 2, EMPTY, id="report-results-empty"),
]

TRIALS = [
    case(f"{SIGN} --trials 100000000000", 2, "--trials", "more than 10,000 trials per point", "days"),
    case(f"{SIGN} --trials 10001", 2, "more than 10,000 trials per point"),
    case(f"{SIGN} --max-trials 100000000000", 2, "--max-trials", "10000"),
    case("demo --trials 100000000000", 2, "more than 10,000 trials"),
    case("reproduce --trials 100000000000", 2, "--trials", "10000"),
    case("gate {model} --policy {manytrials} --device cpu", 2, "more than 10,000 trials"),
]

IDX = [
    case(f"{MNIST} {{idx_empty}}", 2, "t10k-images-idx3-ubyte", "empty (0 bytes)", id="idx-images-empty"),
    case(f"{MNIST} {{idx_empty_labels}}", 2, "t10k-labels-idx1-ubyte", "empty (0 bytes)", id="idx-labels-empty"),
    case(f"{MNIST} {{idx_magic}}", 2, "t10k-images-idx3-ubyte", "not an idx file", "bad magic", id="idx-magic"),
    case(f"{MNIST} {{idx_code}}", 2, "not an idx file", id="idx-type-code"),
    case(f"{MNIST} {{idx_head}}", 2, "truncated inside its header", id="idx-3-bytes"),
    case(f"{MNIST} {{idx_short_head}}", 2, "truncated inside its header", id="idx-cut-dims"),
    case(f"{MNIST} {{idx_count}}", 2, "t10k-images-idx3-ubyte", "truncated", "20 x 28 x 28", id="idx-count-beyond"),
    case(f"{MNIST} {{idx_labels_count}}", 2, "t10k-labels-idx1-ubyte", "truncated", "50", id="idx-labels-count"),
    case(f"{MNIST} {{idx_dims}}", 2, "1 dimensions, its name says 3", id="idx-dims"),
    case(f"{SIGN} --dataset fashion-mnist --data-root {{idx_fashion}}", 2, "FashionMNIST", "truncated",
         id="idx-fashion"),
    case(f"{MNIST} {{idx_train}} --split train", 2, "train-images-idx3-ubyte", "truncated", id="idx-train-split"),
    case(f"{TRAIN} --dataset mnist --arch mlp --data-root {{idx_train}} -o {{dir}}/m.pt", 2,
         "train-images-idx3-ubyte", "truncated", id="train-idx-truncated"),
]

METRICS = [
    case(f"{SIGN} --metric mse", 2, "mse needs numeric targets", "class labels", "--metric error",
         absent=("values per input",)),
    case(f"{SIGN} --metric mae", 2, "mae needs numeric targets"),
    case(f"{SIGN} --metric mse --dataset tensors:{{data}}", 2, "mse needs numeric targets", id="mse-tensors"),
    case(f"{GATE} --metric mse", 2, "mse needs numeric targets", id="gate-mse"),
]

IMAGES = [
    case(f"{SIGN} --dataset imagefolder:{{img_garbage}} --image-size 8", 2, "bad.png", "not an image file",
         absent=("<_io", "BufferedReader"), id="image-garbage"),
    case(f"{SIGN} --dataset imagefolder:{{img_cut}} --image-size 8", 2, "bad.png", "truncated",
         absent=("<_io",), id="image-truncated"),
    case(f"{TRAIN} --dataset imagefolder:{{img_garbage}} -o {{dir}}/i.pt", 2, "bad.png", "not an image file",
         absent=("<_io",), id="train-image-garbage"),
]

CHECKPOINTS = [
    case(f"sweep {{cuda_wrapped}} {DIGITS_ARCH}", 0, "note", "took the state dict under key 'model_state'",
         "optimizer_state", id="sweep-cuda-model-state"),
    case("bits {cuda_wrapped} --arch {dir}/net.py:digits -q", 0, "note", "'model_state'", id="bits-cuda-model-state"),
    case("gate {cuda_wrapped} --policy {policy} --arch {dir}/net.py:digits --device cpu -q", 0, "note",
         "'model_state'", id="gate-cuda-model-state"),
    case(f"sweep {{nested}} {DIGITS_ARCH}", 0, "note", "'checkpoint/model'", id="sweep-nested"),
    case(f"sweep {{nested}} {DIGITS_ARCH} --key checkpoint/model", 0, id="sweep-nested-key"),
    *[case(f"sweep {{under_{k}}} {DIGITS_ARCH}", 0, "note", f"under key '{k}'", id=f"sweep-under-{k}")
      for k in ("model_state_dict", "net", "network", "ema", "module")],
    case(f"sweep {{two}} {DIGITS_ARCH}", 2, "holds 2 state dicts (model, ema)", "--key", id="sweep-two-candidates"),
    case("bits {two} --arch {dir}/net.py:digits", 2, "holds 2 state dicts", "--key", id="bits-two-candidates"),
    case(f"sweep {{two}} {DIGITS_ARCH} --key ema", 0, id="sweep-key-ema"),
    case(f"sweep {{two}} {DIGITS_ARCH} --key nosuch", 2, "--key nosuch", "(state dicts: model, ema)",
         id="sweep-key-missing"),
    case(f"sweep {{extra}} {DIGITS_ARCH}", 2, "2 unexpected", "aux_head", "--ignore-keys 'aux_head.*'",
         id="sweep-extra-head"),
    case("bits {extra} --arch {dir}/net.py:digits", 2, "unexpected", "--ignore-keys", id="bits-extra-head"),
    case("gate {extra} --policy {policy} --arch {dir}/net.py:digits --device cpu", 2, "--ignore-keys",
         id="gate-extra-head"),
    case(f"sweep {{extra}} {DIGITS_ARCH} --ignore-keys 'aux_head.*'", 0, "note", "left out 2 key(s)",
         id="sweep-ignore-keys"),
    case(f"sweep {{extra}} {DIGITS_ARCH} --ignore-keys 'zz*'", 2, "ignore-keys 'zz*' matches no key",
         id="sweep-ignore-keys-no-match"),
    case(f"sweep {{optonly}} {DIGITS_ARCH}", 2, "not a model or a state dict", id="sweep-optimizer-only"),
]

OUTPUTS = [
    case(f"sweep {{two_out}} {TWO_ARCH}:two", 2, "5 outputs", "10 classes", "[0] (2, 5), [1] (2, 10)",
         "--output-key N", absent=("--num-classes",), id="sweep-tuple-output"),
    case(f"sweep {{named_out}} {TWO_ARCH}:named", 2, "'logits' (2, 5), 'aux' (2, 10)", "--output-key",
         absent=("--num-classes",), id="sweep-dict-output"),
    case(f"sweep {{five}} {TWO_ARCH}:five", 2, "5 outputs", "10 classes", absent=("--num-classes", "--output-key"),
         id="sweep-factory-without-num-classes"),
    case(f"sweep {{five_n}} {TWO_ARCH}:five_n", 2, "pass --num-classes 10", id="sweep-factory-with-num-classes"),
    case("gate {two_out} --policy {policy} --arch {dir}/net2.py:two --device cpu", 2, "[0] (2, 5)",
         "--output-key N", absent=("--num-classes",), id="gate-tuple-output"),
    case(f"sweep {{two_out}} {TWO_ARCH}:two --output-key 1", 0, "warning", "chance level", id="sweep-output-key-1"),
]

PLOTS = [
    case("plot {layers} -o {dir}/c.png", 2, "per-layer sweep", "--kind layers", id="plot-layers-default-kind"),
    case("plot {layers} -o {dir}/f.png --kind frontier", 2, "--kind layers", id="plot-layers-frontier"),
]

CASES = REPEATS + LIST_FORM + EMPTY_PATHS + TRIALS + IDX + METRICS + IMAGES + CHECKPOINTS + OUTPUTS + PLOTS


def test_the_suite_is_large():
    assert len(CASES) + len(SHORTEN) >= 80


def check(c: Case, run_cli, files: dict[str, str]) -> str:
    argv = [part.format(**files) for part in shlex.split(c.argv)]
    code, _, err = run_cli(*argv)
    lines = err.strip().splitlines()
    assert code == c.code, err
    assert "Traceback" not in err, err
    if not c.words:
        assert lines == [], err
        return ""
    assert len(lines) == 1, err
    for word in c.words:
        assert word in lines[0], lines[0]
    for word in c.absent:
        assert word not in lines[0], lines[0]
    assert lines[0].startswith("wrobust: error: " if c.code else ("wrobust: warning: ", "wrobust: note: "))
    return lines[0]


@pytest.mark.parametrize("c", CASES)
def test_message(c: Case, files, layer_file, run_cli, monkeypatch):
    monkeypatch.chdir(files["dir"])
    check(c, run_cli, {**files, "layers": layer_file})


def test_a_cuda_checkpoint_needs_map_location_and_loads_with_a_note(files):
    """The file really is a CUDA checkpoint: on a machine without CUDA plain ``torch.load`` refuses it."""
    path = files["cuda_wrapped"]
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    with pytest.warns(UserWarning, match="took the state dict under key 'model_state'"):
        loaded = load_model(path, arch=f"{files['dir']}/net.py:digits")
    reference = load_model(BUILTIN)
    x = torch.randn(4, 1, 8, 8)
    assert all(p.device.type == "cpu" for p in loaded.module.parameters())
    assert torch.equal(loaded.module(x), reference.module(x))


def test_the_list_form_sweeps_each_distortion_over_its_own_grid(run_cli, tmp_path):
    out = tmp_path / "grids.csv"
    code, _, err = run_cli("sweep", BUILTIN, "--device", "cpu", "-q", "--trials", "2", "-o", out,
                           "-d", "noise:sigma=0/0.01/0.05", "-d", "quantize:bits=8/4")
    assert code == 0, err
    import pandas as pd

    rows = pd.read_csv(out)
    grids = {spec: sorted(set(g["strength"])) for spec, g in rows[rows["spec"] != "none"].groupby("spec")}
    assert grids == {"addnorm": [0.0, 0.01, 0.05], "quantize": [4.0, 8.0]}
    assert len(rows[(rows["spec"] == "addnorm") & (rows["strength"] == 0.05)]) == 2  # random: both trials


def test_an_empty_model_path_is_an_error_in_the_api_too():
    with pytest.raises(InputFileError, match="an empty model path"):
        load_model("")


def test_a_failed_download_keeps_its_reason(run_cli, tmp_path, monkeypatch):
    import torchvision.datasets.mnist as mnist

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(mnist, "download_and_extract_archive", offline)
    code, _, err = run_cli("sweep", BUILTIN, "-d", "sign", "--device", "cpu", "-q", "--dataset", "mnist",
                           "--data-root", tmp_path, "--download")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "download failed" in lines[0] and "Name or service not known" in lines[0], lines[0]


def test_a_long_transformers_message_ends_at_a_sentence(run_cli, tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "no-such-model-type"}')
    torch.save({}, folder / "pytorch_model.bin")
    code, _, err = run_cli("sweep", f"hf:{folder}", "-d", "sign", "--device", "cpu", "-q")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "cannot load the model" in lines[0] and lines[0].rstrip().endswith((".", "...", ")")), lines[0]


@pytest.mark.parametrize("argv,words", [
    ("--seq-len 500", ("--seq-len 500", "positions (128)", "--seq-len 128 or less")),
    ("--seq-len 129", ("--seq-len 129", "positions (128)")),
], ids=["seq-len-500", "seq-len-129"])
def test_seq_len_beyond_the_positions_is_one_line(run_cli, gpt2_folder, argv, words):
    code, _, err = run_cli("sweep", f"hf:{gpt2_folder}", "--dataset", f"text:{gpt2_folder.parent / 'eval.txt'}",
                           "-d", "sign", "--device", "cpu", "-q", *argv.split())
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "index out of range" not in err, err
    assert all(w in lines[0] for w in words), lines[0]


SHORTEN = [
    pytest.param("One. Two three four five six seven eight nine ten eleven.", 30, "One. Two three four five six ...",
                 id="sentence-too-short-to-keep"),
    pytest.param("First sentence here. Second sentence that runs on and on.", 40, "First sentence here. ...",
                 id="sentence-2"),
    pytest.param("a" * 10 + " " + "b" * 30, 20, "a" * 10 + " ...", id="word"),
    pytest.param("short", 200, "short", id="short"),
    pytest.param("no; cut here; please go on and on and on and on", 20, "no; cut here ...", id="semicolon"),
]


@pytest.mark.parametrize("text,limit,expected", SHORTEN)
def test_shorten_cuts_at_a_sentence_or_a_word(text, limit, expected):
    assert shorten(text, limit) == expected


@pytest.mark.parametrize("message,whole,expected", [
    ("Error downloading x:\nTried A, got:\n<urlopen error nope>", True,
     "Error downloading x: Tried A, got: <urlopen error nope>"),
    ("Error downloading x:\nTried A, got:\n<urlopen error nope>", False, "Error downloading x:"),
    ("", False, "RuntimeError"),
], ids=["whole", "first", "empty"])
def test_first_line_joins_lines_when_asked(message, whole, expected):
    assert first_line(RuntimeError(message), whole=whole) == expected


# ------------------------------------------------------------------ help texts

def test_sweep_help_groups_its_options_and_ends_with_three_examples(run_cli):
    import click

    from robustbench_w.cli.app import cli

    code, out, _ = run_cli("sweep", "--help")
    assert code == 0
    titles = ["Model:", "Data:", "Distortions:", "Trials:", "Outputs and what is measured:", "Speed:", "Examples:"]
    at = [out.index(f"\n{t}\n") for t in titles]
    assert at == sorted(at)
    examples = out[at[-1]:].strip().splitlines()[1:]
    assert len(examples) == 3 and all(line.strip().startswith("wrobust sweep ") for line in examples)
    for param in cli.commands["sweep"].params:  # every option listed once, in a section or under "Other options"
        if isinstance(param, click.Option):
            start = re.compile(r"\s+(-\w, )?" + re.escape(param.opts[-1]) + r"( |,|$)")
            assert sum(bool(start.match(line)) for line in out.splitlines()) == 1, param.opts
    assert "--image-mode L|RGB" in out


@pytest.mark.parametrize("command", ["train", "reproduce", "sweep", "gate", "bits"])
def test_every_option_has_a_help_text(command):
    import click

    from robustbench_w.cli.app import cli

    bare = [p.opts[0] for p in cli.commands[command].params if isinstance(p, click.Option) and not p.help]
    assert bare == []


# ------------------------------------------------------------------ figures: nothing clipped, nothing covered

def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


def test_the_heatmap_colourbar_label_is_inside_the_figure(layer_file):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from robustbench_w.report.plots import figure
    from robustbench_w.report.results import load_all

    fig = figure(load_all([layer_file]), "layers")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer, box = canvas.get_renderer(), fig.bbox
    labels = [t for ax in fig.axes for t in (ax.xaxis.label, ax.yaxis.label) if t.get_text()]
    assert any("change in error" in t.get_text() for t in labels)
    for t in labels:
        e = _extent(t, renderer)
        assert box.x0 - 1 <= e.x0 and e.x1 <= box.x1 + 1 and box.y0 - 1 <= e.y0 and e.y1 <= box.y1 + 1, t.get_text()


def test_the_reproduce_legend_covers_no_bar():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from robustbench_w.paper.figure import grid_figure

    rows = []
    for rule, base in (("none", 0.05), ("sign", 0.08), ("clip", 0.06)):
        for spec, error in (("none", base), ("sign", 0.9), ("round", 0.85)):  # tall bars fill the whole panel
            rows.append(dict(rule=rule, spec=spec, strength=math.nan, strength_name="", error_mean=error,
                             error_low=error - 0.01, error_high=error + 0.01))
        for s in (0.0, 0.5, 1.0):
            rows.append(dict(rule=rule, spec="addnorm", strength=s, strength_name="sigma", error_mean=base + s / 2,
                             error_low=base + s / 2 - 0.02, error_high=base + s / 2 + 0.02))
    fig = grid_figure(pd.DataFrame(rows), plt)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = _extent(fig.legends[0], renderer)
    bars = [p for p in fig.axes[0].patches]
    assert bars and not any(legend.overlaps(_extent(b, renderer)) for b in bars)
    assert not any(ax.get_legend() for ax in fig.axes)
    plt.close(fig)


@pytest.mark.parametrize("width,short", [(28, "layer4.0.downsample.0.weight"), (24, "l4.0.downsample.0.weight"),
                                         (15, "l4.0.d.0.weight"), (23, "l4.0.d.0.weight"), (12, "l4.…0.weight")])
def test_name_shortening_is_what_docs_bits_says(width, short):
    from robustbench_w.report.text import shorten_name

    assert shorten_name("layer4.0.downsample.0.weight", width) == short
    assert short in (Path(__file__).parent.parent / "docs" / "bits.md").read_text() or width == 28


def test_list_distortions_shows_the_list_form(run_cli):
    code, out, _ = run_cli("list", "distortions")
    assert code == 0 and "noise:sigma=0/0.01/0.05" in " ".join(out.split())
