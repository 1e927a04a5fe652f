"""What a run trains on besides its config: the model bundle and the dataset's splits, built from
the models and data registries (:func:`build_inputs`), and the fingerprint of that data."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

from deepnet.config import RunConfig
from deepnet.results import split_fingerprint


@dataclass
class RunInputs:
    """Everything a run needs besides its config: the model bundle and the dataset's splits.

    ``probe_train`` returns the train split without augmentation (only called by methods that fit a
    linear probe). ``metric`` is the dataset's OOD metric (``"acc"`` or ``"worst_group_acc"``).
    """

    bundle: Any  # deepnet.models.ModelBundle
    splits: dict[str, Dataset]
    ood_splits: list[str]
    num_classes: int
    epochs: int
    metric: str
    probe_train: Callable[[], Dataset]


def resolve_data_root(data_root: str | None, dataset: str) -> str | None:
    """``data_root`` itself, or ``data_root/<dataset>`` when that directory exists.

    So one root holding a directory per dataset (``/data/waterbirds``, ``/data/fmow``, ...) serves a
    whole multi-dataset sweep, and a dataset's own directory still works as before.
    """
    if data_root is None:
        return None
    nested = Path(data_root).expanduser() / dataset
    return str(nested) if nested.is_dir() else data_root


def data_fingerprint(cfg: RunConfig) -> dict[str, Any]:
    """The fingerprint of the data ``cfg`` trains on (see :func:`deepnet.results.split_fingerprint`),
    from the dataset's splits under its resolved data root; takes seconds (no image is read)."""
    from deepnet.data import build_splits

    root = resolve_data_root(cfg.data_root, cfg.dataset)
    return split_fingerprint(build_splits(cfg.dataset, root, train_augment=False), root)


def build_inputs(cfg: RunConfig) -> RunInputs:
    """Create the model and dataset splits named by ``cfg`` from the models and data registries,
    after importing ``cfg.plugins`` and registering ``cfg``'s user dataset (``dataset_kind``)."""
    from deepnet.data import build_splits, dataset_info, register_user_dataset
    from deepnet.models import create_model
    from deepnet.plugins import load_plugins

    load_plugins(cfg.plugins)
    root = resolve_data_root(cfg.data_root, cfg.dataset)
    if cfg.dataset_kind is not None:
        register_user_dataset(cfg.dataset, cfg.dataset_kind, root, cfg.metric, cfg.augment)
    info = dataset_info(cfg.dataset)
    kw = {"img_size": cfg.image_size} if cfg.image_size else {}
    try:
        bundle = create_model(cfg.model, num_classes=info.num_classes, pretrained=cfg.pretrained, **kw)
    except TypeError as err:
        raise ValueError(f"model {cfg.model!r} does not accept image_size={cfg.image_size}: {err}") from err
    preprocess = bundle.preprocess
    if cfg.image_size:
        preprocess = dataclasses.replace(preprocess, input_size=(cfg.image_size, cfg.image_size))
    splits = build_splits(cfg.dataset, root, preprocess, train_augment=True)
    return RunInputs(
        bundle=bundle,
        splits=splits,
        ood_splits=list(info.ood_splits),
        num_classes=info.num_classes,
        epochs=info.epochs,
        metric=info.metric,
        probe_train=lambda: build_splits(cfg.dataset, root, preprocess, train_augment=False)["train"],
    )
