"""BiT ResNet-50x1 and ResNet-101x1 (ResNetV2, ImageNet-21k) via timm.

Embedding (Appendix A / Section 2.2): the stem (7x7 stride-2 weight-standardised convolution and
max-pool) and the first stage. Middle groups: each block of the later stages, bottom -> top, then
the final group norm.
"""
from __future__ import annotations

from functools import partial

from deepnet.models.classifier import Classifier
from deepnet.models.grouping import layer_map_from_prefixes
from deepnet.models.registry import MODELS, LayerMap
from deepnet.models.timm_backbone import create_timm_convnet

BIT_MODELS = {
    "bit_resnet50": "resnetv2_50x1_bit.goog_in21k",
    "bit_resnet101": "resnetv2_101x1_bit.goog_in21k",
}


def bit_layer_map(model: Classifier) -> LayerMap:
    """Layer map of a :class:`Classifier` around a timm ``ResNetV2``."""
    middle = [
        (f"stage{s}.block{b}", [f"backbone.stages.{s}.blocks.{b}"])
        for s, stage in enumerate(model.backbone.stages)
        if s > 0
        for b in range(len(stage.blocks))
    ]
    return layer_map_from_prefixes(
        model,
        embed=["backbone.stem", "backbone.stages.0"],
        stem=["backbone.stem"],
        middle=[*middle, ("final_norm", ["backbone.norm"])],
        head=["head"],
    )


for _name in BIT_MODELS:
    MODELS.add(_name, partial(create_timm_convnet, _name, BIT_MODELS[_name], bit_layer_map))
