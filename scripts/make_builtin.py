"""Regenerate the built-in checkpoint ``robustbench_w/assets/digits-mlp.pt``.

    python scripts/make_builtin.py            # writes the asset, prints its test error

An MLP 64-128-128-10 (ReLU) trained on the ``digits`` train split (1,442 images) with Adam (lr 1e-3,
weight decay 1e-4), batch 64, 60 epochs, seed 0, on the CPU, with ordinary (unprojected) training.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from robustbench_w.datasets.base import load_dataset
from robustbench_w.load.archspec import build_arch
from robustbench_w.load.checkpoints import save_checkpoint

ARCH_KWARGS = {"in_features": 64, "hidden": [128, 128], "num_classes": 10}
EPOCHS, BATCH, LR, SEED = 60, 64, 1e-3, 0


def main(out: Path) -> None:
    torch.manual_seed(SEED)
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    norm = train.normalization
    x, y = norm.apply(train.x), train.y
    model = build_arch("mlp", **ARCH_KWARGS)
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(SEED)
    losses = []
    for _ in range(EPOCHS):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(BATCH):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    model.eval()
    with torch.no_grad():
        error = (model(norm.apply(test.x)).argmax(1) != test.y).float().mean().item()
    train_record = {"rule": "none", "epochs": EPOCHS, "batch_size": BATCH, "lr": LR, "optimizer": "adam",
                    "seed": SEED, "loss": losses, "test_error": error, "script": "scripts/make_builtin.py"}
    save_checkpoint(out, model, "mlp", ARCH_KWARGS, dataset="digits", num_classes=10, input_shape=(1, 8, 8),
                    normalization=norm, train=train_record)
    print(f"wrote {out}: test error {error:.4f}, final train loss {losses[-1]:.4f}")


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "robustbench_w" / "assets" / "digits-mlp.pt"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
