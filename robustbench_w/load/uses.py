"""Which parameters the forward pass multiplies with data: recorded while the probe batch runs.

:func:`recording` runs a block under a :class:`torch.overrides.TorchFunctionMode` that notes, for every call of a
multiplying operation, which of the model's parameters are its operands, and how:

| operation (``torch.*``, ``F.*``, ``Tensor.*``, ``aten.*``) | multiplied operands | use |
|---|---|---|
| ``linear``, ``bilinear`` | every parameter but ``bias`` | ``linear`` |
| ``conv1d/2d/3d``, ``conv_transpose1d/2d/3d``, ``convolution`` | every parameter but ``bias`` | ``conv`` |
| ``lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu`` and their ``_cell`` forms | the flat weights of 2 or more dims | ``recurrent`` |
| ``multi_head_attention_forward`` | ``in_proj_weight``, ``q/k/v_proj_weight``, ``out_proj_weight`` | ``attention`` |
| ``matmul``, ``@``, ``mm``, ``bmm``, ``mv``, ``einsum``, ``tensordot``, ... | every parameter | ``matmul`` |
| ``addmm``, ``baddbmm``, ``addbmm``, ``addmv``, ``addr`` (GPT-2's ``Conv1D``) | every parameter but the added ``input`` | ``matmul`` |
| ``embedding``, ``embedding_bag`` | the table (looked up, not multiplied) | ``embedding`` |

A parameter that is an operand but not multiplied (a bias added by ``linear``, ``addmm``'s ``input``, an
attention's ``bias_k``) is noted as ``bias``. The mode is popped while an operation runs, so the operations
inside ``multi_head_attention_forward`` are not seen twice. Code that Python does not see (a TorchScript program)
records nothing: then :attr:`Uses.traced` is False and :attr:`Uses.why` says why.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from .layers import unique_named_parameters

LINEAR_OPS = {"linear": 2, "bilinear": 3}  # op -> position of its bias
CONV_OPS = {**{f"conv{d}d": 2 for d in (1, 2, 3)}, **{f"conv_transpose{d}d": 2 for d in (1, 2, 3)},
            "convolution": 2, "conv_tbc": 2}
RECURRENT_OPS = frozenset({"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
                           "rnn_relu_cell"})
ADDED_MATMUL_OPS = frozenset({"addmm", "baddbmm", "addbmm", "addmv", "addr"})  # input + a product
MATMUL_OPS = frozenset({"matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "mv", "einsum", "tensordot", "inner",
                        "chain_matmul", "multi_dot", "_addmm_activation"})
EMBEDDING_OPS = frozenset({"embedding", "embedding_bag"})
ATTENTION_OP = "multi_head_attention_forward"
ATTENTION_ARGS = inspect.signature(F.multi_head_attention_forward).parameters


@dataclass
class Uses:
    """``roles``: parameter name -> how the forward pass used it (``linear``, ``conv``, ``recurrent``,
    ``attention``, ``matmul``, ``embedding``, ``bias``); a looked-up table stays ``embedding`` even where it is
    also multiplied (a tied output layer). ``traced`` is False where nothing could be seen (``why``)."""

    roles: dict[str, str] = field(default_factory=dict)
    traced: bool = True
    why: str = ""

    def note(self, name: str, role: str) -> None:
        old = self.roles.get(name)
        if old != "embedding" and (old in (None, "bias") or role == "embedding"):  # a product outranks a sum
            self.roles[name] = role


class UseRecorder(TorchFunctionMode):
    """Notes the parameters (``names``: id -> name) that each multiplying operation takes."""

    def __init__(self, names: dict[int, str]):
        super().__init__()
        self.names, self.uses = names, Uses()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = getattr(func, "__name__", "").split(".")[0]  # aten.linear.default -> linear
        if op in KNOWN_OPS:
            for tensor, role in operands(op, args, kwargs):
                name = self.names.get(id(tensor))
                if name is not None:
                    self.uses.note(name, role)
        return func(*args, **kwargs)


def operands(op: str, args: tuple, kwargs: dict) -> Iterator[tuple[object, str]]:
    """``(tensor, use)`` of each operand of one call of ``op``."""
    if op == ATTENTION_OP:
        bound = dict(zip(ATTENTION_ARGS, args)) | kwargs
        yield from ((v, "attention" if k.endswith("_weight") else "bias") for k, v in bound.items())
        return
    if op in RECURRENT_OPS:
        yield from ((t, "recurrent" if t.dim() >= 2 else "bias") for t in tensors_in([*args, *kwargs.values()]))
        return
    positional = list(enumerate(args)) + [(k, v) for k, v in kwargs.items()]
    added = {LINEAR_OPS.get(op, CONV_OPS.get(op)), "bias"} if op in LINEAR_OPS or op in CONV_OPS else \
        {0, "input", "self"} if op in ADDED_MATMUL_OPS else set()
    role = "linear" if op in LINEAR_OPS else "conv" if op in CONV_OPS else \
        "embedding" if op in EMBEDDING_OPS else "matmul"
    for key, value in positional:
        for t in tensors_in([value]):
            yield t, "bias" if key in added else role


def tensors_in(values: Iterable) -> Iterator[torch.Tensor]:
    for v in values:
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from tensors_in(v)


KNOWN_OPS = frozenset({*LINEAR_OPS, *CONV_OPS, *RECURRENT_OPS, *ADDED_MATMUL_OPS, *MATMUL_OPS, *EMBEDDING_OPS,
                       ATTENTION_OP})


@contextmanager
def recording(model: nn.Module) -> Iterator[Uses]:
    """Record, while the block runs, how the forward pass of ``model`` uses its parameters."""
    if isinstance(model, torch.jit.ScriptModule):
        yield Uses(traced=False, why="a TorchScript program, whose operations Python does not see")
        return
    recorder = UseRecorder({id(p): n for n, p in unique_named_parameters(model)})
    with recorder:
        yield recorder.uses
    if not any(r != "bias" for r in recorder.uses.roles.values()):
        recorder.uses.traced = False
        recorder.uses.why = "its forward pass showed no multiplication by a parameter"
