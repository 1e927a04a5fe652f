"""Reader for the Fashion-MNIST idx files installed by Debian's ``dataset-fashion-mnist`` package."""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

from .registry import DatasetLayoutError

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
    return data.reshape(shape).copy()  # writable (frombuffer views are read-only)


def _layout_error(problem: str) -> DatasetLayoutError:
    return DatasetLayoutError(f"Fashion-MNIST: {problem}\nExpected layout:\n{LAYOUT}")


@lru_cache(maxsize=4)
def _read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_name, lbl_name = FILES[split]
    missing = [str(directory / name) for name in FILES[split] if not (directory / name).is_file()]
    if missing:
        raise _layout_error(f"not found (missing {missing}); install it with `apt-get install dataset-fashion-mnist`")
    try:
        images = _read_idx(directory / img_name, 2051, 3)
        labels = _read_idx(directory / lbl_name, 2049, 1).astype(np.int64)
    except (OSError, EOFError, ValueError) as e:
        raise _layout_error(f"corrupt file in {directory}: {e}") from None
    if len(images) != len(labels) or labels.max() >= len(CLASSES):
        raise _layout_error(f"{directory}: {len(images)} images but {len(labels)} labels (or labels out of range)")
    return images, labels


def load_fashion_mnist(root: str | Path | None = None) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((train_images, train_labels), (test_images, test_labels))``: uint8 (N, 28, 28), int64 (N,).

    ``root`` is a directory holding the idx files; ``None`` means the Debian install location.
    Arrays are cached and shared per process: do not modify them in place. Missing or corrupt files raise
    :class:`DatasetLayoutError`.
    """
    directory = DEFAULT_DIR if root is None else Path(root).expanduser()
    return _read_split(directory, "train"), _read_split(directory, "test")
