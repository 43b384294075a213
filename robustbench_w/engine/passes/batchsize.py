"""The batch size of a pass: given, or chosen (``--batch-size auto``, the default); halved on out-of-memory.

``auto`` on the CPU (and MPS) is 1,024 inputs per batch. On a CUDA GPU it is measured: the set is first cut
into batches of :data:`AUTO_CAP` inputs (larger batches do not make a pass faster; or one batch, the whole
set, when it is smaller), one forward pass of :data:`PROBE_INPUTS` inputs gives the peak memory per input,
and the batches are halved until they are no larger than the largest power of two whose peak fits
:data:`GPU_SHARE` of the memory left free once the model and the evaluation set are in place. Batches given
from Python as an iterable of batches are the user's: ``auto`` keeps them (and halves them only on
out-of-memory).

Whatever the size, a pass that runs out of memory is not lost: every batch is split in two (the first half
takes the odd input), the pass is run again, and one line says so (``out of memory at batch size 4096 on
cuda:0: halved to 2048 and retried``). A batch of one input that does not fit is an error (one line, exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ...errors import InvalidValueError
from ..defaults import AUTO, AUTO_CAP, CPU_BATCH

PROBE_INPUTS = 16  # inputs of the forward pass that measures the memory per input
GPU_SHARE = 0.5  # of the free memory, for one batch's peak (the rest: the allocator's slack, the metrics)

BatchSize = int | str  # a number of inputs, or "auto"


def check_batch_size(value: BatchSize | None) -> BatchSize:
    """``auto`` or a positive number of inputs; anything else is a usage error."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        return AUTO
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < 1 or (isinstance(value, float) and value != size):
        raise InvalidValueError(f"--batch-size must be a positive number of inputs or auto, not {value!r}")
    return size


def fitting_batch(per_input: float, free: int, n: int) -> int:
    """The largest power of two whose peak (``per_input`` bytes each) fits :data:`GPU_SHARE` of ``free`` bytes,
    at most :data:`AUTO_CAP` and at most ``n`` (the whole set when it is smaller); at least 1."""
    if per_input <= 0:
        size = AUTO_CAP
    else:
        fits = GPU_SHARE * free / per_input
        size = 2 ** int(math.floor(math.log2(fits))) if fits >= 1 else 1
    return max(1, min(size, AUTO_CAP, n))


def auto_batch_size(device: torch.device, n: int, peak_bytes: Callable[[int], int],
                    free_bytes: Callable[[], int] | None = None) -> int:
    """The ``auto`` batch size on ``device`` for a set of ``n`` inputs. ``peak_bytes(k)`` runs one forward
    pass of ``k`` inputs and returns the memory it took at its peak; ``free_bytes()`` the device's free
    memory (both measured on CUDA only; given here so that tests can stand in for a GPU)."""
    if device.type != "cuda":
        return max(1, min(CPU_BATCH, n))
    k = max(1, min(PROBE_INPUTS, n))
    per_input = peak_bytes(k) / k
    free = free_bytes() if free_bytes is not None else torch.cuda.mem_get_info(device)[0]
    return fitting_batch(per_input, free, n)


def cuda_peak(device: torch.device, run: Callable[[], object]) -> int:
    """Bytes ``run()`` allocated on ``device`` at its peak, beyond what was allocated before."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or the host) ran out of memory."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_cached(device: torch.device) -> None:
    """Give the caching allocator's free blocks back (after an out-of-memory error)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def halved_text(before: int, after: int, device: torch.device) -> str:
    return f"out of memory at batch size {before} on {device}: halved to {after} and retried"


def too_large(device: torch.device) -> InvalidValueError:
    return InvalidValueError(f"out of memory on {device} even with one input per batch: the model does not fit "
                             f"this device (try --device cpu, or a smaller --seq-len / --image-size)")
