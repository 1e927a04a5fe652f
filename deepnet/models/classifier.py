"""The one model shape every method and measurement relies on: a pretrained backbone that maps
images to a feature vector, followed by a fresh linear head."""
from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """``forward(x) = head(backbone(x))`` with ``backbone(x) -> (B, feature_dim)``.

    Keeping the head separate lets linear probing fit it on frozen features, LP-FT initialise it
    from the probe, and feature-distortion measurements read ``backbone`` alone.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        if feature_dim < 1 or num_classes < 1:
            raise ValueError(f"feature_dim and num_classes must be >= 1, got {feature_dim}, {num_classes}")
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, feature_dim)``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
