"""How large a head linear probing hands to LP-FT, and how hard it pulls on the backbone.

LP-FT (Kumar et al., 2022) fine-tunes from the probe's head. The probe is fit on scaled frozen
features and the scaling is folded into the head (:mod:`deepnet.methods.linear_probe`), so a
feature with a tiny spread under per-feature standardization gets a weight of ``coef / std``. The
backbone's gradient scales with the head, and BatchNorm in train mode moves exactly such features.
:func:`probe_head_stats` measures, for one fitted head on one training batch: ``||W||``, the
batch loss in eval and in train mode, and the backbone's gradient norm in train mode (the mode
fine-tuning runs in). No optimizer step is taken; the model is left in eval mode.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from deepnet.models.classifier import Classifier


def probe_head_stats(model: "Classifier", x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """``head_weight_norm``, ``batch_loss_eval``, ``batch_loss_train``, ``backbone_grad_norm_train``
    for the head currently in ``model`` on the batch ``(x, y)``."""
    with torch.no_grad():
        model.eval()
        loss_eval = F.cross_entropy(model(x), y).item()
    model.train()
    model.zero_grad(set_to_none=True)
    loss_train = F.cross_entropy(model(x), y)
    loss_train.backward()
    squares = [p.grad.pow(2).sum() for name, p in model.named_parameters()
               if not name.startswith("head.") and p.grad is not None]
    grad_norm = torch.stack(squares).sum().sqrt().item()
    model.zero_grad(set_to_none=True)
    model.eval()
    return {"head_weight_norm": model.head.weight.detach().norm().item(), "batch_loss_eval": loss_eval,
            "batch_loss_train": loss_train.item(), "backbone_grad_norm_train": grad_norm}
