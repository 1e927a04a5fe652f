"""The measurement commands' batches: a seeded data loader and its tensors moved to a device."""
from __future__ import annotations

from typing import Iterable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset


def loader(dataset: Dataset, batch_size: int, seed: int, shuffle: bool, num_workers: int = 0) -> DataLoader:
    """A loader of ``dataset`` whose shuffling is drawn from ``seed`` alone."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed))


def on_device(device: torch.device, batches: Iterable, limit: int | None = None) -> Iterator[list]:
    """The batches' tensors moved to ``device``, at most ``limit`` batches (None: all)."""
    for i, batch in enumerate(batches):
        if limit is not None and i >= limit:
            return
        yield [t.to(device) if torch.is_tensor(t) else t for t in batch]
