"""Sweep any nn.Module from Python: keyword inputs, a dict of outputs, your own metric.

    python examples/any_model.py

The model below takes named tensors (as Hugging Face models do) and returns a dict. The batches are a plain
list of dicts (a DataLoader works the same way); each is passed to the model as keyword arguments. The
metric is a function ``(outputs, clean_outputs, batch) -> one score per input``; registered metrics
(``wrobust list metrics``) are named by string.
"""

import torch
from torch import nn

import robustbench_w as rw


class Encoder(nn.Module):
    def __init__(self, vocab: int = 100, dim: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.layer = nn.Linear(dim, dim)

    def forward(self, input_ids, attention_mask):
        states = torch.tanh(self.layer(self.embed(input_ids)))
        return {"last_hidden_state": states, "mask": attention_mask}


def worst_token_change(outputs, clean_outputs, batch):
    """Per input: the largest change of any value of its pooled embedding."""
    return (outputs - clean_outputs).abs().amax(dim=1)


torch.manual_seed(0)
batches = [{"input_ids": torch.randint(0, 100, (8, 12)), "attention_mask": torch.ones(8, 12, dtype=torch.long)}
           for _ in range(4)]
rows = rw.sweep(Encoder(), batches, distortions=["noise"], strengths=[0.0, 0.1, 0.3], trials=3, device="cpu",
                metric=["cosine", worst_token_change], output_key="last_hidden_state", pool="mean")
summary = rw.summarize(rows)
columns = ["spec", "strength", "trials", "cosine_mean", "cosine_ci_low", "worst_token_change_mean"]
print(summary[columns].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
