"""Datasets: small files written in each dataset's real on-disk format, read through the code path a user's
files take (torchvision's classes, ImageFolder, torch.load), then swept through the command line."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_w.datasets.base import (
    DATASETS,
    EvalSet,
    Normalization,
    limit_subset,
    load_dataset,
)
from robustbench_w.engine.passes.evaluate import Evaluator
from robustbench_w.errors import (
    InputFileError,
    InvalidValueError,
    UnknownNameError,
    WrobustWarning,
)
from robustbench_w.load.archspec import build_model
from robustbench_w.load.checkpoints import LoadedModel, save_checkpoint
from robustbench_w.load.inputs import load_inputs

SWEEP_SIGN = ("-d", "sign", "--device", "cpu", "-q")


# ------------------------------------------------------------------ writers of the real formats

def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (MNIST's format): magic 0x0000080N (unsigned bytes, N dimensions), big-endian sizes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s in ("t10k", "train")}
    labels = {s: np.arange(n, dtype=np.uint8) % 10 for s in ("t10k", "train")}
    for split in ("t10k", "train"):
        write_idx(root / folder / "raw" / f"{split}-images-idx3-ubyte", images[split])
        write_idx(root / folder / "raw" / f"{split}-labels-idx1-ubyte", labels[split])
    return images["t10k"], labels["t10k"]


def write_cifar10(root: Path, n: int = 12) -> tuple[np.ndarray, list[int]]:
    """cifar-10-batches-py: pickled dicts with 'data' (N x 3072, channel-major rows) and 'labels'."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = {name: rng.integers(0, 256, (n, 3072), dtype=np.uint8)
               for name in ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]}
    labels = [i % 10 for i in range(n)]
    for name, data in batches.items():
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels, "filenames": []}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}, f, protocol=2)
    return batches["test_batch"], labels


def write_cifar100(root: Path, n: int = 6) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("test", "train"):
        with open(folder / name, "wb") as f:
            pickle.dump({"data": np.zeros((n, 3072), np.uint8), "fine_labels": list(range(90, 90 + n)),
                         "coarse_labels": [0] * n}, f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [str(i) for i in range(100)]}, f, protocol=2)


def write_png_tree(root: Path, per_class: int = 3, classes=("cat", "dog")) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)  # sizes differ: resize and crop
            Image.fromarray(pixels).save(root / c / f"{i}.png")


def mlp_checkpoint(path: Path, input_shape: tuple[int, ...], classes: int = 10, dataset: str | None = None) -> Path:
    kwargs = {"in_features": int(np.prod(input_shape)), "hidden": (8,), "num_classes": classes}
    torch.manual_seed(0)
    model = build_model("mlp", **kwargs)
    return save_checkpoint(path, model, "mlp", kwargs, dataset=dataset, num_classes=classes, input_shape=input_shape)


# ------------------------------------------------------------------ torchvision datasets

@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_idx_files_load_and_sweep(run_cli, tmp_path, name, folder):
    images, labels = write_mnist(tmp_path / "data", folder)
    data = load_dataset(name, data_root=tmp_path / "data")
    assert data.x.dtype == torch.uint8 and data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert torch.equal(data.x[:, 0], torch.from_numpy(images)) and data.y.tolist() == labels.tolist()
    assert data.normalization.divisor == 255.0
    model = mlp_checkpoint(tmp_path / "m.pt", (1, 28, 28), dataset=name)
    code, _, err = run_cli("sweep", model, "--data-root", tmp_path / "data", "--limit", "10", *SWEEP_SIGN)
    assert code == 0, err


def test_cifar10_python_batches_load_both_splits_and_sweep(run_cli, tmp_path):
    test_rows, labels = write_cifar10(tmp_path)
    data = load_dataset("cifar10", data_root=tmp_path)
    assert data.input_shape == (3, 32, 32) and data.y.tolist() == labels
    assert torch.equal(data.x[0], torch.from_numpy(test_rows[0].reshape(3, 32, 32)))  # rows are channel-major
    assert len(load_dataset("cifar10", split="train", data_root=tmp_path)) == 5 * len(labels)
    model = mlp_checkpoint(tmp_path / "m.pt", (3, 32, 32))
    out = tmp_path / "rows.json"
    code, _, err = run_cli("sweep", model, "--dataset", "cifar10", "--data-root", tmp_path, *SWEEP_SIGN, "-o", out)
    assert code == 0, err
    assert json.loads(out.read_text())["meta"]["dataset"] == "cifar10"


def test_cifar100_and_svhn_load(tmp_path):
    from scipy.io import savemat

    write_cifar100(tmp_path)
    c100 = load_dataset("cifar100", data_root=tmp_path)
    assert c100.num_classes == 100 and c100.y.tolist() == list(range(90, 96))
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.array([[10], [1], [2], [10]])})
    svhn = load_dataset("svhn", data_root=tmp_path)
    assert svhn.input_shape == (3, 32, 32) and svhn.y.tolist() == [0, 1, 2, 0]  # SVHN's label 10 is digit 0


def test_missing_dataset_says_where_and_how_to_get_it(run_cli, tmp_path):
    model = mlp_checkpoint(tmp_path / "m.pt", (1, 28, 28), dataset="mnist")
    code, _, err = run_cli("sweep", model, "--data-root", tmp_path / "empty", *SWEEP_SIGN)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(tmp_path / "empty" / "MNIST" / "raw" / "t10k-images-idx3-ubyte") in err and "--download" in err


def test_failed_download_is_one_line(monkeypatch, tmp_path):
    import torchvision.datasets.mnist as tv_mnist

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(InputFileError, match="mnist \\(test\\): download failed"):
        load_dataset("mnist", data_root=tmp_path, download=True)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.getcwd, ())  # harmless, but a plain batch never names a function like it


@pytest.mark.parametrize("content, match", [
    (b"\x80\x02not a pickle", "test_batch is corrupt or truncated"),
    (pickle.dumps({"data": _RunsCode(), "labels": []}, protocol=2), "test_batch: not a plain cifar10 batch: it would run"),
])
def test_corrupt_or_tampered_cifar_batch_is_refused_before_unpickling(tmp_path, content, match):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(content)
    with pytest.raises(InputFileError, match=match):
        load_dataset("cifar10", data_root=tmp_path)


def test_unreadable_dataset_file_is_an_input_error(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(InputFileError, match="mnist: cannot read .*t10k-images-idx3-ubyte: truncated inside its header"):
        load_dataset("mnist", data_root=tmp_path)


# ------------------------------------------------------------------ imagefolder

def test_imagefolder_tree_of_pngs_resizes_crops_and_sweeps(run_cli, tmp_path):
    write_png_tree(tmp_path / "imagenet" / "val")
    data = load_dataset(f"imagefolder:{tmp_path / 'imagenet'}", image_size=16)
    assert data.x.shape == (6, 3, 16, 16) and data.x.dtype == torch.uint8
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1] and data.num_classes == 2
    assert data.normalization.mean == (0.485, 0.456, 0.406)
    subset = load_dataset(f"imagefolder:{tmp_path / 'imagenet'}", image_size=16, limit=2, seed=1)
    assert sorted(subset.y.tolist()) == [0, 1]  # balanced, chosen before decoding
    model = mlp_checkpoint(tmp_path / "m.pt", (3, 16, 16), classes=2)
    code, _, err = run_cli("sweep", model, "--dataset", f"imagefolder:{tmp_path / 'imagenet' / 'val'}",
                           "--image-size", "16", *SWEEP_SIGN)
    assert code == 0, err


def test_imagefolder_errors_name_the_path(tmp_path):
    with pytest.raises(InputFileError, match="no such folder"):
        load_dataset(f"imagefolder:{tmp_path / 'absent'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="one sub-folder of images per class"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    write_png_tree(tmp_path / "bad")
    (tmp_path / "bad" / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputFileError, match="broken.png: cannot read the image"):
        load_dataset(f"imagefolder:{tmp_path / 'bad'}", image_size=8)


# ------------------------------------------------------------------ tensors and synthetic

@pytest.mark.parametrize("form", ["dict", "tuple"])
def test_tensors_file_as_dict_or_tuple(tmp_path, form):
    x, y = torch.randint(0, 256, (6, 1, 4, 4), dtype=torch.uint8), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.save({"x": x, "y": y} if form == "dict" else (x, y), tmp_path / "t.pt")
    data = load_dataset(f"tensors:{tmp_path / 't.pt'}")
    assert torch.equal(data.x, x) and data.y.tolist() == y.tolist() and data.normalization.divisor == 255.0


@pytest.mark.parametrize("content, match", [
    ({"inputs": [0, 1]}, "expected a dict with 'x' and 'y'"),
    ({"x": torch.zeros(3, 2), "y": torch.zeros(2, dtype=torch.long)}, "'y' must be a tensor of length 3"),
    ({"x": torch.zeros(3, 2), "y": torch.zeros(3, 2, dtype=torch.long)}, "integer labels 'y' must be 1-D"),
    ({"input_ids": torch.zeros(3, 4), "attention_mask": torch.zeros(2, 4)}, "share one first dimension"),
    ({"x": torch.zeros(3)}, "'x' must be a tensor of shape"),
])
def test_bad_tensors_files(tmp_path, content, match):
    torch.save(content, tmp_path / "t.pt")
    with pytest.raises(InputFileError, match=match):
        load_dataset(f"tensors:{tmp_path / 't.pt'}")


def test_synthetic_sweeps_without_labels_and_reports_agreement(run_cli, tmp_path):
    model = tmp_path / "m.pt"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(12, 5)).state_dict(), model)
    (tmp_path / "arch.py").write_text(
        "from torch import nn\ndef net():\n    return nn.Sequential(nn.Flatten(), nn.Linear(12, 5))\n")
    for out in ("rows.json", "summary.md"):
        code, stdout, err = run_cli("sweep", model, "--arch", f"{tmp_path / 'arch.py'}:net", "--dataset", "synthetic",
                                    "--input-shape", "3,2,2", "--limit", "64", "-d", "noise", "-s", "0.5",
                                    "--trials", "2", "--device", "cpu", "-o", tmp_path / out)
        assert code == 0, err
    assert "no labels" in stdout
    rows = pd.DataFrame(json.loads((tmp_path / "rows.json").read_text())["rows"])
    assert rows.error.isna().all() and rows.agreement.notna().all() and rows.n.tolist() == [64, 64, 64]


def test_synthetic_is_seeded_and_needs_a_shape():
    a = load_dataset("synthetic", input_shape=(3, 4, 4), limit=5, seed=1)
    b = load_dataset("synthetic", input_shape=(3, 4, 4), limit=5, seed=1)
    assert torch.equal(a.x, b.x) and a.y is None and len(a) == 5
    assert not torch.equal(a.x, load_dataset("synthetic", input_shape=(3, 4, 4), limit=5, seed=2).x)
    with pytest.raises(InvalidValueError, match="--input-shape"):
        load_dataset("synthetic")


def test_synthetic_inputs_are_standard_after_the_models_normalisation():
    norm = Normalization(16.0, (0.3,), (0.4,))
    data = load_dataset("synthetic", input_shape=(1, 8, 8), limit=2000, model_normalization=norm)
    z = data.normalization.apply(data.x)
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05


# ------------------------------------------------------------------ names, splits, limits, normalisation

def test_names_with_a_colon_resolve_by_prefix():
    assert DATASETS.get("imagefolder").usage == "imagefolder:PATH"
    with pytest.raises(InvalidValueError, match="needs an argument: --dataset tensors:FILE"):
        load_dataset("tensors")
    with pytest.raises(InvalidValueError, match="takes no argument"):
        load_dataset("digits:extra")
    with pytest.raises(UnknownNameError, match="did you mean 'imagefolder'"):
        load_dataset("imagefoldr:/x")


def test_limit_is_seeded_and_class_balanced():
    data = load_dataset("digits", limit=30, seed=3)
    assert torch.bincount(data.y).tolist() == [3] * 10
    assert torch.equal(data.x, load_dataset("digits", limit=30, seed=3).x)
    assert load_dataset("digits", split="train").split == "train" and len(load_dataset("digits", split="train")) == 1442


def test_mean_and_std_override_the_preset():
    data = load_dataset("digits", mean=(0.5,), std=(0.25,))
    assert data.normalization == Normalization(16.0, (0.5,), (0.25,))
    with pytest.raises(InvalidValueError, match="--std must be positive"):
        load_dataset("digits", std=(0.0,))
    with pytest.raises(InvalidValueError, match="3 mean values for inputs with 1 channels"):
        load_dataset("digits", mean=(0.1, 0.2, 0.3), std=(1.0,))


def test_checkpoint_normalisation_wins_unless_overridden(tmp_path):
    model = mlp_checkpoint(tmp_path / "m.pt", (1, 8, 8), dataset="digits")
    plain = load_inputs(model, device="cpu")  # the checkpoint records none: the dataset's preset
    assert plain.data.normalization == plain.model.normalization == load_dataset("digits").normalization
    custom = LoadedModel(module=build_model("mlp", in_features=64, hidden=(4,)).eval(), name="m",
                         normalization=Normalization(16.0, (0.1,), (0.2,)))
    assert load_inputs(custom, "digits", device="cpu").data.normalization.mean == (0.1,)
    overridden = load_inputs(custom, "digits", device="cpu", mean=(0.7,))
    assert overridden.data.normalization.mean == (0.7,) and overridden.model.normalization.mean == (0.7,)
    assert custom.normalization.mean == (0.1,)  # the caller's model is left as it was


# ------------------------------------------------------------------ evaluation: where the inputs live

def test_streamed_raw_and_prepared_evaluation_agree():
    data = load_dataset("digits", limit=100)
    torch.manual_seed(0)
    model = build_model("mlp", hidden=(16,)).eval()
    results = {}
    for mode, (prepare, budget) in {"prepared": (1 << 30, None), "raw": (0, None), "stream": (0, 0)}.items():
        evaluator = Evaluator(model, data, batch_size=32, prepare_budget=prepare, budget=budget)
        assert evaluator.mode == mode
        results[mode] = evaluator.run()
    assert results["prepared"] == results["raw"] == results["stream"]


def test_evalset_without_labels_subsets_by_seed_in_order():
    data = EvalSet("u", torch.arange(20).reshape(20, 1), None, None)
    picked = [limit_subset(data, 5, seed).x.flatten().tolist() for seed in (0, 0, 1)]
    assert picked[0] == picked[1] == sorted(picked[0]) and len(picked[0]) == 5 and picked[0] != picked[2]
    with pytest.warns(WrobustWarning, match="--limit 50 is more than the 20 examples"):
        assert limit_subset(data, 50) is data
