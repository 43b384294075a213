"""Per-layer reuse on stacks of blocks (GPT-2 ``transformer.h``): the same rows as the naive path, fewer
block forwards; models whose list of blocks is not a stack fall back with the reason in meta."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_w.engine.runs.sweep import sweep
from robustbench_w.load.checkpoints import load_model

COLUMNS = ["layer", "strength", "trial", "perplexity", "weight_change", "nonfinite"]


@pytest.fixture(scope="module")
def gpt2_blocks(tmp_path_factory):
    """A 4-block tiny GPT-2 (as initialised, seeded) with a word tokenizer; ``eval.txt`` beside it."""
    from tiny_hf import markov_text, word_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("blocks") / "gpt2"
    torch.manual_seed(0)
    tokenizer = word_tokenizer(markov_text(2000, seed=1))
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=4, n_head=2,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder.parent / "eval.txt").write_text(markov_text(600, seed=2), encoding="utf-8")
    return folder


def counted_sweep(folder, reuse: bool, **kw):
    """A per-block sweep and the number of block forwards it ran (counted on each block's attention: a block
    that is skipped never calls it)."""
    loaded = load_model(f"hf:{folder}")
    calls = [0]
    for block in loaded.module.transformer.h:
        block.attn.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    rows = sweep(loaded, f"text:{folder.parent / 'eval.txt'}", ["noise", "sign"], strengths=[0.5], trials=2,
                 per_layer=True, groups="auto", reuse_activations=reuse, seq_len=32, batch_size=4, device="cpu", **kw)
    return rows, calls[0]


@pytest.mark.parametrize("pristine", ["device", "none"])
def test_per_block_reuse_equals_naive_rows_with_fewer_block_forwards(gpt2_blocks, pristine):
    reused, n_reused = counted_sweep(gpt2_blocks, True, pristine=pristine)
    naive, n_naive = counted_sweep(gpt2_blocks, False, pristine=pristine)
    meta = reused.attrs["meta"]
    assert meta["units"][0].startswith("transformer.h.0=") and len(meta["units"]) == 4  # --groups auto: per block
    assert meta["activation_reuse"]["stack"] == "transformer.h"
    assert set(meta["activation_reuse"]["reused"]) == {"transformer.h.1", "transformer.h.2", "transformer.h.3"}
    assert reused["perplexity"].nunique() > 4
    pd.testing.assert_frame_equal(reused[COLUMNS], naive[COLUMNS], check_exact=True)
    assert n_reused < 0.8 * n_naive, (n_reused, n_naive)


class Shuffled(nn.Module):
    """A list of blocks run out of order: not a stack."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        for i in (1, 0, 2):
            x = torch.tanh(self.blocks[i](x))
        return self.head(x)


@pytest.mark.filterwarnings("ignore:the clean model is at chance level")
def test_a_list_run_out_of_order_falls_back_with_the_reason():
    gen = torch.Generator().manual_seed(2)
    data = [(torch.randn(16, 8, generator=gen), torch.randint(0, 3, (16,), generator=gen))]
    rows = sweep(Shuffled(), data, ["noise"], strengths=[0.3], trials=1, per_layer=True, groups="auto",
                 device="cpu")
    reuse = rows.attrs["meta"]["activation_reuse"]
    assert reuse["reused"] == {} and "in order" in reuse["stack_reason"]
    assert rows.attrs["meta"]["units"][0] == "blocks.0=blocks.0.weight"
