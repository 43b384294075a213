"""Compiled checkpoints: TorchScript archives (``torch.jit.save``) and ``torch.export`` programs (``.pt2``).

Both carry their own graph, so they need no ``--arch``. Safety differs:

- A TorchScript archive is a program (PyTorch's security policy: treat it as code from its author; there
  is no safe mode for ``torch.jit.load``), so it loads only with ``--trust-checkpoint``.
- A ``torch.export`` program is a JSON graph of operators plus raw tensors. It loads without
  ``--trust-checkpoint`` as long as it needs no unpickling beyond tensors: every ``torch.load`` inside
  ``torch.export.load`` is forced to ``weights_only=True`` (``TORCH_FORCE_WEIGHTS_ONLY_LOAD``, for the
  duration of the call), and custom or opaque Python objects among its constants are refused.

A sweep distorts parameters in place, so the loaded module must read its weights from parameters that
``named_parameters`` shows, and :mod:`..engine.weights.targets` must know which of them are conv/linear weights:

- TorchScript keeps each submodule's class name as ``original_name``, which ``targets`` already reads.
- ``torch.export.load(p).module()`` gives a ``GraphModule`` whose submodules are plain ``nn.Module``: the
  layer types are lost, but every graph node records its module path and class (``nn_module_stack``). We
  set ``original_name`` on the owners of conv/linear weights from that record (from the operator when it is
  missing), and promote weights that were lifted to buffers or constants to (frozen) parameters, so that
  the default target selection finds them and writing them changes the outputs.
- The exported module refuses ``.eval()``/``.train()`` (its mode was fixed when it was exported); we make
  both no-ops. A program exported with a fixed batch size is run in chunks of that size, zero-padded.
"""

from __future__ import annotations

import json
import os
import pickle
import types
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch import nn

from ..errors import InputFileError, UntrustedCheckpointError, first_line
from .layers import WEIGHT_LAYER_NAMES

TRUST_HINT = "pass --trust-checkpoint to load it, only if you trust where it came from"
FORCE_SAFE, FORCE_UNSAFE = "TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"

# aten operators whose second argument is a conv or linear weight, and the layer type they stand for
WEIGHT_OPS = {"linear": "Linear", "conv1d": "Conv1d", "conv2d": "Conv2d", "conv3d": "Conv3d",
              "convolution": "Conv2d", "_convolution": "Conv2d", "conv_transpose1d": "ConvTranspose1d",
              "conv_transpose2d": "ConvTranspose2d", "conv_transpose3d": "ConvTranspose3d"}


def load_torchscript(path: Path, trust: bool = False) -> nn.Module:
    """A TorchScript archive as a module (on the CPU); it is a program, so only with ``trust``."""
    if not trust:
        raise UntrustedCheckpointError(f"{path}: a TorchScript archive is a program and loading it can run its "
                                       f"code (there is no safe mode for torch.jit.load): {TRUST_HINT}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still reads archives
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # the TorchScript reader raises RuntimeError and friends on a bad archive
        raise InputFileError(f"{path}: not a readable TorchScript archive (truncated or corrupt?): "
                             f"{first_line(exc)}") from exc
    _require_parameters(module, path, "frozen with torch.jit.freeze? save the module before freezing")
    return module


def load_exported(path: Path, trust: bool = False) -> tuple[nn.Module, tuple[int, ...] | None]:
    """A ``torch.export`` program as a module ready to sweep, and its input shape (without batch) if fixed."""
    objects = [] if trust else python_objects(path)
    if objects:
        raise UntrustedCheckpointError(f"{path}: the program holds pickled Python objects ({', '.join(objects[:3])}); "
                                       f"loading them would run code from the file: {TRUST_HINT}")
    try:
        with warnings.catch_warnings(), (nullcontext() if trust else weights_only_loads()):
            warnings.simplefilter("ignore")
            program = torch.export.load(str(path))
            module = program.module()
    except Exception as exc:  # deserialisation errors come in many types
        if _from_unpickling(exc):
            raise UntrustedCheckpointError(f"{path}: the program holds pickled Python objects beyond tensors; loading "
                                           f"them would run code from the file: {TRUST_HINT}") from exc
        raise InputFileError(f"{path}: not a readable torch.export program (truncated or corrupt?): "
                             f"{first_line(exc)}") from exc
    recover_weight_layers(module)
    _require_parameters(module, path, "its weights are neither parameters nor used by conv/linear operators")
    shape = user_input_shape(program)
    if shape is not None and isinstance(shape[0], int):
        run_in_fixed_batches(module, shape[0])
    fix_mode(module)
    rest = None if shape is None else shape[1:]
    return module, (tuple(rest) if rest and all(isinstance(d, int) for d in rest) else None)


def python_objects(path: Path) -> list[str]:
    """Names of the constants of a ``.pt2`` archive that are Python objects (custom or opaque), not tensors."""
    from torch.export.pt2_archive.constants import CUSTOM_OBJ_FILENAME_PREFIX, OPAQUE_OBJ_FILENAME_PREFIX

    found = []
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith("_constants_config.json"):
                    config = json.loads(archive.read(name)).get("config", {})
                    found += [fqn for fqn, meta in config.items() if str(meta.get("path_name", "")).startswith(
                        (CUSTOM_OBJ_FILENAME_PREFIX, OPAQUE_OBJ_FILENAME_PREFIX))]
    except (ValueError, AttributeError, OSError, zipfile.BadZipFile) as exc:  # a damaged archive or config
        raise InputFileError(f"{path}: not a readable torch.export program (truncated or corrupt?): "
                             f"{first_line(exc)}") from exc
    return found


@contextmanager
def weights_only_loads() -> Iterator[None]:
    """Within the block, every ``torch.load`` is ``weights_only=True``, whatever its caller asks."""
    saved = {k: os.environ.pop(k, None) for k in (FORCE_SAFE, FORCE_UNSAFE)}
    os.environ[FORCE_SAFE] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def _from_unpickling(exc: BaseException | None) -> bool:
    """Whether an unpickling refusal is anywhere in the exception's chain."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def recover_weight_layers(module: nn.Module) -> list[str]:
    """Mark the owners of conv/linear weights with ``original_name`` and make those weights parameters.
    Returns the weight names found."""
    found = []
    for node in module.graph.nodes:
        if node.op != "get_attr" or not str(node.target).rpartition(".")[2] == "weight":
            continue
        layer = next(filter(None, (_layer_type(node, user) for user in node.users)), None)
        owner_path, _, attr = str(node.target).rpartition(".")
        owner = module.get_submodule(owner_path) if owner_path else module
        if layer is None or not isinstance(getattr(owner, attr, None), torch.Tensor):
            continue
        _promote(owner, attr)
        if not hasattr(owner, "original_name"):
            owner.original_name = layer
        found.append(str(node.target))
    return found


def _layer_type(weight: torch.fx.Node, user: torch.fx.Node) -> str | None:
    """The weight layer class that ``user`` (a node reading ``weight``) belongs to, if any."""
    owner_path = str(weight.target).rpartition(".")[0]
    stack = user.meta.get("nn_module_stack") or {}
    if stack:
        path, cls = list(stack.values())[-1]
        name = cls.rsplit(".", 1)[-1] if isinstance(cls, str) else getattr(cls, "__name__", "")
        return name if path == owner_path and name in WEIGHT_LAYER_NAMES else None
    packet = getattr(getattr(user.target, "overloadpacket", None), "__name__", "")
    return WEIGHT_OPS.get(packet) if len(user.args) > 1 and user.args[1] is weight else None


def _promote(owner: nn.Module, attr: str) -> None:
    """Make a buffer or a constant tensor attribute a parameter (without gradient), same storage."""
    value = getattr(owner, attr)
    if isinstance(value, nn.Parameter):
        return
    if attr in owner._buffers:
        del owner._buffers[attr]
    else:
        delattr(owner, attr)
    owner.register_parameter(attr, nn.Parameter(value, requires_grad=False))


def user_input_shape(program) -> tuple | None:
    """The shape of the program's single tensor input: ints where fixed, None where dynamic."""
    from torch.export.graph_signature import InputKind

    names = [s.arg.name for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    vals = [nodes[n].meta.get("val") for n in names if n in nodes]
    if len(vals) != 1 or not isinstance(vals[0], torch.Tensor):
        return None
    return tuple(d if isinstance(d, int) else None for d in vals[0].shape)


def run_in_fixed_batches(module: nn.Module, batch: int) -> None:
    """Let a program exported for batches of exactly ``batch`` take any batch: split, zero-pad, concatenate."""
    forward = module.forward

    def chunked(x: torch.Tensor, *args, **kwargs):
        outs = []
        for chunk in x.split(batch):
            n = len(chunk)
            if n < batch:
                chunk = torch.cat([chunk, chunk.new_zeros((batch - n, *chunk.shape[1:]))])
            outs.append(forward(chunk, *args, **kwargs)[:n])
        return torch.cat(outs)

    module.forward = chunked


def fix_mode(module: nn.Module) -> None:
    """Make ``train()``/``eval()`` no-ops on a module that refuses them (its mode is part of its graph:
    ``ExportedProgram.module()`` binds both to methods that raise ``NotImplementedError``)."""
    try:
        module.eval()
    except NotImplementedError:
        module.train = types.MethodType(lambda self, mode=True: self, module)
        module.eval = types.MethodType(lambda self: self, module)


def _require_parameters(module: nn.Module, path: Path, hint: str) -> None:
    if not any(True for _ in module.parameters()):
        raise InputFileError(f"{path}: the program has no parameters to distort ({hint})")

