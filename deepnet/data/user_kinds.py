"""The user dataset kinds ``folder``, ``csv`` and ``npz``: how each reads its data root into split
tables (:class:`SplitTable`), and the layout each quotes in its errors (:data:`KINDS`)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.registry import Registry

from .common import LayoutSource, parse_int, read_csv
from .registry import CorruptImageError, DatasetLayoutError, layout_error

SPLIT_NAME = re.compile(r"(train|id_val|id_test|ood_[A-Za-z0-9][A-Za-z0-9_.-]*)")
#: file extensions PIL can open; any other file inside a folder dataset's class directory is an error
IMAGE_EXTENSIONS = frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)

SPLITS_TEXT = "splits: train, id_val, id_test and one or more ood_<name> (e.g. ood_sketch)"
FOLDER_LAYOUT = f"""\
DATA_ROOT/train/<class>/<image>      one subdirectory per class (ImageFolder style, nested allowed)
DATA_ROOT/id_val/<class>/<image>
DATA_ROOT/id_test/<class>/<image>
DATA_ROOT/ood_<name>/<class>/<image> any number (at least one) of OOD splits
{SPLITS_TEXT}; classes: the train subdirectories; no groups"""
CSV_LAYOUT = f"""\
DATA_ROOT is a CSV file with a header and columns path, label, split and optionally group:
  path   image file, relative to the CSV's directory (or absolute)
  label  class name or integer
  split  {SPLITS_TEXT}
  group  integer >= 0 (optional; needed by metric worst_group_acc)"""
NPZ_LAYOUT = f"""\
DATA_ROOT is an .npz file with, for each split S, the arrays
  S_images  uint8 (N, H, W), (N, H, W, 1) or (N, H, W, 3)
  S_labels  (N,) integers or strings
  S_groups  (N,) integers >= 0 (optional; needed by metric worst_group_acc)
{SPLITS_TEXT}"""


@dataclass(frozen=True)
class UserSource:
    """Names a user dataset in its layout errors."""

    name: str
    layout: str

    def error(self, problem: str) -> DatasetLayoutError:
        return layout_error(self.name, problem, self.layout)


@dataclass
class SplitTable:
    """One split as a kind reads it: image files (or a uint8 image array), string labels, groups
    (-1 where there are none), and ``origin(i)``, where item ``i`` came from (quoted in errors)."""

    images: list[Path] | np.ndarray
    labels: list[str]
    groups: np.ndarray
    origin: Callable[[int], str]


Reader = Callable[[Path, LayoutSource], dict[str, SplitTable]]


@dataclass(frozen=True)
class DataKind:
    """A dataset kind: how to read its data root, the layout quoted in errors, and whether the data
    root is one file (``csv``, ``npz``) or a directory (``folder``)."""

    name: str
    read: Reader
    layout: str
    root_is_file: bool


KINDS: Registry[DataKind] = Registry("dataset kind")


def _check_header(path: Path, src: LayoutSource) -> None:
    try:
        with Image.open(path):
            pass
    except (UnidentifiedImageError, OSError) as err:
        raise CorruptImageError(f"{src.name}: cannot decode image file {path}: {err}") from err


def _image_files(class_dir: Path, src: LayoutSource) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(f for f in filenames if not f.startswith(".")):
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise src.error(f"{path} is not an image file (no image file extension)")
            files.append(path)
    return files


def read_folder(root: Path, src: LayoutSource) -> dict[str, SplitTable]:
    """Splits of a ``folder`` dataset: one directory per split, one subdirectory per class."""
    split_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = [p.name for p in split_dirs if not SPLIT_NAME.fullmatch(p.name)]
    if stray:
        raise src.error(f"{root} holds directories {stray} that are not splits")
    tables = {}
    for split_dir in split_dirs:
        files: list[Path] = []
        labels: list[str] = []
        for entry in sorted(p for p in split_dir.iterdir() if not p.name.startswith(".")):
            if not entry.is_dir():
                raise src.error(f"{entry} lies directly in {split_dir.name}/; images go in one subdirectory per class")
            images = _image_files(entry, src)
            if not images:
                raise src.error(f"empty class directory {entry} (no image files)")
            _check_header(images[0], src)
            files += images
            labels += [entry.name] * len(images)
        if not files:
            raise src.error(f"split directory {split_dir} has no class subdirectories")
        tables[split_dir.name] = SplitTable(files, labels, np.full(len(files), -1), lambda i, f=files: str(f[i]))
    return tables


def read_csv_table(path: Path, src: LayoutSource) -> dict[str, SplitTable]:
    """Splits of a ``csv`` dataset: one row per image (path, label, split, optional group)."""
    rows = read_csv(path, ("path", "label", "split"), src)
    has_group = "group" in rows[0]
    columns: dict[str, tuple[list[Path], list[str], list[int], list[int]]] = {}
    for i, row in enumerate(rows):
        line = i + 2  # the header is line 1
        split, label = (row["split"] or "").strip(), (row["label"] or "").strip()
        if not SPLIT_NAME.fullmatch(split):
            raise src.error(f"{path} line {line}: split {split!r} is not train, id_val, id_test or ood_<name>")
        if not label:
            raise src.error(f"{path} line {line}: empty label")
        file = path.parent / (row["path"] or "").strip()
        if not file.is_file():
            raise src.error(f"{path} line {line}: missing image file {file}")
        group = parse_int(row["group"] or "", path, "group", src) if has_group else -1
        if has_group and group < 0:
            raise src.error(f"{path} line {line}: group must be an integer >= 0, got {group}")
        files, labels, groups, lines = columns.setdefault(split, ([], [], [], []))
        files.append(file)
        labels.append(label)
        groups.append(group)
        lines.append(line)
    for files, *_ in columns.values():
        _check_header(files[0], src)
    return {
        split: SplitTable(files, labels, np.asarray(groups, dtype=np.int64),
                          lambda i, f=files, n=lines: f"{f[i]} ({path} line {n[i]})")
        for split, (files, labels, groups, lines) in sorted(columns.items())
    }


_NPZ_KEY = re.compile(r"(?P<split>.+)_(?P<what>images|labels|groups)")


def read_npz(path: Path, src: LayoutSource) -> dict[str, SplitTable]:
    """Splits of an ``npz`` dataset: arrays ``<split>_images``, ``<split>_labels``, ``<split>_groups``."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise src.error(f"cannot read {path} as an .npz file: {err}") from None
    with archive:
        keys = list(archive.files)
        matches = {key: _NPZ_KEY.fullmatch(key) for key in keys}
        stray = [k for k, m in matches.items() if m is None or not SPLIT_NAME.fullmatch(m["split"])]
        if stray:
            raise src.error(f"{path} holds arrays {stray} that are not <split>_images / _labels / _groups")
        tables = {}
        for split in sorted({m["split"] for m in matches.values() if m}):
            tables[split] = _npz_split(path, archive, split, src)
    return tables


def _npz_split(path: Path, archive, split: str, src: LayoutSource) -> SplitTable:
    for what in ("images", "labels"):
        if f"{split}_{what}" not in archive.files:
            raise src.error(f"{path}: split {split!r} lacks the array {split}_{what}")
    images = archive[f"{split}_images"]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.dtype != np.uint8 or not (images.ndim == 3 or images.ndim == 4 and images.shape[-1] == 3):
        raise src.error(f"{path}: {split}_images must be uint8 (N, H, W), (N, H, W, 1) or (N, H, W, 3); "
                        f"got {images.dtype} {images.shape}")
    labels = archive[f"{split}_labels"]
    if labels.shape != (len(images),) or labels.dtype.kind not in "iuUS":
        raise src.error(f"{path}: {split}_labels must be ({len(images)},) integers or strings; "
                        f"got {labels.dtype} {labels.shape}")
    groups = np.full(len(images), -1, dtype=np.int64)
    if f"{split}_groups" in archive.files:
        raw = archive[f"{split}_groups"]
        if raw.shape != (len(images),) or raw.dtype.kind not in "iu" or (raw < 0).any():
            raise src.error(f"{path}: {split}_groups must be ({len(images)},) integers >= 0; got {raw.dtype} {raw.shape}")
        groups = raw.astype(np.int64)
    if len(images) == 0:
        raise src.error(f"{path}: split {split!r} is empty")
    return SplitTable(images, labels.astype(str).tolist(), groups,
                      lambda i: f"{path} {split}_labels[{i}]")


KINDS.add("folder", DataKind("folder", read_folder, FOLDER_LAYOUT, root_is_file=False))
KINDS.add("csv", DataKind("csv", read_csv_table, CSV_LAYOUT, root_is_file=True))
KINDS.add("npz", DataKind("npz", read_npz, NPZ_LAYOUT, root_is_file=True))
