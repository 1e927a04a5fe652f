"""Benchmarks for the deepnet suite: the paper's six real layouts and three offline benchmarks.

Importing this package registers every dataset in :data:`DATASETS`; use :func:`build_splits`.
"""
from . import cifar, domainnet, living17, waterbirds, wilds  # noqa: F401  (registers)
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
