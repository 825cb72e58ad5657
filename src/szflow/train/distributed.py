"""Data-parallel training over N processes (torchrun sets RANK, LOCAL_RANK, WORLD_SIZE).

The contract: every rank draws the same global sequence of batches (same sampler seed) and keeps
its `rank_slice` of each global batch; DistributedDataParallel averages the gradients, so N ranks
with B/N windows each end with the weights of one process with B windows. Rank 0 alone validates
and writes files, and broadcasts its early-stop decision. With one process every helper here is a
no-op and the loop runs unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from szflow.errors import SzflowError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """Rank and world size from the environment torchrun sets (1 process when absent)."""
    return DistInfo(rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                    world_size=int(os.environ.get("WORLD_SIZE", "1")))


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun; a no-op for a single process."""
    info = dist_info()
    if not info.enabled:
        return info
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return info


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def process_group_active(info: DistInfo) -> bool:
    """True when this process trains as one of several ranks in a joined process group."""
    return info.enabled and dist.is_available() and dist.is_initialized()


def local_batch_size(global_batch_size: int, world_size: int) -> int:
    if global_batch_size % world_size:
        raise SzflowError(
            f"train batch size {global_batch_size} is not divisible by {world_size} GPUs: "
            "choose hardware.train_batch_size as a multiple of hardware.gpus"
        )
    return global_batch_size // world_size


def rank_slice(global_batch_size: int, rank: int, world_size: int) -> slice:
    """This rank's contiguous share of a global batch (equal shares, so averaged gradients match)."""
    size = local_batch_size(global_batch_size, world_size)
    return slice(rank * size, (rank + 1) * size)


class GlobalBatches:
    """Batch sampler: `global_batch` consecutive draws of the training sampler per batch, of which this
    rank keeps its slice. Every rank draws the same sequence, so N ranks reproduce one process."""

    def __init__(self, sampler: Iterable[tuple[int, int]], global_batch: int, part: slice):
        self.sampler = sampler
        self.global_batch = global_batch
        self.part = part

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        while True:  # the loop stops by step count; the sampler wraps into a new epoch if needed
            draws = iter(self.sampler)
            batch: list[tuple[int, int]] = []
            for item in draws:
                batch.append(item)
                if len(batch) == self.global_batch:
                    yield batch[self.part]
                    batch = []


def wrap_model(model: torch.nn.Module, device: torch.device, active: bool) -> torch.nn.Module:
    """The module that runs forward/backward: DDP around `model` in a process group, else `model`."""
    if not active:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_ranks(value: torch.Tensor, world_size: int, active: bool) -> torch.Tensor:
    """`value` averaged over the ranks, in place (the training loss of the whole global batch)."""
    if active:
        dist.all_reduce(value)
        value /= world_size
    return value


def broadcast_flag(flag: bool, device: torch.device, active: bool) -> bool:
    """Rank 0's `flag` on every rank (the early-stop decision, which only rank 0 can take)."""
    if not active:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())
