"""Real benchmark layouts: fixture trees load through build_splits; malformed trees fail clearly."""
from __future__ import annotations

import csv
import shutil
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


def test_waterbirds_missing_image_names_file(tmp_path):
    root = make_fixture("waterbirds", tmp_path)
    splits = build_splits("waterbirds", root, PRE)
    victim = splits["ood_test"].files[-1]
    victim.unlink()
    with pytest.raises(DatasetLayoutError, match=victim.name):
        splits["ood_test"][len(splits["ood_test"]) - 1]


@pytest.mark.parametrize("name", ["waterbirds", "camelyon", "fmow"])  # JPEG, PNG, PNG
def test_corrupt_image_names_file(tmp_path, name):
    root = make_fixture(name, tmp_path, n_per_class=1)
    splits = build_splits(name, root, PRE)
    victim = splits["train"].files[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated file
    with pytest.raises(CorruptImageError, match=victim.name):
        splits["train"][0]


# ---------------------------------------------------------------- living17
def test_living17_breeds_split(tmp_path):
    from deepnet.data.living17 import breeds_task

    root = make_fixture("living17", tmp_path, n_per_class=2)
    task = breeds_task(root / "breeds")
    # 17 living superclasses at depth 5; the 3-leaf node, the non-living one are excluded and the
    # shortcut edge does not change n91000's (longest-path) depth
    assert task.superclasses == [f"n91{s:03d}" for s in range(17)]
    for sc, ids, oods in zip(task.superclasses, task.id_subclasses, task.ood_subclasses):
        assert len(ids) == len(oods) == 2 and not set(ids) & set(oods)
        assert all(w.startswith(sc) for w in ids + oods)
    splits = build_splits("living17", root, PRE)
    assert [len(splits[k]) for k in ("id_test", "ood_test")] == [17 * 2 * 2, 17 * 2 * 2]
    assert len(splits["train"]) + len(splits["id_val"]) == 17 * 2 * 2
    assert np.bincount(_labels(splits["ood_test"])).tolist() == [4] * 17
    assert not set(splits["train"].groups) & set(splits["ood_test"].groups)  # disjoint subclasses
    assert set(splits["id_test"].groups) == set(splits["train"].groups) | set(splits["id_val"].groups)
    _check_items(splits, 17)


# ---------------------------------------------------------------- WILDS
def test_fmow_time_and_region_splits(tmp_path):
    root = make_fixture("fmow", tmp_path, n_per_class=1)
    splits = build_splits("fmow", root, PRE)
    # fixture: per category 1 row of each kind; train also gets an unmapped-country ("Other") row
    assert {k: len(v) for k, v in splits.items()} == {"train": 124, "id_val": 62, "id_test": 62, "ood_test": 62}
    regions = ("Asia", "Europe", "Africa", "Americas", "Oceania", "Other")
    assert set(splits["ood_test"].groups) == {regions.index("Africa")}
    assert set(splits["train"].groups) == {regions.index("Americas"), regions.index("Other")}
    # images are named by row number; OOD rows are the 2016+ Africa test rows (kind 4 -> rows 248..309)
    assert [int(p.stem.split("_")[-1]) for p in splits["ood_test"].files] == list(range(4 * 62, 5 * 62))
    assert np.bincount(_labels(splits["id_test"])).tolist() == [1] * 62
    _check_items(splits, 62)


def test_camelyon_hospital_splits(tmp_path):
    root = make_fixture("camelyon", tmp_path, n_per_class=2)
    splits = build_splits("camelyon", root, PRE)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "id_val": 4, "id_test": 4, "ood_test": 8}
    assert set(splits["train"].groups) == {0, 3} and set(splits["id_val"].groups) == {4}
    assert set(splits["ood_test"].groups) == {2}  # hospital 1 (OOD val) is never loaded
    assert np.bincount(_labels(splits["ood_test"])).tolist() == [4, 4]
    _check_items(splits, 2)


# ---------------------------------------------------------------- DomainNet
def test_domainnet_lists(tmp_path):
    root = make_fixture("domainnet", tmp_path, n_per_class=1)
    splits = build_splits("domainnet", root, PRE)
    assert len(splits["train"]) + len(splits["id_val"]) == 40 * 3
    assert len(splits["id_val"]) == 12  # 10% hold-out
    assert not set(splits["train"].files) & set(splits["id_val"].files)
    assert all("real" in p.name for p in splits["ood_test"].files)
    assert all("sketch" in p.name for p in splits["id_test"].files)
    assert np.bincount(_labels(splits["ood_test"])).tolist() == [1] * 40
    _check_items(splits, 40)


# ---------------------------------------------------------------- CIFAR-10 / 10.1 / STL
def test_cifar_splits(tmp_path):
    root = make_fixture("cifar10", tmp_path, n_per_class=2)
    splits = build_splits("cifar10", root, PRE)
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 90, "id_val": 10, "id_test": 20, "cifar10_1": 20, "stl10": 18}
    assert np.bincount(_labels(splits["stl10"]), minlength=10)[6] == 0  # frog: not in STL
    _check_items(splits, 10)


def test_stl_label_map_and_pixel_order(tmp_path):
    root = make_fixture("cifar10", tmp_path, n_per_class=1)
    # STL stores each image column-major: write images whose value encodes the STL class in the
    # top-left pixel row only, and check the loader restores rows and maps classes to CIFAR's
    hwc = np.zeros((10, 96, 96, 3), np.uint8)
    hwc[:, 0, :, :] = (np.arange(10) * 20 + 10)[:, None, None]
    hwc.transpose(0, 3, 2, 1).tofile(root / "stl10_binary" / "test_X.bin")
    np.arange(1, 11, dtype=np.uint8).tofile(root / "stl10_binary" / "test_y.bin")
    stl = build_splits("cifar10", root, PRE)["stl10"]
    cifar = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    stl_names = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
    assert len(stl) == 9
    for img, label in zip(stl.images, stl.labels):
        stl_class = (int(img[0, 0, 0]) - 10) // 20
        assert img[0].min() == img[0].max() and img[1:].max() == 0
        name = stl_names[stl_class].replace("car", "automobile")
        assert cifar[label] == name


# ---------------------------------------------------------------- malformed trees
def _append_line(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)


def _replace_once(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


#: (dataset, fixture images per class, how the tree is damaged, what the error must name)
LAYOUT_PROBLEMS = {
    "waterbirds missing column": ("waterbirds", 2, lambda r: _rewrite_csv(r / "metadata.csv", "place"),
                                  r"lacks column\(s\) \['place'\]"),
    "living17 missing class folder": ("living17", 1, lambda r: shutil.rmtree(r / "val" / "n9100010"), "n9100010"),
    "living17 missing hierarchy file": ("living17", 1, lambda r: (r / "breeds" / "node_names.txt").unlink(),
                                        "node_names.txt"),
    "fmow missing images folder": ("fmow", 1, lambda r: shutil.rmtree(r / "images"), r"rgb_img_0\.png"),
    "fmow unknown category": ("fmow", 1, lambda r: _replace_once(r / "rgb_metadata.csv", ",airport,", ",spaceport,"),
                              "spaceport"),
    "camelyon missing column": ("camelyon", 2, lambda r: _rewrite_csv(r / "metadata.csv", "center"), "center"),
    "domainnet malformed line": ("domainnet", 1, lambda r: _append_line(r / "real_test_mini.txt", "real/x/y.jpg forty\n"),
                                 "real_test_mini.txt"),
    "cifar truncated batch": ("cifar10", 2, lambda r: _truncate(r / "cifar-10-batches-py" / "data_batch_3", 100),
                              "data_batch_3"),
}


@pytest.mark.parametrize("problem", sorted(LAYOUT_PROBLEMS))
def test_a_malformed_tree_fails_naming_the_problem(tmp_path, problem):
    name, n_per_class, damage, message = LAYOUT_PROBLEMS[problem]
    root = make_fixture(name, tmp_path, n_per_class=n_per_class)
    damage(root)
    with pytest.raises(DatasetLayoutError, match=message):
        build_splits(name, root, PRE)
