"""A run's checkpoint files: ``checkpoint.pt``, the one before it (``checkpoint.pt.prev``), and the
unreadable ones moved aside (``*.corrupt``)."""
from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from common.io import atomic_path, move_aside
from deepnet import distributed
from deepnet.distributed import DistContext
from deepnet.run_files import CHECKPOINT, CORRUPT_SUFFIX, PREVIOUS_SUFFIX

# What torch.load raises for a truncated or garbled file.
_UNREADABLE = (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile)


class RunCheckpoints:
    """The checkpoints of the run in ``run_dir``, loaded onto ``device``; ``ctx`` says which process
    is the main one (the only one that writes, moves or removes files)."""

    def __init__(self, run_dir: Path, ctx: DistContext, device: torch.device) -> None:
        self.path = run_dir / CHECKPOINT
        self.previous = self.path.with_name(CHECKPOINT + PREVIOUS_SUFFIX)
        self.ctx, self.device = ctx, device

    def write(self, state: dict[str, Any]) -> None:
        """Save ``state`` atomically as the newest checkpoint, keeping the last one as the previous."""
        if self.path.exists():
            move_aside(self.path, PREVIOUS_SUFFIX)
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def on_disk(self) -> list[Path]:
        """The checkpoints on disk, newest first."""
        return [p for p in (self.path, self.previous) if p.exists()]

    def read(self) -> dict[str, Any] | None:
        """The newest readable checkpoint's state, or None. The main process moves each unreadable
        one aside to ``*.corrupt`` with a warning; then the other processes read the newest left."""
        state = None
        if self.ctx.is_main:
            for path in self.on_disk():
                try:
                    state = torch.load(path, map_location=self.device, weights_only=False)
                    break
                except _UNREADABLE as err:
                    aside = move_aside(path, CORRUPT_SUFFIX)
                    rest = self.on_disk()
                    warnings.warn(f"{path} is unreadable ({type(err).__name__}: {err}); moved to {aside.name}, "
                                  + (f"resuming from {rest[0].name}" if rest else "starting from scratch"),
                                  UserWarning)
        distributed.barrier(self.ctx)
        if not self.ctx.is_main and self.on_disk():
            state = torch.load(self.on_disk()[0], map_location=self.device, weights_only=False)
        return state

    def remove(self, keep_latest: bool) -> None:
        """Delete the previous checkpoint and, unless ``keep_latest``, the newest one."""
        self.previous.unlink(missing_ok=True)
        if not keep_latest:
            self.path.unlink(missing_ok=True)
