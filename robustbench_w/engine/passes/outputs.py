"""From what a model returns to the one tensor metrics see, and the per-batch view metrics read.

**Which output** (``--output-key KEY``): a model may return a tensor, a dict, a tuple or a Hugging Face
``ModelOutput``. The default is ``logits``, else ``last_hidden_state``, else the first tensor; ``KEY`` names
a dict entry, or a position in a tuple (``0``, ``1``). The choice is made once, on the probe batch.

**Pooling** (``--pool mean|cls|none``): token states ``(batch, tokens, features)`` become one vector per
input: ``mean`` averages the tokens the attention mask keeps, ``cls`` takes the first token, ``none`` keeps
them all. The default is ``mean`` for token states other than logits (``last_hidden_state``: a sentence
embedding) and ``none`` for logits (a language model's next-token scores) and for everything else.

:class:`View` holds one batch's reduced outputs (float), its inputs and labels, and computes what metrics
derive from them (argmax, log-probabilities, per-input vectors, next-token targets) once, when first asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import torch

from ...datasets.base import Inputs
from ...errors import InvalidValueError

POOLS = ("mean", "cls", "none")
DEFAULT_KEYS = ("logits", "last_hidden_state")
CLASS_KEYS = (None, "logits")  # outputs that are scores over classes (or tokens), not feature vectors


@dataclass(frozen=True)
class OutputPlan:
    """Which entry of the model's return value is measured (``None``: the value is a tensor), and pooling."""

    key: str | int | None
    pool: str

    @property
    def scores(self) -> bool:
        """Whether the measured output holds scores (logits) rather than features."""
        return self.key in CLASS_KEYS or isinstance(self.key, int)

    def reduce(self, raw: object, inputs: Inputs) -> torch.Tensor:
        """One batch's measured output, as float, pooled; at least 2-D ``(batch, ...)``."""
        out = raw if self.key is None else raw[self.key]
        out = out if out.dtype == torch.float32 else out.float()
        if out.dim() == 1:
            return out.unsqueeze(1)
        if self.pool == "none" or out.dim() != 3:
            return out
        if self.pool == "cls":
            return out[:, 0]
        mask = attention_mask(inputs, out)
        if mask is None:
            return out.mean(dim=1)
        weights = mask.to(out.dtype).unsqueeze(-1)
        return (out * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def attention_mask(inputs: Inputs, out: torch.Tensor) -> torch.Tensor | None:
    """The inputs' ``attention_mask`` when it fits token outputs ``(batch, tokens, ...)``, else None."""
    mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
    if mask is None or out.dim() < 3 or tuple(mask.shape) != tuple(out.shape[:2]):
        return None
    return mask


def plan_outputs(raw: object, key: str | None, pool: str | None, model: str) -> OutputPlan:
    """Resolve ``--output-key`` and ``--pool`` on the probe batch's return value ``raw``."""
    chosen = choose_key(raw, key, model)
    out = raw if chosen is None else raw[chosen]
    if pool is not None and pool not in POOLS:
        raise InvalidValueError(f"--pool must be one of {', '.join(POOLS)}, not {pool!r}")
    if pool in ("mean", "cls") and out.dim() != 3:
        what = f"{model}'s output" + (f" {describe_key(chosen)}" if chosen is not None else "")
        raise InvalidValueError(f"--pool {pool} needs token outputs (batch, tokens, features); {what} is "
                                f"{tuple(out.shape)}")
    scores = chosen in CLASS_KEYS or isinstance(chosen, int)
    default = "mean" if out.dim() == 3 and not scores else "none"
    return OutputPlan(chosen, pool or default)


def choose_key(raw: object, key: str | None, model: str) -> str | int | None:
    """The entry to measure (see the module docstring); a wrong ``--output-key`` lists what there is."""
    if isinstance(raw, torch.Tensor):
        if key is not None:
            raise InvalidValueError(f"--output-key {key}: {model} returns one tensor, not named outputs")
        return None
    if isinstance(raw, Mapping):
        names = [k for k, v in raw.items() if isinstance(v, torch.Tensor)]
        if key is not None and key not in names:
            raise InvalidValueError(f"--output-key {key}: {model} has no output {key!r} (outputs: {', '.join(names)})")
        return key or next((k for k in DEFAULT_KEYS if k in names), names[0] if names else None) or _none(raw, model)
    if isinstance(raw, (tuple, list)):
        places = [i for i, v in enumerate(raw) if isinstance(v, torch.Tensor)]
        if key is not None:
            if not str(key).isdigit() or int(key) not in places:
                raise InvalidValueError(f"--output-key {key}: {model} returns a tuple; its tensors are at positions "
                                        f"{', '.join(map(str, places))}")
            return int(key)
        return places[0] if places else _none(raw, model)
    return _none(raw, model)


def _none(raw: object, model: str):
    raise InvalidValueError(f"{model} returns a {type(raw).__name__} with no tensor in it: nothing to measure")


def describe_key(key: str | int | None) -> str:
    return "" if key is None else (f"[{key}]" if isinstance(key, int) else repr(key))


class View:
    """One batch as metrics see it: reduced outputs, inputs, labels, and what is derived from them."""

    def __init__(self, out: torch.Tensor, inputs: Inputs, labels: torch.Tensor | None):
        self.out, self.inputs, self.labels = out, inputs, labels

    @property
    def outputs(self) -> torch.Tensor:
        return self.out

    @property
    def batch(self) -> object:
        """The batch as a custom metric receives it: named inputs with ``labels``, or ``(inputs, labels)``."""
        if isinstance(self.inputs, dict):
            return {**self.inputs, **({} if self.labels is None else {"labels": self.labels})}
        return self.inputs, self.labels

    @cached_property
    def pred(self) -> torch.Tensor:
        """The argmax over the last dimension: a class per input, or a token per position."""
        return self.out.argmax(dim=-1)

    @cached_property
    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.out, dim=-1)

    @cached_property
    def mask(self) -> torch.Tensor | None:
        return attention_mask(self.inputs, self.out)

    @cached_property
    def vectors(self) -> torch.Tensor:
        """One vector per input ``(batch, features)``: the outputs flattened, masked-out tokens zeroed."""
        out = self.out if self.mask is None else self.out * self.mask.to(self.out.dtype).unsqueeze(-1)
        return out.reshape(len(out), -1)

    @cached_property
    def finite(self) -> torch.Tensor:
        """Per input: whether all its outputs are finite."""
        return torch.isfinite(self.out.reshape(len(self.out), -1)).all(dim=1)

    @cached_property
    def next_tokens(self) -> torch.Tensor:
        """The token each position predicts: ``input_ids`` shifted by one, ``(batch, tokens - 1)``."""
        return self.inputs["input_ids"][:, 1:]

    @cached_property
    def counted(self) -> torch.Tensor:
        """Which next-token predictions count (both tokens kept by the attention mask), as float ``(batch, tokens - 1)``."""
        if self.mask is None:
            return torch.ones(self.next_tokens.shape, dtype=self.out.dtype, device=self.out.device)
        keep = self.mask.to(self.out.dtype)
        return keep[:, 1:] * keep[:, :-1]

    @cached_property
    def targets(self) -> torch.Tensor:
        """The labels as float targets, one row per input ``(batch, values)``."""
        return self.labels.reshape(len(self.labels), -1).to(self.out.dtype)


class Kept:
    """The clean reference of one batch, kept between passes: only what the metrics compare with."""

    def __init__(self, view: View, kinds: tuple[str, ...]):
        for kind in kinds:
            setattr(self, kind, getattr(view, kind))
        self.finite = view.finite

    @property
    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in vars(self).values() if isinstance(v, torch.Tensor))

    def split(self, cut: int) -> tuple[Kept, Kept]:
        """The references of the first ``cut`` inputs and of the rest (a batch split in two, :mod:`.batchsize`)."""
        halves = []
        for part in (slice(0, cut), slice(cut, None)):
            half = object.__new__(Kept)
            for name, value in vars(self).items():
                setattr(half, name, value[part] if isinstance(value, torch.Tensor) else value)
            halves.append(half)
        return halves[0], halves[1]
