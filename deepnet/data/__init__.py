"""Benchmarks for the deepnet suite: the paper's six real layouts and three offline benchmarks,
and a user's own data as a ``folder``, ``csv`` or ``npz`` dataset (:mod:`deepnet.data.user`).

Importing this package registers every dataset in :data:`DATASETS`; use :func:`build_splits`.
"""
from . import (  # noqa: F401  (importing registers each dataset)
    cifar, digits, domainnet, fmnist_subpop, living17, spurious_fmnist, waterbirds, wilds,
)
from .fixtures import make_fixture
from .registry import (
    DATASETS,
    CorruptImageError,
    DatasetInfo,
    DatasetLayoutError,
    build_splits,
    dataset_info,
)
from .user import AUGMENTATIONS, KINDS, register_user_dataset

__all__ = [
    "AUGMENTATIONS", "DATASETS", "KINDS", "register_user_dataset", "CorruptImageError", "DatasetInfo", "DatasetLayoutError",
    "build_splits", "dataset_info", "make_fixture",
]
