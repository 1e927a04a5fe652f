"""``fmnist_subpop``: a BREEDS-style sub-population shift built from real Fashion-MNIST images.

Three superclasses, each split into disjoint ID and OOD subclasses (Bag is unused):

====================  ========================  ===================
superclass (label)    ID subclasses (train)     OOD subclasses
====================  ========================  ===================
0 top                 T-shirt/top, Pullover     Shirt, Coat
1 footwear            Sandal, Sneaker           Ankle boot
2 long garment        Trouser                   Dress
====================  ========================  ===================

Splits: Fashion-MNIST train images of the ID subclasses, less a fixed 10% held out as ``id_val``;
``id_test`` / ``ood_test`` = Fashion-MNIST test images of the ID / OOD subclasses. Groups are
the original Fashion-MNIST class numbers. Default size 32 px, 3 channels (grey replicated).
The raw reader ``load_fashion_mnist`` is re-exported here for the small-model pretraining code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import ImageArray, holdout
from .fashion_mnist import LAYOUT, load_fashion_mnist
from .registry import DatasetInfo, register_dataset
from .transforms import ImageSpec, resize_flip_transform

__all__ = ["INFO", "SUPERCLASSES", "SUPERCLASS_NAMES", "build", "load_fashion_mnist"]

#: superclass label -> (ID Fashion-MNIST classes, OOD Fashion-MNIST classes)
SUPERCLASSES = {
    0: ((0, 2), (6, 4)),   # top: T-shirt/top, Pullover | Shirt, Coat
    1: ((5, 7), (9,)),     # footwear: Sandal, Sneaker | Ankle boot
    2: ((1,), (3,)),       # long garment: Trouser | Dress
}
SUPERCLASS_NAMES = ("top", "footwear", "long garment")

INFO = DatasetInfo(name="fmnist_subpop", num_classes=3, ood_splits=("ood_test",), epochs=5, metric="acc",
                   layout=LAYOUT, needs_root=False, default_input_size=32)


def _select(images: np.ndarray, labels: np.ndarray, domain: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images of the ID (domain 0) or OOD (domain 1) subclasses, their superclass and original class."""
    to_super = {c: s for s, parts in SUPERCLASSES.items() for c in parts[domain]}
    idx = np.flatnonzero(np.isin(labels, list(to_super)))
    return images[idx], np.array([to_super[int(c)] for c in labels[idx]]), labels[idx]


@register_dataset(INFO)
def build(root: Path | None, spec: ImageSpec, train_augment: bool) -> dict:
    train, test = load_fashion_mnist(root)
    tr_x, tr_y, tr_g = _select(*train, domain=0)
    keep, held = holdout(len(tr_x))
    eval_tf = resize_flip_transform(spec, False)
    return {
        "train": ImageArray(tr_x[keep], tr_y[keep], tr_g[keep], resize_flip_transform(spec, train_augment)),
        "id_val": ImageArray(tr_x[held], tr_y[held], tr_g[held], eval_tf),
        "id_test": ImageArray(*_select(*test, domain=0), eval_tf),
        "ood_test": ImageArray(*_select(*test, domain=1), eval_tf),
    }
