"""Data parallelism under ``torchrun``: process group set-up, DDP wrapping, reductions.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything is a no-op and the
trainer runs as one process.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @classmethod
    def from_env(cls) -> Dist:
        """Join the process group ``torchrun`` describes (gloo on CPU, NCCL on GPU)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        device = torch.device("cuda", local) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        rank = dist.get_rank() if world > 1 else 0
        return cls(rank=rank, world=world, device=device)

    @property
    def active(self) -> bool:
        return self.world > 1

    def wrap(self, net: nn.Module) -> nn.Module:
        if not self.active:
            return net
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)

    def no_sync(self, model: nn.Module, skip: bool) -> Any:
        """Skip the gradient all-reduce on all but the last micro-batch of a step."""
        if skip and isinstance(model, DistributedDataParallel):
            return model.no_sync()
        return nullcontext()

    def sum(self, value: torch.Tensor) -> float:
        if self.active:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return float(value)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()
