"""Tiny Hugging Face models and their data, built inside the tests (nothing is downloaded).

A seeded Markov chain over a few words writes the texts; a word-level tokenizer is built on them with the
``tokenizers`` package; a one-layer GPT-2 is trained on one text for 200 steps (a few seconds on one CPU
thread), and a one-layer BERT encoder is left as initialised. Both are saved as Hugging Face folders.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

WORDS = ("the cat dog bird sat ran sang on in under a tree mat house road and while then near big small red "
         "old green quick slow happy").split()
SEQ_LEN = 128


def markov_text(n_words: int, seed: int) -> str:
    """A text where each word is followed by one of three likely successors (learnable, not trivial)."""
    rng = random.Random(seed)
    table = random.Random(0)
    successors = {w: table.sample(WORDS, 3) for w in WORDS}
    word, out = "the", []
    for i in range(n_words):
        out.append(word)
        word = rng.choice(successors[word]) if rng.random() < 0.9 else rng.choice(WORDS)
        if i % 12 == 11:
            out.append("\n")
    return " ".join(out)


def word_tokenizer(text: str, bert: bool = False):
    """A word-level fast tokenizer (``transformers`` wrapper) with [PAD], [UNK] and, for BERT, [CLS]/[SEP]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([text], trainers.WordLevelTrainer(special_tokens=specials))
    if bert:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def tiny_gpt2(folder: Path, steps: int = 200) -> Path:
    """Train a tiny GPT-2 on a Markov text and save it with its tokenizer; also write ``eval.txt`` beside it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    train = markov_text(6000, seed=1)
    tokenizer = word_tokenizer(train)
    ids = torch.tensor(tokenizer(train, add_special_tokens=False, verbose=False)["input_ids"])
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=SEQ_LEN, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = GPT2LMHeadModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - SEQ_LEN, (4,), generator=gen)
        batch = torch.stack([ids[s:s + SEQ_LEN] for s in starts])
        logits = model(input_ids=batch).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder.parent / "eval.txt").write_text(markov_text(1500, seed=2), encoding="utf-8")
    return folder


def tiny_bert(folder: Path) -> Path:
    """A one-layer BERT encoder (as initialised, seeded) with a word tokenizer; ``sentences.jsonl`` beside it."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    text = markov_text(2000, seed=3)
    tokenizer = word_tokenizer(text, bert=True)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    lines = [" ".join(markov_text(6 + i % 9, seed=10 + i).split()) for i in range(24)]
    (folder.parent / "sentences.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in lines))
    return folder
