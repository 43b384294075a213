"""Loading (wing ``load``): what the user named, turned into a ready model and its evaluation set.

In: a model spec (a checkpoint path or ``builtin:NAME``), ``--arch``, a dataset name, a device.
Out: a :class:`LoadedModel` (module in eval mode, with what its checkpoint recorded) and, through
:func:`load_inputs`, the evaluation set checked to fit it.
Files: :mod:`.checkpoints` (every ``torch.save``/safetensors format, wrobust's own), :mod:`.sniff` (a file's
kind by its bytes), :mod:`.statedict` (finding and fitting state dicts), :mod:`.hf` (``hf:DIR``), :mod:`.compiled`
(TorchScript and ``torch.export`` programs), :mod:`.architectures` (the built-in architectures),
:mod:`.archspec` (``--arch`` names to factories), :mod:`.layers` (the roles of parameters by layer type),
:mod:`.uses` (which parameters the probe batch's forward pass multiplies with data),
:mod:`.device` (``--device``), :mod:`.inputs` (model + data, checked), :mod:`.writing` (atomic file writes).
"""

from ..registry import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "checkpoints": ("LoadedModel", "load_model", "save_checkpoint", "builtin_names"),
    "architectures": ("ARCHS", "register_arch"),
    "archspec": ("build", "build_arch", "build_model", "resolve_arch"),
    "device": ("resolve_device",),
    "inputs": ("Inputs", "load_inputs"),
    "layers": ("is_weight_layer", "module_roles"),
    "uses": ("Uses", "recording"),
    "writing": ("atomic_write",),
})
