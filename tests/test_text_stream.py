"""text:FILE read in a stream: the same windows as the whole text, and memory that does not grow with the file."""

from __future__ import annotations

import tracemalloc

import pytest
import torch

from robustbench_w.datasets import text as text_set
from robustbench_w.datasets.base import limit_subset


@pytest.fixture(scope="module")
def tokenizers_and_text():
    from tiny_hf import markov_text, word_tokenizer
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    sample = markov_text(3000, seed=4).replace(" \n ", "\n").replace("\n", "\n\n", 3)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([sample], vocab_size=300, min_frequency=1)
    return {"word": word_tokenizer(sample), "bpe": PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer)}, sample


@pytest.mark.parametrize("kind", ["word", "bpe"])
@pytest.mark.parametrize("limit", [None, 7])
def test_streamed_windows_are_the_whole_texts(tmp_path, monkeypatch, tokenizers_and_text, kind, limit):
    tokenizers, sample = tokenizers_and_text
    path = tmp_path / "t.txt"
    path.write_text(sample, encoding="utf-8")
    whole = text_set.load_text(source=str(path), tokenizer=tokenizers[kind], seq_len=16)
    if limit:
        whole = limit_subset(whole, limit, seed=3)
    monkeypatch.setattr(text_set, "STREAM_CHARS", 301)  # many pieces
    assert len(list(text_set.text_pieces(path))) > 20
    streamed = text_set.load_text(source=str(path), tokenizer=tokenizers[kind], seq_len=16, limit=limit, seed=3)
    assert len(streamed) == len(whole) == (limit or len(whole))
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(streamed.x[key], whole.x[key])


def peak_bytes(path, tokenizer) -> int:
    tracemalloc.start()
    try:
        data = text_set.load_text(source=str(path), tokenizer=tokenizer, seq_len=32, limit=64)
        return tracemalloc.get_traced_memory()[1], len(data)
    finally:
        tracemalloc.stop()


def test_a_large_text_with_a_limit_keeps_memory_flat(tmp_path, monkeypatch, tokenizers_and_text):
    tokenizers, sample = tokenizers_and_text
    monkeypatch.setattr(text_set, "STREAM_CHARS", 1 << 14)
    peaks = {}
    for copies in (20, 160):  # about 0.3 MB and 2.2 MB of text
        path = tmp_path / f"{copies}.txt"
        path.write_text((sample + "\n") * copies, encoding="utf-8")
        peaks[copies], n = peak_bytes(path, tokenizers["word"])
        assert n == 64
    size = (tmp_path / "160.txt").stat().st_size
    assert peaks[160] < size / 3, peaks  # far below the file (a whole read holds the text and its token list)
    assert peaks[160] < 1.5 * peaks[20], peaks  # flat: 8x the file, not 8x the memory
