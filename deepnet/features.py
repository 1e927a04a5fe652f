"""The frozen backbone features a linear probe is fit on."""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterable

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def frozen_features(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
) -> tuple[np.ndarray, np.ndarray]:
    """``model.backbone`` features (float32, on the CPU) and labels of ``(x, y)`` batches, in eval
    mode: what the linear probe is fit on."""
    model.eval()
    feats, labels = [], []
    for x, y in batches:
        with autocast():
            feats.append(model.backbone(x).float().cpu())
        labels.append(y)
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()
