"""Data-parallel training under ``torchrun``: NCCL on GPUs, gloo on the CPU.

``torchrun --nproc_per_node=N -m lqz.train ...`` starts N processes; each draws its own crops,
DistributedDataParallel averages the gradients, so every rank takes the same optimizer steps
and keeps the same weights. Only rank 0 writes checkpoints, logs and exports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job (rank 0 of 1 when not under torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed:
        """Join the job torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: its own GPU under torchrun."""
        if device.type == "cuda" and self.enabled:
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Give every rank rank 0's values of ``tensors`` (in place)."""
        if self.enabled:
            for t in tensors:
                dist.broadcast(t, 0)

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` under DistributedDataParallel (itself when not distributed)."""
        if not self.enabled:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is True on any (a stop must be taken together)."""
        if not self.enabled:
            return flag
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
