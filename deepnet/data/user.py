"""A user's own data without writing Python: the dataset kinds ``folder``, ``csv`` and ``npz``.

A user dataset is a kind (:data:`KINDS`), a data root, a metric and a train augmentation
(:data:`AUGMENTATIONS`), declared in a sweep spec's ``[dataset.NAME]`` table or with
``train --dataset-kind``. :func:`register_user_dataset` reads and checks the layout and registers it
in :data:`~deepnet.data.registry.DATASETS` like any benchmark, so ``build_splits``, the trainer and
the sweeps treat it the same way. The kinds' readers and layouts are in :mod:`deepnet.data.user_kinds`.

Splits are ``train``, ``id_val``, ``id_test`` and one or more ``ood_<name>``. The classes are the
train split's labels, sorted (numerically when every label is an integer, else as strings); every
other split's labels must be among them. Evaluation splits get the model's own eval transform from
its timm data config (:func:`~deepnet.data.transforms.model_eval_transform`); the train split gets
the declared augmentation (default ``none``: the eval transform).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from torch.utils.data import Dataset
from torchvision import transforms as T

from common.registry import Registry
from deepnet.config import USER_DATASET_DEFAULTS

from .common import ImageArray, ImageFiles
from .registry import DATASETS, DatasetEntry, DatasetInfo, layout_error
from .transforms import ImageSpec, Transform, model_eval_transform, model_train_transform
from .user_kinds import KINDS, SplitTable, UserSource

REQUIRED_SPLITS = ("train", "id_val", "id_test")
METRICS = ("acc", "worst_group_acc")
#: fine-tuning epochs of a user dataset unless the spec or ``--epochs`` says otherwise
USER_EPOCHS = 10

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
    src = UserSource(name, data_kind.layout)
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
