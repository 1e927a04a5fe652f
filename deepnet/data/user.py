"""A user's own data without writing Python: the dataset kinds ``folder``, ``csv`` and ``npz``.

A user dataset is a kind (:data:`KINDS`), a data root, a metric and a train augmentation
(:data:`AUGMENTATIONS`), declared in a sweep spec's ``[dataset.NAME]`` table or with
``train --dataset-kind``. :func:`register_user_dataset` reads and checks the layout and registers it
in :data:`~deepnet.data.registry.DATASETS` like any benchmark, so ``build_splits``, the trainer and
the sweeps treat it the same way.

Splits are ``train``, ``id_val``, ``id_test`` and one or more ``ood_<name>``. The classes are the
train split's labels, sorted (numerically when every label is an integer, else as strings); every
other split's labels must be among them. Evaluation splits get the model's own eval transform from
its timm data config (:func:`~deepnet.data.transforms.model_eval_transform`); the train split gets
the declared augmentation (default ``none``: the eval transform).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms as T

from common.registry import Registry
from deepnet.config import USER_DATASET_DEFAULTS

from .common import ImageArray, ImageFiles, LayoutSource, parse_int, read_csv
from .registry import DATASETS, CorruptImageError, DatasetEntry, DatasetInfo, DatasetLayoutError, layout_error
from .transforms import ImageSpec, Transform, model_eval_transform, model_train_transform

REQUIRED_SPLITS = ("train", "id_val", "id_test")
SPLIT_NAME = re.compile(r"(train|id_val|id_test|ood_[A-Za-z0-9][A-Za-z0-9_.-]*)")
METRICS = ("acc", "worst_group_acc")
#: fine-tuning epochs of a user dataset unless the spec or ``--epochs`` says otherwise
USER_EPOCHS = 10
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
class _Source:
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
Augmentation = Callable[[ImageSpec], Transform]
AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")


@AUGMENTATIONS.register("none")
def no_augmentation(spec: ImageSpec) -> Transform:
    """The model's eval transform (timm data config: resize, centre-crop, normalise)."""
    return model_eval_transform(spec)


@AUGMENTATIONS.register("flip")
def flip_augmentation(spec: ImageSpec) -> Transform:
    """Random horizontal flip, then the model's eval transform."""
    return T.Compose([T.RandomHorizontalFlip(), model_eval_transform(spec)])


@AUGMENTATIONS.register("timm")
def timm_augmentation(spec: ImageSpec) -> Transform:
    """timm's default train transform: random-resized crop, flip, colour jitter 0.4, normalise."""
    return model_train_transform(spec)


def _is_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text) is not None


def sorted_classes(labels: list[str]) -> list[str]:
    """The distinct labels, sorted numerically when all are integers, else as strings."""
    unique = set(labels)
    return sorted(unique, key=int) if all(_is_int(label) for label in unique) else sorted(unique)


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


@dataclass(frozen=True)
class Declaration:
    """What a user dataset is made of: its kind, its data root (resolved), metric and augmentation."""

    kind: str
    root: Path
    metric: str
    augment: str


@dataclass(frozen=True)
class UserBuilder:
    """The registered builder of a user dataset: the splits read at registration, their labels as
    indices into ``classes`` (the train split's labels, sorted)."""

    declaration: Declaration
    info: DatasetInfo
    classes: tuple[str, ...]
    tables: dict[str, SplitTable]
    labels: dict[str, np.ndarray]

    def __call__(self, root: Path | None, spec: ImageSpec, train_augment: bool) -> dict[str, Dataset]:
        if root is None or Path(root).expanduser().resolve() != self.declaration.root:
            raise self.info.error(f"registered from {self.declaration.root}, asked to build from {root}")
        eval_tf = model_eval_transform(spec)
        train_tf = AUGMENTATIONS.get(self.declaration.augment)(spec) if train_augment else eval_tf
        splits: dict[str, Dataset] = {}
        for split in self.info.split_names:
            table, tf = self.tables[split], train_tf if split == "train" else eval_tf
            if isinstance(table.images, np.ndarray):
                splits[split] = ImageArray(table.images, self.labels[split], table.groups, tf)
            else:
                splits[split] = ImageFiles(table.images, self.labels[split], table.groups, tf, self.info)
        return splits


def check_declaration(kind: str, metric: str = USER_DATASET_DEFAULTS["metric"],
                      augment: str = USER_DATASET_DEFAULTS["augment"]) -> None:
    """Raise ``KeyError`` / ``ValueError`` naming the choices unless kind, metric and augment exist."""
    KINDS.get(kind)
    AUGMENTATIONS.get(augment)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")


def register_user_dataset(name: str, kind: str, root: str | Path | None,
                          metric: str = USER_DATASET_DEFAULTS["metric"],
                          augment: str = USER_DATASET_DEFAULTS["augment"]) -> DatasetInfo:
    """Read the ``kind`` dataset at ``root``, check its layout and register it as dataset ``name``.

    Parameters
    ----------
    name : str
        The dataset's name (``RunConfig.dataset``); must not be a registered benchmark.
    kind : str
        A registered kind (:data:`KINDS`): ``folder``, ``csv`` or ``npz``.
    root : str, Path or None
        The data root: the split directories' parent (folder) or the CSV / .npz file (None is an
        error naming the flag to pass).
    metric : str
        The OOD metric, ``acc`` or ``worst_group_acc`` (needs a group for every OOD example).
    augment : str
        The train augmentation (:data:`AUGMENTATIONS`).

    Returns
    -------
    DatasetInfo
        The registered info: classes from the train split, OOD splits sorted by name.

    Raises
    ------
    DatasetLayoutError
        A layout problem (missing or empty split, empty class, label outside the train classes,
        unreadable image); the message names the file and quotes the expected layout.
    KeyError
        Unknown kind or augmentation, or ``name`` already registered with another declaration.
    ValueError
        Unknown metric.

    Notes
    -----
    Registering the same declaration again returns the registered info without reading the data.
    """
    check_declaration(kind, metric, augment)
    data_kind = KINDS.get(kind)
    if root is None:
        raise layout_error(name, "no data root given (pass --data-root / RunConfig.data_root)", data_kind.layout)
    path = Path(root).expanduser().resolve()
    declaration = Declaration(kind, path, metric, augment)
    if name in DATASETS:
        entry = DATASETS.get(name)
        if isinstance(entry.build, UserBuilder) and entry.build.declaration == declaration:
            return entry.info
        raise KeyError(f"dataset {name!r} is already registered; give your {kind} dataset another name")
    src = _Source(name, data_kind.layout)
    if not (path.is_file() if data_kind.root_is_file else path.is_dir()):
        raise src.error(f"data root {path} is not a {'file' if data_kind.root_is_file else 'directory'}")
    tables = data_kind.read(path, src)
    missing = [s for s in REQUIRED_SPLITS if s not in tables]
    ood = sorted(s for s in tables if s.startswith("ood_"))
    if missing or not ood:
        need = missing + ([] if ood else ["ood_<name>"])
        raise src.error(f"missing split(s) {need}; found {sorted(tables) or 'none'}")
    classes = sorted_classes(tables["train"].labels)
    index = {label: i for i, label in enumerate(classes)}
    labels = {}
    for split, table in tables.items():
        unknown = next((i for i, label in enumerate(table.labels) if label not in index), None)
        if unknown is not None:
            raise src.error(f"{table.origin(unknown)}: label {table.labels[unknown]!r} of split {split!r} is not "
                            f"a train class; train classes: {', '.join(classes)}")
        labels[split] = np.fromiter((index[label] for label in table.labels), np.int64, len(table.labels))
    if metric == "worst_group_acc":
        for split in ood:
            ungrouped = np.flatnonzero(tables[split].groups < 0)
            if len(ungrouped):
                raise src.error(f"metric worst_group_acc needs a group for every OOD example; "
                                f"{tables[split].origin(int(ungrouped[0]))} of split {split!r} has none")
    info = DatasetInfo(name=name, num_classes=len(classes), ood_splits=tuple(ood), epochs=USER_EPOCHS,
                       metric=metric, layout=data_kind.layout, root_is_file=data_kind.root_is_file)
    DATASETS.add(name, DatasetEntry(info, UserBuilder(declaration, info, tuple(classes), tables, labels)))
    return info


DECLARATION_KEYS = ("kind", "path", "metric", "augment")


def declaration_fields(name: str, table: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """The RunConfig fields of a sweep spec's ``[dataset.NAME]`` table.

    Parameters
    ----------
    name : str
        The dataset's name.
    table : mapping
        String values for :data:`DECLARATION_KEYS`: ``kind`` (required), ``path`` (relative to
        ``base``), ``metric`` and ``augment`` (optional).
    base : Path
        The spec's directory.

    Returns
    -------
    dict
        ``dataset_kind``, ``metric``, ``augment`` (None where the table has none) and, with a
        ``path``, ``data_root``: that path, resolved; the dataset is then registered, so its layout
        is checked before any run starts.

    Raises
    ------
    ValueError, KeyError, DatasetLayoutError
        A malformed table, an unknown kind / metric / augmentation, or a layout problem.
    """
    if not isinstance(table, Mapping) or "kind" not in table or set(table) - set(DECLARATION_KEYS):
        got = sorted(table) if isinstance(table, Mapping) else table
        raise ValueError(f"needs 'kind' and takes keys {list(DECLARATION_KEYS)}; got {got!r}")
    if not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f"every value must be a string, got {dict(table)!r}")
    declared = {k: table[k] for k in ("metric", "augment") if k in table}
    fields = {"dataset_kind": table["kind"], "metric": declared.get("metric"), "augment": declared.get("augment")}
    if "path" in table:
        path = (base / Path(table["path"]).expanduser()).resolve()
        register_user_dataset(name, table["kind"], path, **declared)
        fields["data_root"] = str(path)
    else:
        check_declaration(table["kind"], **declared)
    return fields
