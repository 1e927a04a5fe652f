"""Where and how a run computes: its device, float32 matmul precision and random seeds."""
from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch

from deepnet.distributed import DistContext


@contextlib.contextmanager
def float32_matmul_precision(tf32: bool) -> Iterator[None]:
    """float32 matmuls on TF32 tensor cores (``tf32``) or in full float32, restored on exit.

    Parameters
    ----------
    tf32 : bool
        ``torch.set_float32_matmul_precision("high")`` when true, ``"highest"`` when false.
    """
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def wants_cuda(device: str) -> bool:
    """Whether ``device`` (``"auto"``, ``"cpu"``, ``"cuda:1"`` ...) means a GPU here."""
    if device == "auto":
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def resolve_device(device: str, ctx: DistContext) -> torch.device:
    """``"auto"`` -> this rank's GPU if there is one, else CPU."""
    if device == "auto":
        return torch.device("cuda", ctx.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", ctx.local_rank)
    return dev


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch on one rank, so a run resumed at an epoch boundary replays it."""
    return (seed * 1_000_003 + epoch * 1_009 + rank) % 2**31


def seed_worker(worker_id: int) -> None:
    """A data loader worker's ``worker_init_fn``: python and numpy seeded from torch's seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
