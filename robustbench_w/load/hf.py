"""``hf:DIR``: a local Hugging Face model folder, read with ``transformers`` (the optional extra ``[hf]``).

The folder holds ``config.json`` and the weights (``model.safetensors``, ``pytorch_model.bin`` or a sharded
index of either), and optionally tokenizer files. Nothing is ever downloaded (``local_files_only=True``) and
no code from the folder is run (no ``trust_remote_code``). The model class is the first of the config's
``architectures`` that ``transformers`` knows (``GPT2LMHeadModel``, ``BertModel``, ...), else ``AutoModel``.
A causal language model (class name ending in ``ForCausalLM`` or ``LMHeadModel``) is marked as one, so that
``perplexity`` is its default metric. The key-value cache is switched off: a sweep never generates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..errors import InputFileError, InvalidValueError, first_line

PREFIX = "hf:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "tokenizer.model")
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


@dataclass
class HfModel:
    """What an ``hf:`` folder gives: the module, its tokenizer (or None), the class name, the weights file."""

    module: nn.Module
    tokenizer: object | None
    arch: str
    causal: bool
    weights: Path


def is_hf_spec(spec: object) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def import_transformers():
    try:
        import transformers
    except ImportError:
        raise InvalidValueError("hf:DIR needs the transformers package: pip install 'robustbench_w[hf]'") from None
    return transformers


def model_folder(spec: str) -> tuple[Path, Path]:
    """The folder an ``hf:DIR`` spec names and its weights file; one clear line when either is missing."""
    folder = Path(spec[len(PREFIX):]).expanduser()
    if not folder.is_dir():
        raise InputFileError(f"{folder}: no such folder (hf:DIR names a local Hugging Face model folder)")
    if not (folder / "config.json").is_file():
        raise InputFileError(f"{folder}: not a Hugging Face model folder (no config.json)")
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    if weights is None:
        raise InputFileError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES[:2])}) in the model folder")
    return folder, weights


@contextlib.contextmanager
def quiet(transformers) -> Iterator[None]:
    """No progress bars and only errors from ``transformers`` while a folder is read."""
    logging = transformers.utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def model_class(transformers, config) -> type:
    for name in getattr(config, "architectures", None) or ():
        cls = getattr(transformers, str(name), None)
        if isinstance(cls, type):
            return cls
    return transformers.AutoModel


def read_hf_folder(spec: str) -> HfModel:
    """Load ``hf:DIR`` (see the module docstring); every failure is one line naming the folder."""
    transformers = import_transformers()
    folder, weights = model_folder(spec)
    with quiet(transformers):
        try:
            config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
            cls = model_class(transformers, config)
            module = cls.from_pretrained(str(folder), config=config, local_files_only=True)
        except Exception as exc:  # transformers raises many types for a bad folder
            raise InputFileError(f"{folder}: cannot load the model: {type(exc).__name__}: {_reason(exc)}") from exc
        tokenizer = read_tokenizer(transformers, folder)
    if hasattr(module.config, "use_cache"):
        module.config.use_cache = False
    return HfModel(module, tokenizer, cls.__name__, cls.__name__.endswith(CAUSAL_SUFFIXES), weights)


def read_tokenizer(transformers, folder: Path) -> object | None:
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        return None
    try:
        return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # a broken tokenizer file
        raise InputFileError(f"{folder}: cannot load the tokenizer: {type(exc).__name__}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """transformers' message in one line: its sentences joined, cut at a sentence end (they run long)."""
    return first_line(exc, "(no message)", whole=True, limit=400)


def max_positions(module: object) -> int | None:
    """How many token positions a Hugging Face model has (``n_positions``, ``max_position_embeddings``), or None."""
    config = getattr(module, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None

