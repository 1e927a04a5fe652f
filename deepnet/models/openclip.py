"""open_clip backend for the CLIP models: ``create_model("clip_vit_b16", n, backend="open_clip")``.

Uses the image tower (``model.visual``, with its projection) of the open_clip model; the text tower
is dropped. Embedding (Appendix A): ``conv1`` + ``ln_pre``; ``class_embedding`` and
``positional_embedding`` stay trainable (``tokens`` group); attention (``ln_1`` + ``attn``) and
MLP (``ln_2`` + ``mlp``) of each residual block are separate middle groups.
"""
from __future__ import annotations

import open_clip

from deepnet.models.classifier import Classifier
from deepnet.models.grouping import ViTNames, vit_layer_map
from deepnet.models.registry import LayerMap, ModelBundle, Preprocess, pretrained_unavailable
from deepnet.models.timm_backbone import Device, device_context


OPEN_CLIP_VIT_NAMES = ViTNames(
    embed=["backbone.conv1", "backbone.ln_pre"], stem=["backbone.conv1"],
    tokens=["backbone.class_embedding", "backbone.positional_embedding"],
    blocks="backbone.transformer.resblocks", attn=["ln_1", "attn", "ls_1"], mlp=["ln_2", "mlp", "ls_2"],
    final_norm=["backbone.ln_post"], proj=["backbone.proj"],
)


def open_clip_layer_map(model: Classifier, depth: int) -> LayerMap:
    """Layer map of a :class:`Classifier` around an open_clip ``VisionTransformer``."""
    return vit_layer_map(model, depth, OPEN_CLIP_VIT_NAMES)


def create_open_clip(
    name: str,
    architecture: str,
    tag: str,
    num_classes: int,
    pretrained: bool = True,
    device: Device = None,
    img_size: int | None = None,
) -> ModelBundle:
    """The image tower of open_clip ``architecture`` (weights ``tag`` when pretrained) plus a new head;
    ``img_size`` is open_clip's ``force_image_size`` (position embedding resampled)."""
    with device_context(device, pretrained):
        try:
            clip = open_clip.create_model(
                architecture, pretrained=tag if pretrained else None, device=device or "cpu",
                force_image_size=img_size,
            )
        except (OSError, RuntimeError) as err:
            if not pretrained:
                raise
            raise pretrained_unavailable(name, f"open_clip ({architecture}, {tag})", err) from err
        visual = clip.visual
        model = Classifier(visual, int(visual.output_dim), num_classes)
    cfg = open_clip.get_model_preprocess_cfg(clip)
    preprocess = Preprocess(
        mean=tuple(float(m) for m in cfg["mean"]),
        std=tuple(float(s) for s in cfg["std"]),
        input_size=(size, size) if isinstance(size := cfg["size"], int) else (int(size[0]), int(size[1])),
        interpolation=str(cfg["interpolation"]),
        crop_pct=1.0,  # open_clip's eval transform resizes the short side to the crop size
    )
    layer_map = open_clip_layer_map(model, len(visual.transformer.resblocks))
    return ModelBundle(name, model, layer_map, preprocess, int(visual.output_dim))


