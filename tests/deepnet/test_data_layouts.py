"""Real benchmark layouts: fixture trees load through build_splits; malformed trees fail clearly."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnet.data import CorruptImageError, DatasetLayoutError, build_splits, dataset_info, make_fixture


@dataclass
class Pre:
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    input_size: tuple = (12, 12)


PRE = Pre()


def _labels(ds) -> np.ndarray:
    return np.asarray(ds.labels)


def _rewrite_csv(path: Path, drop_column: str) -> None:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [c for c in rows[0] if c != drop_column]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, keep, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _check_items(splits: dict, num_classes: int) -> None:
    for name, ds in splits.items():
        x, y, g = ds[0]
        assert isinstance(x, torch.Tensor) and x.shape == (3, 12, 12), name
        assert x.dtype == torch.float32
        assert isinstance(y, int) and 0 <= y < num_classes
        assert isinstance(g, int)


def test_missing_root_names_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match="Expected layout"):
        build_splits("waterbirds", None, PRE)
    with pytest.raises(DatasetLayoutError, match="metadata.csv"):
        build_splits("waterbirds", tmp_path, PRE)


def test_unknown_dataset_lists_known():
    with pytest.raises(KeyError, match="waterbirds"):
        build_splits("no_such_set", None, PRE)


# ---------------------------------------------------------------- waterbirds
def test_waterbirds_fixture_splits_groups(tmp_path):
    root = make_fixture("waterbirds", tmp_path, n_per_class=2, image_size=16)
    splits = build_splits("waterbirds", root, PRE)
    info = dataset_info("waterbirds")
    assert list(splits) == ["train", "id_val", "id_test", "ood_test"] == info.split_names
    assert info.metric == "worst_group_acc" and info.num_classes == 2
    # train: 2 per minority group, 4 per majority group; test balanced 2 per group
    assert np.bincount(splits["train"].groups).tolist() == [4, 2, 2, 4]
    assert np.bincount(splits["ood_test"].groups).tolist() == [2, 2, 2, 2]
    # ID splits follow the training group proportions (1/3, 1/6, 1/6, 1/3)
    assert np.bincount(splits["id_test"].groups).tolist() == [2, 1, 1, 2]
    assert set(splits["id_test"].files) <= set(splits["ood_test"].files)
    for ds in splits.values():
        assert np.array_equal(np.asarray(ds.groups) // 2, _labels(ds))  # group = 2*y + place
    _check_items(splits, 2)


def test_waterbirds_missing_column(tmp_path):
    root = make_fixture("waterbirds", tmp_path)
    _rewrite_csv(root / "metadata.csv", "place")
    with pytest.raises(DatasetLayoutError, match=r"lacks column\(s\) \['place'\]"):
        build_splits("waterbirds", root, PRE)


def test_waterbirds_missing_image_names_file(tmp_path):
    root = make_fixture("waterbirds", tmp_path)
    splits = build_splits("waterbirds", root, PRE)
    victim = splits["ood_test"].files[-1]
    victim.unlink()
    with pytest.raises(DatasetLayoutError, match=victim.name):
        splits["ood_test"][len(splits["ood_test"]) - 1]


def test_corrupt_image_names_file(tmp_path):
    root = make_fixture("waterbirds", tmp_path)
    splits = build_splits("waterbirds", root, PRE)
    victim = splits["train"].files[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated file
    with pytest.raises(CorruptImageError, match=victim.name):
        splits["train"][0]
