"""``spurious_fmnist``: a Waterbirds-style spurious correlation built from real images.

Label: a Fashion-MNIST superclass, 0 = shirts (T-shirt/top, Shirt), 1 = pullovers and coats
(Pullover, Coat). Like bird species in Waterbirds, this core feature is harder to learn than the
background (tops vs footwear was too easy: a CNN ignored the background). "Place": the garment is
composited (opaque where its grey level is >= 32) onto a random 28x28 crop of a real photo
texture, 0 = grass, 1 = brick (scikit-image sample images, each downscaled 4x to 128x128 before
cropping so the texture shows). As in Waterbirds, place agrees with the label in exactly 95% of each label's training images (and in
``id_val`` / ``id_test``, which follow the training distribution); ``ood_test`` has the four
(label, place) groups in equal numbers, so the two minority groups are as common as the
majority ones. Groups are ``2 * label + place``; the OOD metric is worst-group accuracy.

Sizes per label: train 3,000 and id_val 500 (from Fashion-MNIST train), id_test 500 and
ood_test 800 (from Fashion-MNIST test). Everything is drawn with fixed seeds: the benchmark is
the same in every process.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .common import ImageArray
from .fashion_mnist import LAYOUT, load_fashion_mnist
from .registry import DatasetInfo, register_dataset
from .transforms import ImageSpec, resize_flip_transform

LABEL_CLASSES = ((0, 6), (2, 4))  # shirts, pullovers/coats (Fashion-MNIST class numbers)
PLACES = ("grass", "brick")
MAJORITY_FRACTION = 0.95
TRAIN_PER_LABEL, VAL_PER_LABEL, ID_TEST_PER_LABEL, OOD_PER_GROUP = 3000, 500, 500, 400
TEXTURE_DOWNSCALE, ALPHA_FULL_AT, SEED = 4, 32.0, 0

INFO = DatasetInfo(name="spurious_fmnist", num_classes=2, ood_splits=("ood_test",), epochs=10,
                   metric="worst_group_acc", layout=LAYOUT, needs_root=False, default_input_size=32)


@lru_cache(maxsize=1)
def textures() -> tuple[np.ndarray, ...]:
    """The two place textures as float arrays in [0, 1], downscaled by ``TEXTURE_DOWNSCALE``."""
    import skimage.data
    from skimage.transform import downscale_local_mean

    return tuple(
        downscale_local_mean(getattr(skimage.data, name)().astype(np.float64) / 255.0,
                             (TEXTURE_DOWNSCALE, TEXTURE_DOWNSCALE))
        for name in PLACES
    )


def composite(garments: np.ndarray, places: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paste each 28x28 garment onto a random crop of its place's texture; returns uint8."""
    out = np.empty_like(garments)
    h, w = garments.shape[1:]
    for i, (garment, place) in enumerate(zip(garments, places)):
        tex = textures()[place]
        top, left = rng.integers(0, tex.shape[0] - h + 1), rng.integers(0, tex.shape[1] - w + 1)
        alpha = np.clip(garment / ALPHA_FULL_AT, 0.0, 1.0)  # Fashion-MNIST backgrounds are exactly 0
        background = 255.0 * tex[top:top + h, left:left + w]
        out[i] = np.round(alpha * garment + (1 - alpha) * background)
    return out


def spurious_places(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Places equal to the label for exactly ``round(fraction * n)`` of each label's n images."""
    places = 1 - labels
    for y in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == y))
        places[members[: round(fraction * len(members))]] = y
    return places


def _draw(images: np.ndarray, classes: np.ndarray, per_label: list[int], rng: np.random.Generator):
    """Disjoint random draws of ``n`` images per label for each n in ``per_label``; returns index lists."""
    draws: list[list[np.ndarray]] = [[] for _ in per_label]
    for members in (np.flatnonzero(np.isin(classes, c)) for c in LABEL_CLASSES):
        if sum(per_label) > len(members):
            raise INFO.error(f"need {sum(per_label)} images per label, Fashion-MNIST gives {len(members)}")
        cuts = np.cumsum(per_label)[:-1]
        for k, part in enumerate(np.split(rng.permutation(members)[: sum(per_label)], cuts)):
            draws[k].append(part)
    return [np.concatenate(d) for d in draws]


def _label_of(classes: np.ndarray) -> np.ndarray:
    return np.isin(classes, LABEL_CLASSES[1]).astype(np.int64)


@lru_cache(maxsize=2)
def make_arrays(root: Path | None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(images, labels, groups) per split; cached because compositing takes a few seconds."""
    rng = np.random.default_rng(SEED)
    (tr_x, tr_c), (te_x, te_c) = load_fashion_mnist(root)
    train_idx, val_idx = _draw(tr_x, tr_c, [TRAIN_PER_LABEL, VAL_PER_LABEL], rng)
    id_test_idx, ood_idx = _draw(te_x, te_c, [ID_TEST_PER_LABEL, 2 * OOD_PER_GROUP], rng)
    out = {}
    for name, x, c, idx, fraction in (
        ("train", tr_x, tr_c, train_idx, MAJORITY_FRACTION),
        ("id_val", tr_x, tr_c, val_idx, MAJORITY_FRACTION),
        ("id_test", te_x, te_c, id_test_idx, MAJORITY_FRACTION),
        ("ood_test", te_x, te_c, ood_idx, 0.5),
    ):
        labels = _label_of(c[idx])
        places = spurious_places(labels, fraction, rng)
        out[name] = (composite(x[idx], places, rng), labels, 2 * labels + places)
    return out


@register_dataset(INFO)
def build(root: Path | None, spec: ImageSpec, train_augment: bool) -> dict:
    arrays = make_arrays(root)
    return {
        name: ImageArray(*arrays[name], resize_flip_transform(spec, train_augment and name == "train"))
        for name in INFO.split_names
    }
