"""Dataset registry and the single entry point ``build_splits`` (the deepnet data contract).

Every benchmark registers a :class:`DatasetInfo` (paper epochs, metric, OOD split names, the
on-disk layout it expects) with a builder. ``build_splits`` returns a dict of torch Datasets
keyed ``train``, ``id_val``, ``id_test`` and one key per OOD split; each item is
``(image_tensor, label, group)`` with ``group = -1`` where a benchmark has no groups.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from torch.utils.data import Dataset

from common.registry import Registry

from .transforms import ImageSpec


class DatasetLayoutError(Exception):
    """The data is missing or not in the expected on-disk layout; the message names the layout."""


class CorruptImageError(DatasetLayoutError):
    """An image file exists but cannot be decoded; the message names the file."""


class PreprocessLike(Protocol):
    """What build_splits needs from a model's preprocess (deepnet.models.Preprocess fits; its
    ``interpolation`` and ``crop_pct``, when present, set the user dataset kinds' eval transform)."""

    mean: Sequence[float]
    std: Sequence[float]
    input_size: tuple[int, int]


def layout_error(name: str, problem: str, layout: str) -> DatasetLayoutError:
    """A :class:`DatasetLayoutError` for dataset ``name`` stating ``problem`` and the expected layout."""
    return DatasetLayoutError(f"{name}: {problem}\nExpected layout:\n{layout}")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one benchmark.

    ``epochs`` is the paper's number of fine-tuning epochs (SGD paper, Appendix A) or ours for the
    offline benchmarks; ``metric`` is ``"acc"`` or ``"worst_group_acc"`` (the OOD metric);
    ``layout`` describes the expected files and is quoted in every :class:`DatasetLayoutError`;
    ``needs_root`` is False for offline benchmarks that find installed data themselves;
    ``root_is_file`` is True where the data root is one file (a CSV or an ``.npz``), not a directory.
    """

    name: str
    num_classes: int
    ood_splits: tuple[str, ...]
    epochs: int
    metric: str
    layout: str
    needs_root: bool = True
    default_input_size: int = 224
    root_is_file: bool = False

    def __post_init__(self) -> None:
        if self.metric not in ("acc", "worst_group_acc"):
            raise ValueError(f"{self.name}: metric must be 'acc' or 'worst_group_acc', got {self.metric!r}")

    @property
    def split_names(self) -> list[str]:
        return ["train", "id_val", "id_test", *self.ood_splits]

    def error(self, problem: str) -> DatasetLayoutError:
        """A layout error for this dataset that states the problem and the expected layout."""
        return layout_error(self.name, problem, self.layout)


Builder = Callable[[Path | None, ImageSpec, bool], dict[str, Dataset]]


@dataclass(frozen=True)
class DatasetEntry:
    info: DatasetInfo
    build: Builder


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(info: DatasetInfo) -> Callable[[Builder], Builder]:
    """Decorator registering ``build(root, spec, train_augment) -> splits`` under ``info.name``."""

    def wrap(build: Builder) -> Builder:
        DATASETS.add(info.name, DatasetEntry(info, build))
        return build

    return wrap


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of registered dataset ``name`` (``KeyError`` naming the known ones)."""
    return DATASETS.get(name).info


def dataset_table() -> str:
    """One line per registered dataset: classes, epochs, metric, whether a data root is needed, OOD splits."""
    lines = [f"{'name':16} {'classes':>7} {'epochs':>6}  {'metric':16} {'root':9} OOD splits"]
    for name, entry in DATASETS.items():
        info = entry.info
        root = "required" if info.needs_root else "optional"
        lines.append(f"{name:16} {info.num_classes:7d} {info.epochs:6d}  {info.metric:16} {root:9} "
                     f"{', '.join(info.ood_splits)}")
    return "\n".join(lines)


def build_splits(
    name: str,
    root: str | Path | None,
    preprocess: PreprocessLike | None = None,
    train_augment: bool = True,
) -> dict[str, Dataset]:
    """Build every split of a registered benchmark.

    Parameters
    ----------
    name : str
        A registered dataset (``python -m deepnet datasets`` lists them; plugins and the user kinds
        of :mod:`deepnet.data.user` register more).
    root : str, Path or None
        The dataset directory in its standard layout (``dataset_info(name).layout``). Offline
        benchmarks accept ``None`` (the installed data) or a directory overriding that location.
    preprocess : Preprocess-like, optional
        Mean, std and input_size (H, W), normally the model's own
        (:attr:`~deepnet.models.registry.ModelBundle.preprocess`); ``None`` uses ImageNet
        statistics at the benchmark's default size.
    train_augment : bool, optional
        Augment the train split (default); ``False`` gives it the evaluation transform.

    Returns
    -------
    dict of str to Dataset
        One torch ``Dataset`` per split, in the order ``dataset_info(name).split_names``
        (``train``, ``id_val``, ``id_test``, then the OOD splits). Items are ``(image, label)``,
        or ``(image, label, group)`` for datasets with groups.

    Raises
    ------
    KeyError
        ``name`` is not registered (the message lists the registered ones).
    DatasetLayoutError
        The data is missing or malformed (the message names the path and the expected layout).

    References
    ----------
    Kumar, Shen, Bubeck, Gunasekar, "How to Fine-Tune Vision Models with SGD", arXiv:2211.09359,
    Sec. 4 (the benchmarks and their ID / OOD splits).

    Examples
    --------
    >>> from deepnet.data.registry import build_splits
    >>> splits = build_splits("digits", None)
    >>> {split: len(data) for split, data in splits.items()}
    {'train': 4000, 'id_val': 500, 'id_test': 500, 'ood_test': 1797}
    """
    entry = DATASETS.get(name)
    info = entry.info
    path = None if root is None else Path(root).expanduser()
    if path is None and info.needs_root:
        raise info.error("no data root given (pass --data-root / RunConfig.data_root)")
    if path is not None and not (path.is_file() if info.root_is_file else path.is_dir()):
        raise info.error(f"data root {path} is not a {'file' if info.root_is_file else 'directory'}")
    spec = ImageSpec.from_preprocess(preprocess, info.default_input_size)
    splits = entry.build(path, spec, train_augment)
    if list(splits) != info.split_names:
        raise RuntimeError(f"{name} builder returned splits {list(splits)}, expected {info.split_names}")
    return splits
