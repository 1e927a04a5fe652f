"""Pieces every loader shares: image-file and in-memory datasets, CSV reading, held-out splits."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from .registry import CorruptImageError, DatasetLayoutError
from .transforms import Transform


IntArrayLike = Sequence[int] | np.ndarray


class LayoutSource(Protocol):
    """What names a dataset in its errors (a :class:`~deepnet.data.registry.DatasetInfo` fits)."""

    name: str

    def error(self, problem: str) -> DatasetLayoutError: ...


def _as_int_array(values: IntArrayLike, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"{what} has shape {arr.shape}, expected ({n},)")
    return arr


class ImageFiles(Dataset):
    """Images on disk with integer labels and groups; decodes lazily, converts to RGB.

    ``files``, ``labels`` and ``groups`` are public (e.g. for class-balanced sampling).

    A missing file raises :class:`DatasetLayoutError` and an undecodable one
    :class:`CorruptImageError`, both naming the file: nothing is silently dropped.
    """

    def __init__(self, files: Sequence[Path], labels: IntArrayLike, groups: IntArrayLike, transform: Transform,
                 info: LayoutSource) -> None:
        self.files = list(files)
        self.labels = _as_int_array(labels, len(self.files), "labels")
        self.groups = _as_int_array(groups, len(self.files), "groups")
        self.transform = transform
        self.info = info

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path = self.files[i]
        try:
            with Image.open(path) as img:
                img.load()
                rgb = img.convert("RGB")
        except FileNotFoundError:
            raise self.info.error(f"missing image file {path}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise CorruptImageError(f"{self.info.name}: cannot decode image file {path}: {e}") from e
        return self.transform(rgb), int(self.labels[i]), int(self.groups[i])


class ImageArray(Dataset):
    """Decoded uint8 images held in memory, (N, H, W) grey or (N, H, W, 3) RGB."""

    def __init__(self, images: np.ndarray, labels: IntArrayLike, groups: IntArrayLike, transform: Transform) -> None:
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(f"images must be uint8 (N,H,W) or (N,H,W,3), got {images.dtype} {images.shape}")
        self.images = images
        self.labels = _as_int_array(labels, len(images), "labels")
        self.groups = _as_int_array(groups, len(images), "groups")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i]).convert("RGB")
        return self.transform(img), int(self.labels[i]), int(self.groups[i])


def require_file(path: Path, info: LayoutSource) -> Path:
    if not path.is_file():
        raise info.error(f"missing file {path}")
    return path


def read_csv(path: Path, required: Sequence[str], info: LayoutSource) -> list[dict[str, str]]:
    """Rows of a CSV with a header; a missing file or column is a layout error."""
    require_file(path, info)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise info.error(f"{path} lacks column(s) {missing}; it has {reader.fieldnames}")
        rows = list(reader)
    if not rows:
        raise info.error(f"{path} has no rows")
    return rows


def parse_int(value: str, path: Path, column: str, info: LayoutSource) -> int:
    try:
        return int(float(value))
    except ValueError:
        raise info.error(f"{path}: column {column!r} holds non-integer {value!r}") from None


def check_first_file(files: Sequence[Path], split: str, info: LayoutSource) -> None:
    """Cheap check that a split is non-empty and its files are where the layout says."""
    if not files:
        raise info.error(f"split {split!r} is empty")
    if not Path(files[0]).is_file():
        raise info.error(f"missing image file {files[0]} (first file of split {split!r})")


def partition(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split ``range(n)`` at random into parts of the given fractions (summing to 1).

    Deterministic in ``seed``; each part is a sorted index array with at least one element.
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
    sizes = [max(1, round(n * f)) for f in fractions[1:]]
    if sum(sizes) >= n:
        raise ValueError(f"cannot split {n} examples into fractions {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([n - sum(sizes)] + sizes[:-1])
    return [np.sort(part) for part in np.split(perm, cuts)]


#: where a benchmark ships no ID validation split, this fraction of its training data is held out
ID_VAL_FRACTION, ID_VAL_SEED = 0.1, 0


def holdout(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices: the fixed ``ID_VAL_FRACTION`` hold-out that becomes ``id_val``."""
    kept, held = partition(n, (1 - ID_VAL_FRACTION, ID_VAL_FRACTION), ID_VAL_SEED)
    return kept, held
