"""Our own small pretrained models for offline evidence: ``small_vit`` and ``small_resnet``.

Appendix E of the SGD paper pretrains one architecture with SGD and with AdamW to separate the
pretraining optimizer from the architecture. We do the same at a scale a CPU runs: a patchify ViT
(patch 4 on 28 px, 0.45M parameters) and a small pre-activation-free ResNet with GroupNorm (BiT
style, 0.35M parameters), each pretrained on Fashion-MNIST by :mod:`deepnet.pretrain` once with SGD
and once with AdamW. The four backbones ship in ``deepnet/checkpoints/`` and register as models
``small_vit_fmnist_sgd``, ``small_vit_fmnist_adamw``, ``small_resnet_fmnist_sgd`` and
``small_resnet_fmnist_adamw``; ``small_vit`` / ``small_resnet`` take ``checkpoint=NAME``.

Inputs are 3-channel 28 px images normalised with mean = std = 0.5 (grey images are repeated
over the channels), so the same data pipelines serve these models and EfficientNet-Lite0.
Embedding (Appendix A): the ViT's patch embedding; the ResNet's stem plus first stage.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from deepnet.models.classifier import Classifier
from deepnet.models.registry import MODELS, LayerMap, ModelBundle, Preprocess, local_weights

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
MANIFEST = CHECKPOINT_DIR / "MANIFEST.json"
PREPROCESS = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=(28, 28),
                        interpolation="bilinear", crop_pct=1.0)
VIT_DIM = 96
RESNET_WIDTHS = (24, 48, 96)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and a (projected when needed) residual."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.GroupNorm(8, c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """3x3 stride-2 stem (28 -> 14 px; BiT downsamples in its stem too), three stages of two basic blocks
    (14 -> 7 -> 4 px), global average pool."""

    def __init__(self, widths: tuple[int, ...] = RESNET_WIDTHS, in_chans: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 2, 1, bias=False), nn.GroupNorm(8, widths[0]),
                                  nn.ReLU())
        stages, c_in = [], widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.num_features = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))


def small_vit_backbone() -> nn.Module:
    """timm ViT: 28 px, patch 4 (49 tokens + cls), width 96, depth 4, 3 heads; returns cls features."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=28, patch_size=4, in_chans=3, num_classes=0, embed_dim=VIT_DIM,
                             depth=4, num_heads=3, mlp_ratio=4.0)


def _names(model: nn.Module, *prefixes: str) -> list[str]:
    return [n for n, _ in model.named_parameters() if n.startswith(prefixes)]


def vit_layer_map(model: Classifier) -> LayerMap:
    """Embed = patch embedding (Sup-ViT style, no pre-norm); cls token and position embedding are a
    trainable middle group ``tokens``; each block's attention and MLP (with their norms) separately."""
    embed = _names(model, "backbone.patch_embed.")
    middle = [_names(model, "backbone.cls_token", "backbone.pos_embed")]
    labels = ["tokens"]
    for i, _ in enumerate(model.backbone.blocks):
        middle += [_names(model, f"backbone.blocks.{i}.norm1.", f"backbone.blocks.{i}.attn."),
                   _names(model, f"backbone.blocks.{i}.norm2.", f"backbone.blocks.{i}.mlp.")]
        labels += [f"block{i}.attn", f"block{i}.mlp"]
    middle.append(_names(model, "backbone.norm."))
    labels.append("final_norm")
    return LayerMap(embed=embed, embed_norm=[], middle=middle, head=_names(model, "head."), stem=embed,
                    middle_labels=labels)


def resnet_layer_map(model: Classifier) -> LayerMap:
    """Embed = stem + first stage (as the paper treats BiT); each later basic block is a middle group."""
    stem = _names(model, "backbone.stem.")
    embed = stem + _names(model, "backbone.stages.0.")
    embed_norm = [n for n in embed if ".norm" in n or n.startswith("backbone.stem.1.") or ".shortcut.1." in n]
    middle, labels = [], []
    for i, stage in enumerate(model.backbone.stages):
        if i == 0:
            continue
        for j, _ in enumerate(stage):
            middle.append(_names(model, f"backbone.stages.{i}.{j}."))
            labels.append(f"stage{i}.block{j}")
    return LayerMap(embed=embed, embed_norm=embed_norm, middle=middle, head=_names(model, "head."), stem=stem,
                    middle_labels=labels)


ARCHS: dict[str, tuple[Callable[[], nn.Module], Callable[[Classifier], LayerMap]]] = {
    "small_vit": (small_vit_backbone, vit_layer_map),
    "small_resnet": (lambda: SmallResNet(), resnet_layer_map),
}


def read_manifest() -> dict:
    """The shipped checkpoints' manifest (name -> file, sha256, arch, pretraining config and log)."""
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_checkpoint(name: str) -> tuple[str, dict[str, torch.Tensor]]:
    """Return ``(arch, backbone_state_dict)`` of a shipped checkpoint after checking its sha256."""
    entries = read_manifest()
    if name not in entries:
        raise KeyError(f"unknown checkpoint {name!r}; shipped: {sorted(entries) or '(none)'} in {MANIFEST}")
    entry = entries[name]
    path = CHECKPOINT_DIR / entry["file"]
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file {path} listed in {MANIFEST} is missing")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise ValueError(f"checkpoint {path} has sha256 {digest}, manifest says {entry['sha256']}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return entry["arch"], {k: v.float() for k, v in state.items()}


def build(arch: str, num_classes: int, checkpoint: str | None, name: str | None = None,
          img_size: int | None = None, device: str | torch.device | None = None) -> ModelBundle:
    """Backbone of ``arch`` (random, or the shipped ``checkpoint``) with a fresh ``num_classes`` head.

    ``img_size`` other than 28 is refused for the ViT (its position embedding is for 7x7 patches);
    the ResNet is convolutional and takes any size. The model is built on ``device`` (default CPU;
    ``"meta"`` builds shapes only and reads no checkpoint).
    """
    if arch not in ARCHS:
        raise KeyError(f"unknown small architecture {arch!r}; known: {sorted(ARCHS)}")
    if arch == "small_vit" and img_size not in (None, PREPROCESS.input_size[0]):
        raise ValueError(f"small_vit is built for {PREPROCESS.input_size[0]} px inputs, got img_size={img_size}")
    preprocess = PREPROCESS if img_size is None else replace(PREPROCESS, input_size=(img_size, img_size))
    make_backbone, make_map = ARCHS[arch]
    with torch.device(device or "cpu"):
        backbone = make_backbone()
    on_meta = torch.device(device or "cpu").type == "meta"
    if checkpoint is not None and not on_meta:
        ckpt_arch, state = load_checkpoint(checkpoint)
        if ckpt_arch != arch:
            raise ValueError(f"checkpoint {checkpoint!r} is a {ckpt_arch}, not a {arch}")
        backbone.load_state_dict(state)
    with torch.device(device or "cpu"):
        model = Classifier(backbone, backbone.num_features, num_classes)
    return ModelBundle(name=name or arch, model=model, layer_map=make_map(model), preprocess=preprocess,
                       feature_dim=backbone.num_features)


def _arch_factory(arch: str) -> Callable[..., ModelBundle]:
    def factory(num_classes: int, pretrained: bool = True, checkpoint: str | None = None,
                img_size: int | None = None, device: str | torch.device | None = None) -> ModelBundle:
        """``pretrained=True`` needs ``checkpoint=`` (one of the shipped ones for this architecture)."""
        if pretrained and checkpoint is None:
            raise ValueError(f"{arch} with pretrained=True needs checkpoint=NAME, e.g. {arch}_fmnist_adamw; "
                             f"or use the registered model {arch}_fmnist_sgd / {arch}_fmnist_adamw")
        return build(arch, num_classes, checkpoint if pretrained else None, img_size=img_size, device=device)

    return factory


def _checkpoint_factory(arch: str, checkpoint: str) -> Callable[..., ModelBundle]:
    def factory(num_classes: int, pretrained: bool = True, img_size: int | None = None,
                device: str | torch.device | None = None) -> ModelBundle:
        return build(arch, num_classes, checkpoint if pretrained else None, name=checkpoint, img_size=img_size,
                     device=device)

    return factory


CHECKPOINT_MODELS = {f"{arch}_fmnist_{opt}": arch for arch in ARCHS for opt in ("sgd", "adamw")}

# All weights ship in deepnet/checkpoints/, so DEEPNET_OFFLINE leaves them on.
for _arch in ARCHS:
    MODELS.add(_arch, local_weights(_arch_factory(_arch)))
for _name, _arch in CHECKPOINT_MODELS.items():
    MODELS.add(_name, local_weights(_checkpoint_factory(_arch, _name)))
