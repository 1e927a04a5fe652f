"""CIFAR-10 (ID) with CIFAR-10.1 v6 and STL-10 (OOD), as in the LP-FT paper and SGD paper Table 6.

ID: the 50k CIFAR-10 training images minus a fixed 10% (seed 0) held out as ``id_val``; ``id_test``
is the CIFAR-10 test batch. OOD: ``cifar10_1`` (2,000 images, v6) and ``stl10`` (the STL-10 test
split, labels mapped to CIFAR-10's, the "monkey" class dropped; STL has no "frog"). The
transform (not given in the SGD paper's Appendix A) is a bicubic resize to the model's input size
plus a random horizontal flip when training. Decoded arrays are cached per process.
"""
from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

from .common import ImageArray, holdout, require_file
from .registry import DatasetInfo, register_dataset
from .transforms import ImageSpec, resize_flip_transform

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STL_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
#: STL-10 class index (0-based) -> CIFAR-10 class index; monkey (7) has no CIFAR class.
STL_TO_CIFAR = {0: 0, 1: 2, 2: 1, 3: 3, 4: 4, 5: 5, 6: 7, 8: 8, 9: 9}
STL_SIZE = 96

LAYOUT = """\
ROOT/cifar-10-batches-py/data_batch_{1..5}, test_batch   CIFAR-10 python pickles (keys data, labels)
ROOT/cifar10.1_v6_data.npy, ROOT/cifar10.1_v6_labels.npy CIFAR-10.1 v6: (2000, 32, 32, 3) uint8, labels
ROOT/stl10_binary/test_X.bin, ROOT/stl10_binary/test_y.bin STL-10 binary test split (labels 1-10)"""

INFO = DatasetInfo(
    name="cifar10", num_classes=10, ood_splits=("cifar10_1", "stl10"), epochs=20, metric="acc", layout=LAYOUT,
)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    require_file(path, INFO)
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"])
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise INFO.error(f"{path} is not a CIFAR-10 python batch: {e!r}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise INFO.error(f"{path}: data has shape {data.shape} with {len(labels)} labels, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _load_npy(path: Path) -> np.ndarray:
    require_file(path, INFO)
    try:
        return np.load(path)
    except ValueError as e:
        raise INFO.error(f"{path} is not a .npy array: {e}") from None


@lru_cache(maxsize=2)
def _load_arrays(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    batches = [_read_batch(root / "cifar-10-batches-py" / f"data_batch_{i}") for i in range(1, 6)]
    train = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    test = _read_batch(root / "cifar-10-batches-py" / "test_batch")
    x101, y101 = _load_npy(root / "cifar10.1_v6_data.npy"), _load_npy(root / "cifar10.1_v6_labels.npy")
    if x101.dtype != np.uint8 or x101.shape[1:] != (32, 32, 3) or len(y101) != len(x101):
        raise INFO.error(f"CIFAR-10.1 arrays have {x101.dtype} {x101.shape} and {len(y101)} labels")
    stl_x_path, stl_y_path = root / "stl10_binary" / "test_X.bin", root / "stl10_binary" / "test_y.bin"
    raw_x = np.fromfile(require_file(stl_x_path, INFO), dtype=np.uint8)
    raw_y = np.fromfile(require_file(stl_y_path, INFO), dtype=np.uint8).astype(np.int64) - 1
    per_image = 3 * STL_SIZE * STL_SIZE
    if raw_x.size % per_image or raw_x.size // per_image != raw_y.size or raw_y.size == 0:
        raise INFO.error(f"{stl_x_path}: {raw_x.size} bytes do not hold {raw_y.size} 96x96 RGB images")
    if raw_y.min() < 0 or raw_y.max() > 9:
        raise INFO.error(f"{stl_y_path}: labels must be 1-10")
    stl_x = raw_x.reshape(-1, 3, STL_SIZE, STL_SIZE).transpose(0, 3, 2, 1)  # stored column-major
    keep = np.isin(raw_y, list(STL_TO_CIFAR))
    stl_y = np.array([STL_TO_CIFAR[int(c)] for c in raw_y[keep]], dtype=np.int64)
    return {
        "train": train, "test": test, "cifar10_1": (x101, y101.astype(np.int64)),
        "stl10": (np.ascontiguousarray(stl_x[keep]), stl_y),
    }


@register_dataset(INFO)
def build(root: Path, spec: ImageSpec, train_augment: bool) -> dict:
    arrays = _load_arrays(root.resolve())
    (x_tr, y_tr), (x_te, y_te) = arrays["train"], arrays["test"]
    keep, held = holdout(len(x_tr))
    train_tf, eval_tf = resize_flip_transform(spec, train_augment), resize_flip_transform(spec, False)

    def ds(x: np.ndarray, y: np.ndarray, transform) -> ImageArray:
        return ImageArray(x, y, np.full(len(y), -1), transform)

    return {
        "train": ds(x_tr[keep], y_tr[keep], train_tf),
        "id_val": ds(x_tr[held], y_tr[held], eval_tf),
        "id_test": ds(x_te, y_te, eval_tf),
        "cifar10_1": ds(*arrays["cifar10_1"], eval_tf),
        "stl10": ds(*arrays["stl10"], eval_tf),
    }
