"""Data-parallel helpers for one run over several processes (``torchrun``), and no-ops for one process.

``torchrun --nproc_per_node N -m deepnet train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; each
process trains a shard of every global batch and DistributedDataParallel averages gradients, so a
run's optimizer steps are those of the single-process run with the same global batch. Only rank 0
writes files. The backend is NCCL on GPU and gloo on CPU (which the tests use).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; ``world_size == 1`` means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when init_from_env created the process group (and must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(use_cuda: bool) -> DistContext:
    """Join the process group described by torchrun's environment variables (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
        owns = True
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, owns_group=owns)


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce(tensor: torch.Tensor, ctx: DistContext, op: str = "sum") -> torch.Tensor:
    """In-place sum / max over ranks (identity for one process); returns the tensor."""
    if not ctx.enabled:
        return tensor
    reduce_op = dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":  # NCCL reduces GPU tensors only
        on_gpu = tensor.cuda()
        dist.all_reduce(on_gpu, op=reduce_op)
        tensor.copy_(on_gpu.cpu())
    else:
        dist.all_reduce(tensor, op=reduce_op)
    return tensor


def shard_indices(n: int, ctx: DistContext) -> list[int]:
    """Indices ``rank, rank + world, ...`` of ``n`` items: every item on exactly one rank (for evaluation)."""
    return list(range(ctx.rank, n, ctx.world_size))


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel over the currently trainable parameters (identity for one process).

    DDP registers gradient hooks only for parameters with ``requires_grad`` at construction, so the
    trainer re-wraps whenever a method changes which parameters train (gradual unfreezing).
    Construction also broadcasts rank 0's parameters, keeping ranks identical.
    """
    if not ctx.enabled:
        return model
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("no trainable parameters to wrap in DistributedDataParallel")
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
