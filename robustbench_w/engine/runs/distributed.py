"""Runs launched by torchrun: one process per device, each evaluating its share of the points.

torchrun (``python -m torch.distributed.run``) starts ``--nproc-per-node`` processes per node and tells each
its place through the environment: ``RANK`` and ``WORLD_SIZE`` over all nodes, ``LOCAL_RANK`` on its node.
With ``WORLD_SIZE`` > 1 every process joins one process group (``nccl`` on GPUs, ``gloo`` on the CPU; the
rendezvous is torchrun's own, also across nodes), takes GPU ``LOCAL_RANK`` when it runs on CUDA, and the
rows are gathered with ``all_gather_object``, so every process ends with the whole result; only rank 0 writes
files and prints. Nothing here starts processes: the launchers users already have (torchrun, Slurm) do.

A process that finishes its share early waits for the others in the gather; the group's timeout
(:data:`TIMEOUT`) is therefore long. A process that dies (killed, out of memory in C++) is noticed by
torchrun, which stops the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch

from ...errors import InvalidValueError, first_line
from ...load.device import resolve_device

TIMEOUT = timedelta(hours=24)  # the longest a finished process waits for the slowest one


@dataclass(frozen=True)
class World:
    """This process's place in a run: rank ``rank`` of ``size`` (``local_rank`` on its node)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        return self.rank == 0


def current_world() -> World:
    """The world torchrun described in the environment (one process when it did not)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise InvalidValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if size < 1 or not 0 <= rank < size:
        raise InvalidValueError(f"RANK={rank} does not fit WORLD_SIZE={size}")
    return World(rank, size, local)


def rank_device(world: World, device: torch.device) -> torch.device:
    """The device of this process: on CUDA without an index, GPU ``LOCAL_RANK`` (made the current device)."""
    if not world.distributed or device.type != "cuda":
        return device
    if device.index is None:
        device = torch.device("cuda", world.local_rank % max(torch.cuda.device_count(), 1))
    torch.cuda.set_device(device)
    return device


@contextmanager
def process_group(device: str | torch.device | None) -> Iterator[torch.device]:
    """This process's device (``device`` resolved; GPU ``LOCAL_RANK`` under torchrun), inside torchrun's process
    group when ``WORLD_SIZE`` > 1 (joined here and left on the way out, unless the caller had joined it)."""
    world = current_world()
    dev = rank_device(world, resolve_device(device))
    joined = join(dev) if world.distributed else False
    try:
        yield dev
    finally:
        if joined:
            leave()


def join(device: torch.device) -> bool:
    """Join torchrun's process group (``nccl`` for CUDA, else ``gloo``); False when already in one."""
    import torch.distributed as dist

    if dist.is_initialized():
        return False
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    except ValueError as exc:  # WORLD_SIZE set by hand, without torchrun's MASTER_ADDR and friends
        raise InvalidValueError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} asks for a process group, but "
                                f"torch.distributed cannot join it: {first_line(str(exc))} (launch with torchrun, "
                                f"or unset WORLD_SIZE)") from None
    return True


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather(obj: object, world: World) -> list:
    """``obj`` of every rank, in rank order (``[obj]`` in a single process)."""
    if not world.distributed:
        return [obj]
    import torch.distributed as dist

    out: list = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: object, world: World) -> object:
    """Rank 0's ``obj``, on every rank."""
    if not world.distributed:
        return obj
    import torch.distributed as dist

    box = [obj if world.leader else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
