"""``text:FILE`` and ``jsonl:FILE``: text, tokenised with the model folder's tokenizer (``hf:DIR``).

- ``text:FILE``: a UTF-8 text file, tokenised as one stream (no special tokens added) and cut into
  consecutive windows of ``--seq-len`` tokens (default 128); the last, shorter window is padded and its
  padding masked out (dropped when it has fewer than two tokens: nothing to predict). ``--limit`` counts
  windows. No labels: language models are measured on the text itself (next-token ``perplexity``).
  The file is read and tokenised in a stream of pieces of about :data:`STREAM_CHARS` characters, each cut
  after a line break followed by a non-space character (where byte-level BPE and whitespace pre-tokenisers
  never join two tokens, so the tokens are those of the whole text; a tokenizer that adds a prefix at every
  call, such as SentencePiece's dummy prefix, may differ at the start of each piece). With ``--limit`` the
  file is read twice: once to count the windows, once to keep the seeded subset of them (the same windows
  as a subset of the whole set): memory does not grow with the file beyond the windows kept. A file shorter
  than one piece is tokenised whole, as before.
- ``jsonl:FILE``: one JSON object per line with a ``text`` string and an optional ``label`` (an integer
  class or a number: a regression target; every line has one, or none does). Each text is tokenised with
  the tokenizer's special tokens, truncated to ``--seq-len`` tokens and padded to the longest one.

Both give named inputs ``input_ids`` and ``attention_mask`` of shape ``(N, T)``, passed to the model as
keyword arguments. The tokenizer is a ``transformers`` tokenizer or a ``tokenizers.Tokenizer``; it comes
from the model (an ``hf:DIR`` folder with tokenizer files).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import InputFileError, InvalidValueError
from .base import EvalSet, register_dataset, subset_index

DEFAULT_SEQ_LEN = 128
STREAM_CHARS = 1 << 22  # characters of text tokenised at a time (4 Mi)
SAFE_BREAK = re.compile(r"(?<=\n)(?=\S)")  # just after a line break that a non-space character follows


def check_seq_len(seq_len: int | None) -> int:
    n = DEFAULT_SEQ_LEN if seq_len is None else int(seq_len)
    if n < 2:
        raise InvalidValueError(f"--seq-len must be at least 2, not {n}")
    return n


def need_tokenizer(tokenizer: object, kind: str) -> object:
    if tokenizer is None:
        raise InvalidValueError(f"dataset {kind}:FILE needs a tokenizer: load the model as hf:DIR from a folder "
                                f"that holds its tokenizer files (tokenizer.json, vocab files)")
    return tokenizer


def encode(tokenizer: object, texts: list[str], special: bool, max_length: int | None = None) -> list[list[int]]:
    """Token ids of each text, with ``transformers``' tokenizers (callable) or a ``tokenizers.Tokenizer``."""
    if callable(tokenizer):
        cut = {"truncation": True, "max_length": max_length} if max_length else {}
        ids = tokenizer(texts, add_special_tokens=special, verbose=False, **cut)["input_ids"]
    else:
        ids = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=special)]
    return [list(map(int, row))[:max_length] if max_length else list(map(int, row)) for row in ids]


def pad_id(tokenizer: object) -> int:
    value = getattr(tokenizer, "pad_token_id", None)
    return int(value) if isinstance(value, int) else 0


def check_file(path: Path, kind: str) -> Path:
    if not path.is_file():
        raise InputFileError(f"{path}: no such file ({kind}:FILE needs a UTF-8 text file)")
    return path


def read_text(path: Path, kind: str) -> str:
    check_file(path, kind)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror or exc}") from None


def windows(ids: list[int] | torch.Tensor, seq_len: int, pad: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of consecutive windows; the last one padded (if >= 2 tokens)."""
    flat = torch.as_tensor(ids, dtype=torch.long)
    full = len(flat) // seq_len
    rest = flat[full * seq_len:]
    ids_w = flat[:full * seq_len].reshape(full, seq_len)
    mask = torch.ones_like(ids_w)
    if len(rest) >= 2:
        tail = torch.full((1, seq_len), pad, dtype=torch.long)
        tail[0, :len(rest)] = rest
        tail_mask = (torch.arange(seq_len) < len(rest)).long().unsqueeze(0)
        ids_w, mask = torch.cat([ids_w, tail]), torch.cat([mask, tail_mask])
    return {"input_ids": ids_w, "attention_mask": mask}


@register_dataset("text", "a UTF-8 text file, tokenised with the model's tokenizer (hf:DIR) into windows of "
                  "--seq-len tokens (default 128); language models: perplexity", argument="FILE")
def load_text(split: str = "test", source: str = "", tokenizer: object = None, seq_len: int | None = None,
              limit: int | None = None, seed: int = 0, **_: object) -> EvalSet:
    path = check_file(Path(source).expanduser(), "text")
    tokenizer = need_tokenizer(tokenizer, "text")
    n = check_seq_len(seq_len)
    keep = None
    if limit is not None:
        total = sum(len(ids) for ids in token_pieces(path, tokenizer))
        count = total // n + (total % n >= 2)
        keep = set(subset_index(None, count, limit, seed).tolist()) if 0 < limit < count else None
    ids, total = stream_windows(token_pieces(path, tokenizer), n, keep)
    if not len(ids):
        raise InputFileError(f"{path}: {total} token(s): a text needs at least two tokens")
    return EvalSet(f"text:{source}", windows(ids, n, pad_id(tokenizer)), None, None, split=split)


def text_pieces(path: Path, chars: int | None = None) -> Iterator[str]:
    """The text of ``path`` in pieces of about ``chars`` characters, each cut after a line break that a
    non-space character follows (a piece without one grows until it has one)."""
    chars = chars or STREAM_CHARS
    rest = ""
    try:
        with path.open(encoding="utf-8") as f:
            while block := f.read(chars):
                rest += block
                cut = _cut(rest)
                if cut:
                    yield rest[:cut]
                    rest = rest[cut:]
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if rest:
        yield rest


def _cut(text: str) -> int:
    """The last :data:`SAFE_BREAK` of ``text`` (0: none)."""
    i = len(text) - 1
    while (i := text.rfind("\n", 0, i)) >= 0:
        if not text[i + 1].isspace():
            return i + 1
    return 0


def token_pieces(path: Path, tokenizer: object) -> Iterator[list[int]]:
    """The token ids of the text, piece by piece: a text of one piece tokenised whole; a longer one with each
    piece cut again at its safe line breaks and tokenised as a batch (the tokenizer's threads share it)."""
    pieces = text_pieces(path)
    first = next(pieces, "")
    second = next(pieces, None)
    if second is None:
        yield encode(tokenizer, [first], special=False)[0]
        return
    for piece in itertools.chain([first, second], pieces):
        yield list(itertools.chain.from_iterable(encode(tokenizer, SAFE_BREAK.split(piece), special=False)))


def stream_windows(pieces: Iterator[list[int]], seq_len: int, keep: set[int] | None) -> tuple[torch.Tensor, int]:
    """The token ids of the windows numbered in ``keep`` (all when None) and the tail, concatenated; and the
    number of tokens read."""
    kept, carry, index, total = [], [], 0, 0
    for ids in pieces:
        total += len(ids)
        carry.extend(ids)
        full = len(carry) // seq_len
        for w in range(full):
            if keep is None or index + w in keep:
                kept.append(torch.tensor(carry[w * seq_len:(w + 1) * seq_len], dtype=torch.long))
        index, carry = index + full, carry[full * seq_len:]
    if len(carry) >= 2 and (keep is None or index in keep):
        kept.append(torch.tensor(carry, dtype=torch.long))
    return (torch.cat(kept) if kept else torch.empty(0, dtype=torch.long)), total


def read_jsonl(path: Path) -> tuple[list[str], list[object]]:
    """The ``text`` and ``label`` fields of every non-empty line."""
    texts, labels = [], []
    for number, line in enumerate(read_text(path, "jsonl").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise InputFileError(f"{path}:{number}: not valid JSON ({exc})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputFileError(f"{path}:{number}: expected an object with a 'text' string")
        label = obj.get("label")
        if label is not None and (isinstance(label, bool) or not isinstance(label, (int, float))):
            raise InputFileError(f"{path}:{number}: 'label' must be a number, not {label!r}")
        texts.append(obj["text"])
        labels.append(label)
    if not texts:
        raise InputFileError(f"{path}: no lines with a 'text'")
    if not any(t.strip() for t in texts):
        raise InputFileError(f"{path}: every 'text' of its {len(texts)} line(s) is empty: nothing to evaluate "
                             "(a text needs at least one token)")
    return texts, labels


def label_tensor(labels: list[object], path: Path) -> torch.Tensor | None:
    """Integer classes (long), numeric targets (float), or None when no line has a label."""
    given = [v is not None for v in labels]
    if not any(given):
        return None
    if not all(given):
        raise InputFileError(f"{path}: text {given.index(False) + 1} has no 'label' while others have one "
                             f"(give every line a label, or none)")
    if all(isinstance(v, int) for v in labels):
        y = torch.tensor(labels, dtype=torch.long)
        if int(y.min()) < 0:
            raise InputFileError(f"{path}: negative class labels")
        return y
    return torch.tensor(labels, dtype=torch.float32)


@register_dataset("jsonl", "one JSON object per line: 'text' and an optional 'label' (class or number), "
                  "tokenised with the model's tokenizer (hf:DIR), truncated to --seq-len", argument="FILE")
def load_jsonl(split: str = "test", source: str = "", tokenizer: object = None, seq_len: int | None = None,
               **_: object) -> EvalSet:
    path = Path(source).expanduser()
    texts, labels = read_jsonl(path)
    tokenizer = need_tokenizer(tokenizer, "jsonl")
    rows = encode(tokenizer, texts, special=True, max_length=check_seq_len(seq_len))
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id(tokenizer), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):  # one short Python loop at load time, once
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    y = label_tensor(labels, path)
    return EvalSet(f"jsonl:{source}", {"input_ids": ids, "attention_mask": mask}, y, None, split=split)
