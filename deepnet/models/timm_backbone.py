"""Shared construction for the timm-backed families: load (or randomly initialise) a timm model as
a feature backbone and read the model's own preprocessing from its pretrained cfg."""
from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import Callable

import timm
import torch
from torch import nn

from deepnet.models.classifier import Classifier
from deepnet.models.registry import LayerMap, ModelBundle, Preprocess, pretrained_unavailable

Device = str | torch.device | None


def device_context(device: Device, pretrained: bool):
    """Context that builds modules directly on ``device`` (``"meta"``: shapes only, no memory)."""
    if device is None:
        return nullcontext()
    if pretrained and torch.device(device).type == "meta":
        raise ValueError("device='meta' builds shapes only and cannot hold pretrained weights; pass pretrained=False")
    return torch.device(device)


def create_timm_backbone(
    model_name: str, timm_name: str, pretrained: bool, num_classes: int = 0, img_size: int | None = None
) -> tuple[nn.Module, Preprocess]:
    """``timm.create_model(timm_name)`` with ``num_classes`` outputs (0: pooled features).

    CLIP models keep their pretrained image projection by passing its width as ``num_classes``.
    ``img_size`` is passed to timm only when given (ViTs resample their position embedding to it;
    convnets take any size and need no such argument). Download failures are re-raised as
    :class:`PretrainedUnavailableError` with the offline remedy.
    """
    kw = {} if img_size is None else {"img_size": img_size}
    try:
        backbone = timm.create_model(timm_name, pretrained=pretrained, num_classes=num_classes, **kw)
    except (OSError, RuntimeError) as err:
        if not pretrained:
            raise
        raise pretrained_unavailable(model_name, f"timm ({timm_name})", err) from err
    return backbone, with_input_size(preprocess_from_timm(backbone), img_size)


def with_input_size(preprocess: Preprocess, img_size: int | None) -> Preprocess:
    """``preprocess`` at ``img_size`` x ``img_size`` (unchanged when ``img_size`` is None)."""
    return preprocess if img_size is None else dataclasses.replace(preprocess, input_size=(img_size, img_size))


def preprocess_from_timm(model: nn.Module) -> Preprocess:
    """The evaluation preprocessing timm resolves from the model's pretrained cfg."""
    cfg = timm.data.resolve_model_data_config(model)
    _, height, width = cfg["input_size"]
    return Preprocess(
        mean=tuple(float(m) for m in cfg["mean"]),
        std=tuple(float(s) for s in cfg["std"]),
        input_size=(int(height), int(width)),
        interpolation=str(cfg["interpolation"]),
        crop_pct=float(cfg["crop_pct"]),
    )


def timm_pretrained_width(timm_name: str) -> int:
    """Output width of the pretrained model's own head (CLIP: the image-text projection)."""
    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None:
        raise KeyError(f"timm has no pretrained cfg for {timm_name!r}")
    return int(cfg.num_classes)


def create_timm_convnet(
    name: str,
    timm_name: str,
    layer_map: Callable[[Classifier], LayerMap],
    num_classes: int,
    pretrained: bool = True,
    device: Device = None,
    img_size: int | None = None,
) -> ModelBundle:
    """Build a fully convolutional timm model ``timm_name`` with a new ``num_classes`` head.

    ``img_size`` only sets the preprocessing size (the network takes any size);
    ``device="meta"`` builds shapes only. ``layer_map`` gives the family's Appendix-A grouping.
    """
    with device_context(device, pretrained):
        backbone, preprocess = create_timm_backbone(name, timm_name, pretrained)
        preprocess = with_input_size(preprocess, img_size)
        model = Classifier(backbone, backbone.num_features, num_classes)
    return ModelBundle(name, model, layer_map(model), preprocess, backbone.num_features)
