"""Gradual unfreezing (SGD paper, Table 5 / Appendix A).

The paper gives the learning-rate schedule exactly: no cosine; in epoch ``t`` (0-based) of ``T`` the
base learning rate is multiplied by ``exp(3.73 * (1 - t / (T - 1)))`` (about 41.7 in epoch 0, 1 in
the last). It says layers are unfrozen top-down but not how many per epoch; we unfreeze the layer
map's groups (head, then middle groups top to bottom, then the embedding) evenly over the epochs:
in epoch ``t`` the top ``ceil(G * (t + 1) / T)`` of the ``G`` groups train, so the head alone trains
first when ``T >= G`` and the whole model trains in the last epoch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from deepnet.methods.base import Method

if TYPE_CHECKING:
    from deepnet.models.registry import LayerMap

LR_DECAY_CONSTANT = 3.73


def gradual_lr_factor(epoch: int, epochs: int) -> float:
    """``exp(3.73 * (1 - t / (T - 1)))``; 1 when there is a single epoch."""
    if epochs <= 1:
        return 1.0
    return math.exp(LR_DECAY_CONSTANT * (1.0 - epoch / (epochs - 1)))


def num_trainable_groups(epoch: int, epochs: int, num_groups: int) -> int:
    """How many of the top groups train in ``epoch`` (0-based) of ``epochs``."""
    return min(num_groups, math.ceil(num_groups * (epoch + 1) / max(epochs, 1)))


@dataclass(frozen=True)
class GradualUnfreeze(Method):
    """SGD over all parameters, with only the top groups trainable early on (see module docstring).

    All parameters are in the optimizer from the start; a frozen group simply has
    ``requires_grad=False`` and so receives no update and no momentum.
    """

    def lr_factor(self, step: int, total_steps: int, epoch: int, epochs: int) -> float:
        return gradual_lr_factor(epoch, epochs)

    def on_epoch_start(self, model: nn.Module, layer_map: "LayerMap", epoch: int, epochs: int) -> None:
        groups = layer_map.groups()
        k = num_trainable_groups(epoch, epochs, len(groups))
        trainable = {n for _, names in groups[len(groups) - k:] for n in names}
        for name, p in model.named_parameters():
            p.requires_grad_(name in trainable)
