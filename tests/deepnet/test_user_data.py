"""User dataset kinds (folder, csv, npz): splits, classes, transforms, and one clear error per layout
problem; their declaration in a sweep spec and on RunConfig."""
from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform

from deepnet.config import RunConfig
from deepnet.data import DATASETS, CorruptImageError, DatasetLayoutError, build_splits, register_user_dataset
from deepnet.data.user import sorted_classes
from deepnet.sweep import SpecError, parse_spec
from tests.helpers import make_folder, write_image

PREPROCESS = SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=(16, 16),
                             interpolation="bilinear", crop_pct=0.8)


@pytest.fixture
def name(request):
    """A fresh dataset name per test, unregistered afterwards."""
    key = f"user_{request.node.name}".replace("[", "_").replace("]", "").replace("-", "_")
    yield key
    DATASETS._items.pop(key, None)


def test_folder_splits_classes_and_model_eval_transform(tmp_path, name):
    root = make_folder(tmp_path / "data", classes=("dog", "cat", "ant"))
    info = register_user_dataset(name, "folder", root)
    assert info.num_classes == 3 and info.ood_splits == ("ood_night", "ood_sketch") and info.metric == "acc"
    splits = build_splits(name, root, PREPROCESS)
    assert list(splits) == ["train", "id_val", "id_test", "ood_night", "ood_sketch"]
    assert all(len(ds) == 6 for ds in splits.values())
    ds = splits["id_test"]
    # classes sorted: ant=0, cat=1, dog=2; each item's label follows its class directory
    assert [ds.files[i].parent.name for i in range(6)] == ["ant"] * 2 + ["cat"] * 2 + ["dog"] * 2
    assert list(ds.labels) == [0, 0, 1, 1, 2, 2] and set(ds.groups) == {-1}
    x, y, g = ds[3]
    expected = create_transform(input_size=(3, 16, 16), is_training=False, interpolation="bilinear",
                                mean=PREPROCESS.mean, std=PREPROCESS.std, crop_pct=0.8)(
        Image.open(ds.files[3]).convert("RGB"))
    assert x.shape == (3, 16, 16) and torch.equal(x, expected) and (y, g) == (1, -1)
    # augment "none": the train split gets the same eval transform
    assert torch.equal(splits["train"][0][0], build_splits(name, root, PREPROCESS, train_augment=False)["train"][0][0])


def test_flip_augmentation_flips_train_only(tmp_path, name):
    root = make_folder(tmp_path / "data")
    register_user_dataset(name, "folder", root, augment="flip")
    splits = build_splits(name, root, PREPROCESS)
    train = [splits["train"][0][0] for _ in range(40)]
    flipped = build_splits(name, root, PREPROCESS, train_augment=False)["train"][0][0].flip(-1)
    assert any(torch.equal(x, flipped) for x in train) and not all(torch.equal(x, flipped) for x in train)
    assert all(torch.equal(splits["id_val"][0][0], splits["id_val"][0][0]) for _ in range(5))


def test_integer_labels_sort_numerically():
    assert sorted_classes(["10", "2", "9", "2"]) == ["2", "9", "10"]
    assert sorted_classes(["b", "10", "a"]) == ["10", "a", "b"]


def test_csv_with_groups_and_worst_group_metric(tmp_path, name):
    rows = []
    for split in ("train", "id_val", "id_test", "ood_test"):
        for label in ("2", "10"):
            for group in (0, 1):
                rel = f"img/{split}_{label}_{group}.png"
                write_image(tmp_path / rel, len(rows))
                rows.append({"path": rel, "label": label, "split": split, "group": group})
    table = tmp_path / "labels.csv"
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label", "split", "group"])
        writer.writeheader()
        writer.writerows(rows)
    info = register_user_dataset(name, "csv", table, metric="worst_group_acc")
    assert info.num_classes == 2 and info.ood_splits == ("ood_test",) and info.root_is_file
    ood = build_splits(name, table, PREPROCESS)["ood_test"]
    assert [p.name for p in ood.files] == ["ood_test_2_0.png", "ood_test_2_1.png", "ood_test_10_0.png",
                                           "ood_test_10_1.png"]
    assert list(ood.labels) == [0, 0, 1, 1] and list(ood.groups) == [0, 1, 0, 1]


def test_npz_grey_and_rgb_splits(tmp_path, name):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, labels in (("train", [3, 5, 3, 5]), ("id_val", [5, 3]), ("id_test", [3]), ("ood_blur", [5, 5])):
        shape = (len(labels), 9, 9, 3) if split == "ood_blur" else (len(labels), 9, 9)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = np.array(labels)
    arrays["ood_blur_groups"] = np.array([1, 0])
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    info = register_user_dataset(name, "npz", path)
    assert info.num_classes == 2 and info.ood_splits == ("ood_blur",)
    splits = build_splits(name, path, PREPROCESS)
    assert list(splits["id_val"].labels) == [1, 0] and list(splits["ood_blur"].groups) == [1, 0]
    x, y, g = splits["ood_blur"][0]
    assert x.shape == (3, 16, 16) and (y, g) == (1, 1)


def test_registration_is_idempotent_and_bound_to_its_root(tmp_path, name):
    root = make_folder(tmp_path / "data")
    first = register_user_dataset(name, "folder", root)
    assert register_user_dataset(name, "folder", root) is first
    with pytest.raises(KeyError, match="already registered"):
        register_user_dataset(name, "folder", root, augment="flip")
    with pytest.raises(KeyError, match="already registered"):
        register_user_dataset("digits", "folder", root)
    other = make_folder(tmp_path / "other")
    with pytest.raises(DatasetLayoutError, match="registered from"):
        build_splits(name, other, PREPROCESS)


def _remove(path: Path) -> None:
    for p in sorted(path.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    path.rmdir()


FOLDER_PROBLEMS = {
    "missing split": (lambda r: _remove(r / "id_test"), DatasetLayoutError, r"missing split\(s\) \['id_test'\]"),
    "no ood split": (lambda r: [_remove(r / s) for s in ("ood_sketch", "ood_night")], DatasetLayoutError,
                     r"missing split\(s\) \['ood_<name>'\]"),
    "stray directory": (lambda r: (r / "val").mkdir(), DatasetLayoutError, r"\['val'\] that are not splits"),
    "empty class": (lambda r: (r / "id_val" / "eel").mkdir(), DatasetLayoutError,
                    r"empty class directory .*id_val/eel"),
    "label outside train": (lambda r: write_image(r / "ood_night" / "eel" / "0.png", 1), DatasetLayoutError,
                            r"ood_night/eel/0.png: label 'eel' of split 'ood_night' is not a train class"),
    "image outside classes": (lambda r: write_image(r / "train" / "x.png", 1), DatasetLayoutError,
                              r"train/x.png lies directly in train/"),
    "not an image file": (lambda r: (r / "train" / "cat" / "notes.txt").write_text("hi"), DatasetLayoutError,
                          r"train/cat/notes.txt is not an image file"),
    "unreadable image": (lambda r: (r / "id_val" / "cat" / "0.png").write_bytes(b"not a png"),
                         CorruptImageError, r"cannot decode image file .*id_val/cat/0.png"),
}


@pytest.mark.parametrize("problem", sorted(FOLDER_PROBLEMS))
def test_folder_layout_problems_are_named(tmp_path, name, problem):
    root = make_folder(tmp_path / "data")
    damage, error, message = FOLDER_PROBLEMS[problem]
    damage(root)
    with pytest.raises(error, match=message) as info:
        register_user_dataset(name, "folder", root)
    assert "Expected layout" in str(info.value) or error is CorruptImageError
    assert name not in DATASETS


def test_folder_has_no_groups_for_worst_group_acc(tmp_path, name):
    root = make_folder(tmp_path / "data")
    with pytest.raises(DatasetLayoutError, match="worst_group_acc needs a group for every OOD example"):
        register_user_dataset(name, "folder", root, metric="worst_group_acc")


def test_unreadable_image_after_registration_names_the_file(tmp_path, name):
    root = make_folder(tmp_path / "data")
    register_user_dataset(name, "folder", root)
    bad = root / "id_test" / "dog" / "1.png"
    bad.write_bytes(b"\x89PNG broken")
    ds = build_splits(name, root, PREPROCESS)["id_test"]
    with pytest.raises(CorruptImageError, match=str(bad)):
        ds[ds.files.index(bad)]


CSV_PROBLEMS = {
    "missing image": ("path,label,split\na.png,x,train\nmissing.png,x,id_val\n",
                      r"t.csv line 3: missing image file .*missing.png"),
    "unknown split": ("path,label,split\na.png,x,train\na.png,x,validation\n", r"line 3: split 'validation' is not"),
    "label outside train": ("path,label,split\na.png,x,train\na.png,x,id_val\na.png,x,id_test\na.png,y,ood_a\n",
                            r"a.png \(.*t.csv line 5\): label 'y' of split 'ood_a'"),
    "no path column": ("file,label,split\n", r"lacks column\(s\) \['path'\]"),
}


@pytest.mark.parametrize("problem", sorted(CSV_PROBLEMS))
def test_csv_problems_are_named(tmp_path, name, problem):
    text, message = CSV_PROBLEMS[problem]
    write_image(tmp_path / "a.png", 0)
    table = tmp_path / "t.csv"
    table.write_text(text)
    with pytest.raises(DatasetLayoutError, match=message):
        register_user_dataset(name, "csv", table)
    assert name not in DATASETS


def test_npz_and_kind_problems_are_named(tmp_path, name):
    npz = tmp_path / "d.npz"
    np.savez(npz, train_images=np.zeros((2, 4, 4), np.float32), train_labels=np.array([0, 1]))
    with pytest.raises(DatasetLayoutError, match="train_images must be uint8"):
        register_user_dataset(name, "npz", npz)
    np.savez(npz, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.array([0, 1]), extra=np.zeros(1))
    with pytest.raises(DatasetLayoutError, match=r"arrays \['extra'\]"):
        register_user_dataset(name, "npz", npz)
    with pytest.raises(DatasetLayoutError, match="is not a file"):
        register_user_dataset(name, "npz", tmp_path)
    with pytest.raises(KeyError, match="unknown dataset kind 'parquet'; known: csv, folder, npz"):
        register_user_dataset(name, "parquet", npz)
    assert name not in DATASETS


def test_run_config_user_dataset_fields_and_keys():
    plain = RunConfig("small_vit", "digits", "sgd", 0.1)
    assert plain.key() == RunConfig("small_vit", "digits", "sgd", 0.1, plugins=["p.py"], data_root="/x").key()
    user = RunConfig("small_vit", "mine", "sgd", 0.1, dataset_kind="folder")
    assert (user.metric, user.augment) == ("acc", "none")
    assert user.key() == RunConfig("small_vit", "mine", "sgd", 0.1, dataset_kind="folder", metric="acc").key()
    assert user.key() != RunConfig("small_vit", "mine", "sgd", 0.1, dataset_kind="folder", augment="flip").key()
    assert user.key() != RunConfig("small_vit", "mine", "sgd", 0.1).key()
    with pytest.raises(ValueError, match="metric and augment are for user datasets"):
        RunConfig("small_vit", "digits", "sgd", 0.1, augment="flip")


def spec_with(dataset: dict, datasets=("mine",)) -> dict:
    return {"name": "u", "models": ["small_vit"], "datasets": list(datasets), "methods": ["sgd"],
            "lr_grid": {"sgd": [0.1]}, "dataset": {"mine": dataset}}


def test_spec_declares_a_user_dataset_relative_to_the_spec(tmp_path):
    make_folder(tmp_path / "data")
    spec_file = tmp_path / "s.toml"
    try:
        spec = parse_spec(spec_with({"kind": "folder", "path": "data", "augment": "flip"}, ("mine", "digits")),
                          source=str(spec_file))
        mine, digits = spec.expand({"data_root": "/elsewhere"})
    finally:
        DATASETS._items.pop("mine", None)
    assert (mine.dataset_kind, mine.metric, mine.augment) == ("folder", "acc", "flip")
    assert mine.data_root == str((tmp_path / "data").resolve()) and digits.data_root == "/elsewhere"
    assert digits.dataset_kind is None


@pytest.mark.parametrize("table, message", [
    ({"kind": "folder", "path": "nowhere"}, r"\[dataset.mine\]: mine: data root .*nowhere is not a directory"),
    ({"kind": "tfrecord"}, r"unknown dataset kind 'tfrecord'"),
    ({"kind": "folder", "augment": "mixup"}, r"unknown augmentation 'mixup'; known: flip, none, timm"),
    ({"kind": "folder", "metric": "auc"}, r"unknown metric 'auc'"),
    ({"kind": "folder", "colour": "red"}, r"needs 'kind' and takes keys"),
    ({"path": "data"}, r"needs 'kind'"),
])
def test_spec_dataset_declaration_errors(tmp_path, table, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(spec_with(table), source=str(tmp_path / "s.toml"))
    assert "mine" not in DATASETS


def test_spec_declared_dataset_must_be_listed(tmp_path):
    with pytest.raises(SpecError, match=r"declared but not in 'datasets'"):
        parse_spec(spec_with({"kind": "folder"}, ("digits",)), source=str(tmp_path / "s.toml"))
    with pytest.raises(SpecError, match=r"cannot set \['dataset_kind'\]"):
        parse_spec({**spec_with({"kind": "folder"}), "run": {"dataset_kind": "csv"}})


def test_data_check_decodes_every_image_of_a_user_dataset(tmp_path, name, capsys):
    from deepnet.data.__main__ import main as data_main

    root = make_folder(tmp_path / "data")
    args = ["check", name, "--dataset-kind", "folder", "--data-root", str(root), "--image-size", "8"]
    assert data_main(args) == 0
    assert "every image decoded" in capsys.readouterr().out
    DATASETS._items.pop(name)
    bad = root / "ood_night" / "dog" / "1.png"  # not the first of its class: only a full decode finds it
    bad.write_bytes(b"\x89PNG broken")
    assert data_main(args) == 2
    assert f"cannot decode image file {bad}" in capsys.readouterr().err
