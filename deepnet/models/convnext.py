"""ConvNeXt-B (ImageNet-22k) via timm.

Embedding (Appendix A): the stem (4x4 stride-4 convolution + layer norm) and the first stage;
``sgd_freeze_stem`` (Appendix C, Table 9) freezes the stem alone. Middle groups: each later stage's
downsampling layer and each block, bottom -> top, then the final layer norm (timm ``head.norm``).
"""
from __future__ import annotations

from functools import partial

from deepnet.models.classifier import Classifier
from deepnet.models.grouping import layer_map_from_prefixes
from deepnet.models.registry import MODELS, LayerMap
from deepnet.models.timm_backbone import create_timm_convnet

CONVNEXT_MODELS = {"convnext_b": "convnext_base.fb_in22k"}


def convnext_layer_map(model: Classifier) -> LayerMap:
    """Layer map of a :class:`Classifier` around a timm ``ConvNeXt``."""
    middle = []
    for s, stage in enumerate(model.backbone.stages):
        if s == 0:
            continue
        middle.append((f"stage{s}.downsample", [f"backbone.stages.{s}.downsample"]))
        middle += [(f"stage{s}.block{b}", [f"backbone.stages.{s}.blocks.{b}"]) for b in range(len(stage.blocks))]
    return layer_map_from_prefixes(
        model,
        embed=["backbone.stem", "backbone.stages.0"],
        stem=["backbone.stem"],
        middle=[*middle, ("final_norm", ["backbone.head.norm", "backbone.norm_pre"])],
        head=["head"],
    )


for _name in CONVNEXT_MODELS:
    MODELS.add(_name, partial(create_timm_convnet, _name, CONVNEXT_MODELS[_name], convnext_layer_map))
