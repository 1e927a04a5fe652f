"""Any timm model: a model name that is not registered but that timm knows (``timm.list_models()``,
with or without a pretrained tag such as ``convnext_atto.d2_in1k``) builds through timm's own
``group_matcher``.

timm groups each architecture's parameters bottom -> top for layer-wise learning-rate decay; the
first group (the stem: ViT patch embedding with cls token and position embedding, a convnet's stem)
is the embedding, as the SGD paper's Appendix A defines it for its models, every later group is a
middle group, and the new linear head is the head. :func:`group_matcher_layer_map` checks that every
backbone parameter lands in exactly one group.
"""
from __future__ import annotations

from collections import Counter
from functools import partial

import timm
from timm.models import group_parameters

from deepnet.models.classifier import Classifier
from deepnet.models.grouping import norm_parameter_names
from deepnet.models.registry import LayerMap, ModelBundle, ModelFactory
from deepnet.models.timm_backbone import Device, create_timm_backbone, device_context, with_input_size


def group_matcher_layer_map(model: Classifier) -> LayerMap:
    """Layer map of a :class:`Classifier` around a timm backbone, from its ``group_matcher``.

    Raises ``ValueError`` when the backbone has no ``group_matcher``, when timm's grouping yields
    fewer than two groups, or when a parameter lands in no group or in several.
    """
    backbone = model.backbone
    if not hasattr(backbone, "group_matcher"):
        raise ValueError(f"timm model {type(backbone).__name__} has no group_matcher; register a model "
                         f"factory with its own layer map (deepnet.models.MODELS)")
    groups = group_parameters(backbone, backbone.group_matcher(coarse=False))
    ordered = [[f"backbone.{n}" for n in groups[i]] for i in sorted(groups)]
    if len(ordered) < 2:
        raise ValueError(f"timm's group_matcher puts all of {type(backbone).__name__} in one group")
    counts = Counter(n for group in ordered for n in group)
    expected = {f"backbone.{n}" for n, _ in backbone.named_parameters()}
    twice = sorted(n for n, c in counts.items() if c > 1)
    missing = sorted(expected - set(counts))
    if twice or missing:
        raise ValueError(f"timm's group_matcher of {type(backbone).__name__} does not put every parameter in "
                         f"exactly one group: in several {twice[:5]}, in none {missing[:5]}")
    embed = ordered[0]
    norms = norm_parameter_names(model)
    return LayerMap(
        embed=embed,
        embed_norm=[n for n in embed if n in norms],
        middle=ordered[1:],
        head=[n for n, _ in model.head.named_parameters(prefix="head")],
        stem=embed,
        middle_labels=[f"group{i}" for i in range(1, len(ordered))],
    )


def create_any_timm(timm_name: str, num_classes: int, pretrained: bool = True, device: Device = None,
                    img_size: int | None = None) -> ModelBundle:
    """timm model ``timm_name`` as a pooled-feature backbone with a fresh ``num_classes`` head.

    ``pretrained`` downloads timm's weights (the default tag, or the one in the name);
    ``device="meta"`` builds shapes only; ``img_size`` goes to timm where the architecture takes
    it (models with a fixed grid, such as ViTs, resample their position embedding), and otherwise
    (convnets, which take any size) only sets the preprocessing's input size.
    """
    with device_context(device, pretrained):
        try:
            backbone, preprocess = create_timm_backbone(timm_name, timm_name, pretrained, 0, img_size)
        except TypeError as err:
            if img_size is None or "img_size" not in str(err):
                raise
            backbone, preprocess = create_timm_backbone(timm_name, timm_name, pretrained, 0)
            preprocess = with_input_size(preprocess, img_size)
        model = Classifier(backbone, backbone.num_features, num_classes)
    return ModelBundle(timm_name, model, group_matcher_layer_map(model), preprocess, backbone.num_features)


def timm_factory(name: str) -> ModelFactory | None:
    """The factory of any model name timm knows (the model registry's fallback), else None."""
    return partial(create_any_timm, name) if timm.is_model(name) else None
