"""The paper's input pipelines (SGD paper, Appendix A "Data augmentation and input preprocessing").

Sizes in the paper are for 224 px inputs; here every size scales with the model's input size, so
at 224 the recipes are exactly the paper's (e.g. Living-17 eval: resize 256x256, centre-crop 224).
All recipes end with ToTensor and the model's Normalize(mean, std). Images reach them as RGB PIL
images (loaders convert greyscale to RGB).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Transform = Callable[[Any], Any]


@dataclass(frozen=True)
class ImageSpec:
    """Mean, std and output size (H, W) of the tensors a model expects, with the model's resize
    interpolation and evaluation centre-crop fraction (timm's data config ``crop_pct``)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: tuple[int, int]
    interpolation: str = "bicubic"
    crop_pct: float = 1.0

    @classmethod
    def from_preprocess(cls, preprocess: Any | None, default_size: int) -> "ImageSpec":
        """From anything with ``mean``, ``std``, ``input_size`` (and optionally ``interpolation``,
        ``crop_pct``); ``None`` -> ImageNet stats, default size."""
        if preprocess is None:
            return cls(IMAGENET_MEAN, IMAGENET_STD, (default_size, default_size))
        size = preprocess.input_size
        if isinstance(size, int):
            size = (size, size)
        if len(size) == 3:  # timm style (C, H, W)
            size = size[1:]
        h, w = (int(s) for s in size)
        if h <= 0 or w <= 0:
            raise ValueError(f"input_size must be positive, got {preprocess.input_size}")
        return cls(tuple(float(m) for m in preprocess.mean), tuple(float(s) for s in preprocess.std), (h, w),
                   str(getattr(preprocess, "interpolation", cls.interpolation)),
                   float(getattr(preprocess, "crop_pct", cls.crop_pct)))

    def scaled(self, pixels_at_224: int) -> tuple[int, int]:
        """A size the paper states for 224 px inputs, scaled to this spec's size."""
        h, w = self.size
        return round(h * pixels_at_224 / 224), round(w * pixels_at_224 / 224)


def _finish(spec: ImageSpec) -> list[Transform]:
    return [T.ToTensor(), T.Normalize(spec.mean, spec.std)]


def fmow_transform(spec: ImageSpec, train: bool) -> Transform:
    """WILDS-FMoW: images are already 224x224, so no resize at 224 (PIL resize to the same size is a
    copy); random horizontal flip when training, nothing else."""
    ops: list[Transform] = [T.Resize(spec.size, InterpolationMode.BILINEAR)]
    if train:
        ops.append(T.RandomHorizontalFlip())
    return T.Compose(ops + _finish(spec))


def camelyon_transform(spec: ImageSpec, train: bool) -> Transform:
    """WILDS-Camelyon: bilinear resize to 224x224; random horizontal flip when training."""
    ops: list[Transform] = [T.Resize(spec.size, InterpolationMode.BILINEAR)]
    if train:
        ops.append(T.RandomHorizontalFlip())
    return T.Compose(ops + _finish(spec))


def living17_transform(spec: ImageSpec, train: bool) -> Transform:
    """Living-17 (as Kumar et al., 2022): train RandomResizedCrop(224) (torch defaults) + flip;
    test resize to 256x256 then centre-crop 224."""
    if train:
        ops: list[Transform] = [T.RandomResizedCrop(spec.size), T.RandomHorizontalFlip()]
    else:
        ops = [T.Resize(spec.scaled(256)), T.CenterCrop(spec.size)]
    return T.Compose(ops + _finish(spec))


def domainnet_transform(spec: ImageSpec, train: bool) -> Transform:
    """DomainNet (as Kumar et al., 2022): train bicubic resize 256x256, RandomCrop(224), flip;
    test bicubic resize to 224x224."""
    if train:
        ops: list[Transform] = [
            T.Resize(spec.scaled(256), InterpolationMode.BICUBIC),
            T.RandomCrop(spec.size),
            T.RandomHorizontalFlip(),
        ]
    else:
        ops = [T.Resize(spec.size, InterpolationMode.BICUBIC)]
    return T.Compose(ops + _finish(spec))


def waterbirds_transform(spec: ImageSpec, train: bool) -> Transform:
    """Waterbirds: bicubic resize to 224x224 then centre-crop 224, identical at train and test."""
    del train  # the paper uses no augmentation on Waterbirds
    return T.Compose([T.Resize(spec.size, InterpolationMode.BICUBIC), T.CenterCrop(spec.size)] + _finish(spec))


def resize_flip_transform(spec: ImageSpec, train: bool) -> Transform:
    """CIFAR-10 and the Fashion-MNIST benchmarks (not in Appendix A; our choice, stated in the
    docs): bicubic resize to the input size, random horizontal flip when training."""
    ops: list[Transform] = [T.Resize(spec.size, InterpolationMode.BICUBIC)]
    if train:
        ops.append(T.RandomHorizontalFlip())
    return T.Compose(ops + _finish(spec))


def resize_transform(spec: ImageSpec, train: bool) -> Transform:
    """Digits: bicubic resize only; flips would change a digit's identity, so no augmentation."""
    del train
    return T.Compose([T.Resize(spec.size, InterpolationMode.BICUBIC)] + _finish(spec))


def model_eval_transform(spec: ImageSpec) -> Transform:
    """The model's own evaluation transform as timm builds it from a data config: resize the shorter
    side to ``size / crop_pct`` with the model's interpolation, centre-crop ``size``, normalise."""
    from timm.data import create_transform

    return create_transform(input_size=(3, *spec.size), is_training=False, interpolation=spec.interpolation,
                            mean=spec.mean, std=spec.std, crop_pct=spec.crop_pct)


def model_train_transform(spec: ImageSpec) -> Transform:
    """timm's default training transform for the model's data config: random-resized crop (scale
    0.08-1, ratio 3/4-4/3), horizontal flip, colour jitter 0.4, normalise (no auto-augment)."""
    from timm.data import create_transform

    return create_transform(input_size=(3, *spec.size), is_training=True, interpolation=spec.interpolation,
                            mean=spec.mean, std=spec.std)
