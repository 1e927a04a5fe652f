"""Benchmarks for the deepnet suite: the paper's six real layouts and three offline benchmarks.

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

__all__ = [
    "DATASETS", "CorruptImageError", "DatasetInfo", "DatasetLayoutError",
    "build_splits", "dataset_info", "make_fixture",
]
