"""One code path for a single process and for DDP under torchrun, decided by torchrun's environment variables."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mnist_model.device import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """Where this process runs and which share of the work it has. `is_main` guards every log line and file write."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start(device_name: str) -> Runtime:
    """Join the process group when torchrun launched us (nccl on CUDA, gloo on CPU), else run alone.

    Raises `DeviceError` when `--device` names hardware this machine lacks (`mnist_model.device` has the rules).
    """
    if "RANK" not in os.environ:
        return Runtime(rank=0, local_rank=0, world_size=1, device=resolve_device(device_name, setting="--device"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    device = resolve_device(device_name, local_rank, setting="--device")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    on_gpu = device.type == "cuda"
    dist.init_process_group(backend="nccl" if on_gpu else "gloo", device_id=device if on_gpu else None)
    return Runtime(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def stop(runtime: Runtime) -> None:
    """Leave the process group cleanly (without it, torchrun warns and NCCL may leak resources)."""
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(runtime: Runtime) -> None:
    """Wait for every rank (no-op alone); e.g. so rank 0 extracts the dataset before the others read it."""
    if runtime.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Sum a tensor over all ranks in place (no-op alone) and return it."""
    if runtime.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_1d(tensor: torch.Tensor, runtime: Runtime) -> list[torch.Tensor]:
    """Gather an equal-length 1-D tensor from every rank (used to verify that the shards are disjoint)."""
    if not runtime.distributed:
        return [tensor]
    parts = [torch.empty_like(tensor) for _ in range(runtime.world_size)]
    dist.all_gather(parts, tensor)
    return parts
