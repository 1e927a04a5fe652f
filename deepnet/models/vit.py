"""Vision transformers of the SGD paper via timm: CLIP ViT-B/16 and ViT-L/14 (OpenAI, QuickGELU),
OpenCLIP ViT-H/14 (LAION-2B, memory table), supervised ViT-B/16 (ImageNet-21k) and DINO ViT-B/16.

Embedding (Appendix A): the patch-to-token convolution plus, for CLIP, the layer norm after it
(timm ``norm_pre``; timm's own ``group_matcher`` puts ``norm_pre`` with the final norm, so we list
it explicitly). The cls token and position embedding stay trainable, as in the authors' code, in a
``tokens`` group at the bottom of the middle layers. Each block contributes two middle groups,
attention (with its pre-norm and layer scale) and MLP.

CLIP models keep their pretrained image projection (timm loads it as the model's ``head``) so the
features are the CLIP image embedding the authors fine-tuned (512 / 768 / 1024 wide); the new
classifier sits on top. ``backend="open_clip"`` builds the same CLIP models with open_clip instead
(see :mod:`deepnet.models.openclip`).
"""
from __future__ import annotations

from functools import partial

from deepnet.models.classifier import Classifier
from deepnet.models.grouping import ViTNames, vit_layer_map
from deepnet.models.registry import MODELS, LayerMap, ModelBundle
from deepnet.models.timm_backbone import Device, create_timm_backbone, device_context, timm_pretrained_width

# canonical name -> (timm name, open_clip (architecture, pretrained tag) or None for non-CLIP)
VIT_MODELS: dict[str, tuple[str, tuple[str, str] | None]] = {
    "clip_vit_b16": ("vit_base_patch16_clip_quickgelu_224.openai", ("ViT-B-16-quickgelu", "openai")),
    "clip_vit_l14": ("vit_large_patch14_clip_quickgelu_224.openai", ("ViT-L-14-quickgelu", "openai")),
    "openclip_vit_h14": ("vit_huge_patch14_clip_224.laion2b", ("ViT-H-14", "laion2b_s32b_b79k")),
    "sup_vit_b16": ("vit_base_patch16_224.augreg_in21k", None),
    "dino_vit_b16": ("vit_base_patch16_224.dino", None),
}
CLIP_NAMES = [n for n, (_, oc) in VIT_MODELS.items() if oc is not None]
BACKENDS = ("timm", "open_clip")


TIMM_VIT_NAMES = ViTNames(
    embed=["backbone.patch_embed", "backbone.norm_pre"], stem=["backbone.patch_embed"],
    tokens=["backbone.cls_token", "backbone.reg_token", "backbone.pos_embed"], blocks="backbone.blocks",
    attn=["norm1", "attn", "ls1"], mlp=["norm2", "mlp", "ls2"],
    final_norm=["backbone.norm", "backbone.fc_norm"], proj=["backbone.head"],
)


def timm_vit_layer_map(model: Classifier, depth: int) -> LayerMap:
    """Layer map of a :class:`Classifier` around a timm ``VisionTransformer`` with ``depth`` blocks."""
    return vit_layer_map(model, depth, TIMM_VIT_NAMES)


def create_vit(
    name: str,
    num_classes: int,
    pretrained: bool = True,
    device: Device = None,
    backend: str = "timm",
    img_size: int | None = None,
) -> ModelBundle:
    """Build one of :data:`VIT_MODELS` with a new ``num_classes`` head (see module docstring).

    ``device="meta"`` builds shapes only; ``img_size`` changes the input resolution (the position
    embedding is resampled from the pretrained one); ``backend`` picks timm or open_clip for CLIP.
    """
    timm_name, open_clip_id = VIT_MODELS[name]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "open_clip":
        if open_clip_id is None:
            raise ValueError(f"model {name!r} is not a CLIP model; backend='open_clip' is for {CLIP_NAMES}")
        from deepnet.models.openclip import create_open_clip

        return create_open_clip(name, *open_clip_id, num_classes=num_classes, pretrained=pretrained,
                                device=device, img_size=img_size)
    proj_width = timm_pretrained_width(timm_name) if open_clip_id is not None else 0
    with device_context(device, pretrained):
        backbone, preprocess = create_timm_backbone(name, timm_name, pretrained, proj_width, img_size)
        feature_dim = proj_width or backbone.num_features
        model = Classifier(backbone, feature_dim, num_classes)
    return ModelBundle(name, model, timm_vit_layer_map(model, len(backbone.blocks)), preprocess, feature_dim)


for _name in VIT_MODELS:
    MODELS.add(_name, partial(create_vit, _name))
