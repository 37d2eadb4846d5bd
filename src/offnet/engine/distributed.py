"""Distributed data parallel plumbing and the resumable, rank-sharded batch sampler.

Launch with ``torchrun --nproc-per-node N [--nnodes M …] --no-python offnet train CONFIG``: the
process group is initialised from the environment (``env://``; ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) with NCCL on CUDA and gloo on CPU. Without those
variables everything runs as a single process.

The sampler draws one permutation of the whole training set per epoch from ``(seed, epoch)`` and
cuts it into *global* batches of ``batch_size × world_size`` indices; rank ``r`` takes the ``r``-th
slice of every global batch. So a run on N processes sees the same global batches as a one-process
run with ``N×`` the batch size, and a run resumed mid-epoch (``start_batch``) continues with exactly
the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistContext", "init_distributed", "ResumableBatchSampler", "all_reduce_sum", "all_gather_objects"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.is_distributed and dist.is_initialized():
            dist.barrier()


def _resolve_device(spec: str, local_rank: int) -> torch.device:
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={spec!r} but CUDA is not available here; use train.device=cpu")
        if spec == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(spec)


def init_distributed(device: str = "auto", *, backend: str | None = None,
                     timeout: timedelta | None = None) -> DistContext:
    """Join the process group if launched by torchrun (``WORLD_SIZE`` > 1), else a one-process context.

    ``device`` is ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``; with ``cuda`` every process uses GPU
    ``LOCAL_RANK``. ``backend`` defaults to NCCL on GPUs and gloo on CPUs; ``timeout`` bounds every
    collective (torch's default when ``None``): jobs whose ranks meet only at the end pass a long one.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = _resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if torch_device.type == "cuda" else "gloo")
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        dist.init_process_group(backend=backend, init_method="env://", **({"timeout": timeout} if timeout else {}))
        log.info("process group: rank %d of %d (%s, %s)", rank, world_size, backend, torch_device)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=torch_device)


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a list of numbers over all processes (identity on one process)."""
    if not ctx.is_distributed:
        return list(values)
    # gloo reduces CPU tensors, NCCL needs them on the process's GPU.
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def all_gather_objects(value: Any, ctx: DistContext) -> list[Any]:
    """Every process's ``value`` (picklable), indexed by rank; ``[value]`` on one process."""
    if not ctx.is_distributed:
        return [value]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, value)
    return gathered


class ResumableBatchSampler:
    """Yields this rank's batches of dataset indices for one epoch; usable as ``batch_sampler``.

    ``shuffle``: a permutation drawn from a ``torch.Generator`` seeded with ``seed + epoch`` (no global
    RNG). The epoch has ``len(dataset) // (batch_size × world_size)`` global batches (an incomplete
    last global batch is dropped so that every rank does the same number of steps).
    ``set_epoch(e)`` selects the epoch and ``start_batch`` skips batches already consumed (resume).
    """

    def __init__(
        self,
        num_samples: int,
        *,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad sampler setup: batch_size={batch_size} rank={rank} world={world_size}")
        if num_samples < batch_size * world_size:
            raise ValueError(
                f"the training set has {num_samples} clips, fewer than one global batch "
                f"({batch_size} per process x {world_size} processes); lower train.batch_size"
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, *, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch {start_batch} outside 0..{len(self)}")
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        return self.num_samples // (self.batch_size * self.world_size)

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_samples)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=generator)

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order()
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, len(self)):
            start = b * global_batch + self.rank * self.batch_size
            yield order[start : start + self.batch_size].tolist()

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start_batch": self.start_batch}
