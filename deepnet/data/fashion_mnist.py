"""Reader for the Fashion-MNIST idx files installed by Debian's ``dataset-fashion-mnist`` package."""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

from .registry import DatasetInfo

#: where ``apt-get install dataset-fashion-mnist`` puts the files; a data root overrides it
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
LAYOUT = f"""\
DIR/train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
DIR/t10k-labels-idx1-ubyte.gz   Fashion-MNIST idx files (gzipped)
DIR defaults to {DEFAULT_DIR}: install with `apt-get install dataset-fashion-mnist`,
or pass a directory holding these files as the data root"""


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = np.frombuffer(raw[: 4 * (1 + ndim)], dtype=">i4")
    if len(header) != 1 + ndim or header[0] != magic:
        raise ValueError(f"not an idx file with magic {magic}")
    data = np.frombuffer(raw[4 * (1 + ndim):], dtype=np.uint8)
    shape = tuple(int(d) for d in header[1:])
    if data.size != int(np.prod(shape)):
        raise ValueError(f"holds {data.size} bytes for shape {shape}")
    return data.reshape(shape)


@lru_cache(maxsize=4)
def _read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_name, lbl_name = FILES[split]
    images = _read_idx(directory / img_name, 2051, 3)
    labels = _read_idx(directory / lbl_name, 2049, 1).astype(np.int64)
    if len(images) != len(labels) or labels.max() >= len(CLASSES):
        raise ValueError(f"{len(images)} images but {len(labels)} labels (or labels out of range)")
    return images, labels


def load_fashion_mnist(directory: Path, split: str, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of the ``train`` or ``test`` split; cached per process."""
    missing = [str(directory / name) for name in FILES[split] if not (directory / name).is_file()]
    if missing:
        raise info.error(f"Fashion-MNIST not found (missing {missing}); "
                         "install it with `apt-get install dataset-fashion-mnist`")
    try:
        return _read_split(directory, split)
    except (OSError, EOFError, ValueError) as e:
        raise info.error(f"corrupt Fashion-MNIST file in {directory}: {e}") from None


def fashion_mnist_dir(root: Path | None) -> Path:
    return DEFAULT_DIR if root is None else root
