"""Our benchmark splits equal the ones the reference packages build, class for class and index for index.

Living-17: ``robustness.tools.breeds_helpers.make_living17(info_dir, split="rand")`` (what the LP-FT
authors' ``unlabeled_extrapolation/datasets/breeds.py`` calls) on the real BREEDS hierarchy files
copied into ``tests/data/breeds``. WILDS: the ``wilds`` package's ``FMoWDataset`` and
``Camelyon17Dataset`` (``download=False``) on our fixture trees, which are in the WILDS on-disk
format. ``scripts/setup.sh`` installs both packages (``--no-deps``: their pins clash with ours).
"""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from deepnet.data import build_splits, make_fixture
from deepnet.data.living17 import breeds_task
from deepnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from deepnet.data.wilds import FMOW_OOD_REGION, FMOW_REGIONS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # wilds' grouper and tensor warnings

BREEDS_DIR = Path(__file__).resolve().parents[1] / "data" / "breeds"
PRE = types.SimpleNamespace(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=(8, 8))

#: the Living-17 superclasses as the BREEDS paper lists them (Santurkar et al. 2020, appendix)
LIVING17_NAMES = ("salamander", "turtle", "lizard", "snake, serpent, ophidian", "spider", "grouse",
                  "parrot", "crab", "dog, domestic dog, Canis familiaris", "wolf", "fox",
                  "domestic cat, house cat, Felis domesticus, Felis catus", "bear", "beetle",
                  "butterfly", "ape", "monkey")


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.fail(f"reference package missing ({e}); run `bash scripts/setup.sh`")


@pytest.fixture(scope="module")
def breeds_helpers():
    """The robustness library's BREEDS code, unchanged.

    Its only import of ``robustness.datasets`` is an unused name (``DATASETS``), and that module
    imports ``torchvision.models.utils``, removed in torchvision 0.13; a stand-in module for that
    one import lets the hierarchy code load under current torchvision.
    """
    saved = {k: sys.modules.get(k) for k in ("robustness.datasets", "robustness.tools.breeds_helpers")}
    sys.modules["robustness.datasets"] = types.SimpleNamespace(DATASETS={})
    sys.modules.pop("robustness.tools.breeds_helpers", None)
    try:
        yield _require("robustness.tools.breeds_helpers")
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


@pytest.fixture(scope="module")
def reference_living17(breeds_helpers):
    """(superclass wnids, names, ID wnids, OOD wnids) per superclass, as robustness builds Living-17."""
    superclasses, (source, target), label_map = breeds_helpers.make_living17(str(BREEDS_DIR), split="rand")
    hierarchy = breeds_helpers.ClassHierarchy(str(BREEDS_DIR))
    wnid_of = {num: wnid for wnid, num in hierarchy.LEAF_ID_TO_NUM.items()}
    names = [label_map[i] for i in range(len(superclasses))]
    return (superclasses, names, [[wnid_of[n] for n in s] for s in source],
            [[wnid_of[n] for n in t] for t in target], source, target)


# ---------------------------------------------------------------- Living-17
def test_living17_equals_robustness_make_living17(reference_living17):
    superclasses, names, id_wnids, ood_wnids, id_nums, ood_nums = reference_living17
    ours = breeds_task(BREEDS_DIR)
    assert len(ours.superclasses) == 17
    for label, sc in enumerate(superclasses):
        assert ours.superclasses[label] == sc, f"superclass {label}"
        assert ours.names[label] == names[label], f"superclass {label} ({sc}) name"
        assert ours.id_subclasses[label] == id_wnids[label], f"superclass {label} ({names[label]}) ID subclasses"
        assert ours.ood_subclasses[label] == ood_wnids[label], f"superclass {label} ({names[label]}) OOD subclasses"
        assert [ours.class_number[w] for w in ours.id_subclasses[label]] == id_nums[label]
        assert [ours.class_number[w] for w in ours.ood_subclasses[label]] == ood_nums[label]
    assert ours.superclasses == superclasses  # no extra superclasses on our side


def test_living17_superclasses_are_the_papers(reference_living17):
    assert tuple(reference_living17[1]) == LIVING17_NAMES
    assert tuple(breeds_task(BREEDS_DIR).names) == LIVING17_NAMES


def test_living17_splits_use_the_reference_subclasses(tmp_path, reference_living17):
    """End to end: build_splits on an ImageNet-layout tree of the 68 classes and the real hierarchy
    labels each image by its reference superclass and groups it by its reference class number."""
    import shutil

    from PIL import Image

    _, _, id_wnids, ood_wnids, id_nums, ood_nums = reference_living17
    shutil.copytree(BREEDS_DIR, tmp_path / "breeds", ignore=shutil.ignore_patterns("*.md"))
    for split, per_class in (("train", 5), ("val", 1)):
        for wnid in sum(id_wnids + ood_wnids, []):
            for k in range(per_class):
                (tmp_path / split / wnid).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (4, 4), (k, 0, 0)).save(tmp_path / split / wnid / f"{wnid}_{k}.JPEG")
    splits = build_splits("living17", tmp_path, PRE, train_augment=False)
    expected = {"id": {n: label for label, nums in enumerate(id_nums) for n in nums},
                "ood": {n: label for label, nums in enumerate(ood_nums) for n in nums}}
    for split, domain in (("train", "id"), ("id_val", "id"), ("id_test", "id"), ("ood_test", "ood")):
        ds = splits[split]
        assert set(ds.groups.tolist()) <= set(expected[domain]), split
        assert [expected[domain][g] for g in ds.groups.tolist()] == ds.labels.tolist(), split
        assert all(f.parent.name in sum(id_wnids if domain == "id" else ood_wnids, []) for f in ds.files)
    assert set(splits["ood_test"].groups.tolist()) == set(expected["ood"])
    assert len(splits["train"]) + len(splits["id_val"]) == 5 * 34


# ---------------------------------------------------------------- WILDS
def _wilds_root(tmp_path: Path, fixture: Path, folder: str) -> Path:
    """A WILDS root_dir whose ``folder`` (e.g. fmow_v1.1) is our fixture tree."""
    root = tmp_path / "wilds_root"
    root.mkdir(exist_ok=True)
    (root / folder).symlink_to(fixture, target_is_directory=True)
    return root


def _reference_and_ours(tmp_path: Path, name: str, n_per_class: int, module: str, cls: str, folder: str):
    """Our fixture tree of ``name``, the WILDS dataset ``module.cls`` read from it (``folder`` in the
    WILDS root) and our splits of it, without training augmentation."""
    fixture = make_fixture(name, tmp_path, n_per_class=n_per_class, image_size=4)
    ref = getattr(_require(module), cls)(root_dir=str(_wilds_root(tmp_path, fixture, folder)), download=False)
    return fixture, ref, build_splits(name, fixture, PRE, train_augment=False)


def _assert_same_items(ours, files: list[Path], labels: np.ndarray, split: str) -> None:
    assert [Path(f).resolve() for f in ours.files] == [Path(f).resolve() for f in files], f"{split}: files"
    assert ours.labels.tolist() == np.asarray(labels).tolist(), f"{split}: labels"


@pytest.mark.parametrize("n_per_class", [1, 2])
def test_fmow_splits_equal_wilds_fmow(tmp_path, n_per_class):
    fixture, ref, ours = _reference_and_ours(tmp_path, "fmow", n_per_class, "wilds.datasets.fmow_dataset",
                                             "FMoWDataset", "fmow_v1.1")
    region_names = ref._metadata_map["region"]
    region_col = ref.metadata_fields.index("region")
    for our_split, ref_split in (("train", "train"), ("id_val", "id_val"), ("id_test", "id_test"),
                                 ("ood_test", "test")):
        idx = ref.get_subset(ref_split).indices
        regions = [region_names[r] for r in ref.metadata_array[idx, region_col].tolist()]
        if our_split == "ood_test":  # the paper's OOD set: WILDS OOD test restricted to Africa
            keep = [i for i, r in enumerate(regions) if r == FMOW_OOD_REGION]
            idx, regions = idx[keep], [regions[i] for i in keep]
        assert len(idx) > 0, ref_split
        files = [fixture / "images" / f"rgb_img_{ref.full_idxs[i]}.png" for i in idx]
        ds = ours[our_split]
        _assert_same_items(ds, files, ref.y_array[idx].numpy(), our_split)
        assert [FMOW_REGIONS[g] for g in ds.groups.tolist()] == regions, f"{our_split}: regions"


@pytest.mark.parametrize("n_per_class", [1, 3])
def test_camelyon_splits_equal_wilds_camelyon17(tmp_path, n_per_class):
    _, ref, ours = _reference_and_ours(tmp_path, "camelyon", n_per_class, "wilds.datasets.camelyon17_dataset",
                                       "Camelyon17Dataset", "camelyon17_v1.0")
    hospital_col = ref.metadata_fields.index("hospital")
    # WILDS has no ID test split for Camelyon: our id_test is its id_val
    for our_split, ref_split in (("train", "train"), ("id_val", "id_val"), ("id_test", "id_val"),
                                 ("ood_test", "test")):
        idx = ref.get_subset(ref_split).indices
        assert len(idx) > 0, ref_split
        files = [Path(ref.data_dir) / ref._input_array[i] for i in idx]
        hospitals = ref.metadata_array[idx, hospital_col].tolist()
        ds = ours[our_split]
        _assert_same_items(ds, files, ref.y_array[idx].numpy(), our_split)
        assert ds.groups.tolist() == hospitals, f"{our_split}: hospitals"
