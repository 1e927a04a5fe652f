"""Waterbirds (Sagawa et al., 2020): landbird vs waterbird with a spurious background ("place").

Groups are ``2 * y + place``. ``metadata.csv`` splits 0/1/2 are train/val/test; val and test are
balanced over place within each class, so they are not ID. We therefore build:
``id_val`` / ``id_test`` = val / test subsampled (fixed seed) to the training group proportions,
``ood_test`` = the whole test split, scored by worst-group accuracy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import ImageFiles, check_first_file, parse_int, read_csv
from .registry import DatasetInfo, register_dataset
from .transforms import ImageSpec, waterbirds_transform

LAYOUT = """\
ROOT/metadata.csv   columns img_filename, y (0 landbird / 1 waterbird), split (0 train, 1 val, 2 test),
                    place (0 land / 1 water); other columns (img_id, place_filename) are ignored
ROOT/<img_filename> the images, e.g. ROOT/001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg
(ROOT is the waterbird_complete95_forest2water2 directory)"""

INFO = DatasetInfo(
    name="waterbirds", num_classes=2, ood_splits=("ood_test",), epochs=20,
    metric="worst_group_acc", layout=LAYOUT,
)
NUM_GROUPS = 4


def match_group_proportions(groups: np.ndarray, reference: np.ndarray, seed: int) -> np.ndarray:
    """Largest subset of ``groups`` whose group frequencies equal those of ``reference``.

    Returns sorted indices into ``groups``; each group is subsampled without replacement.
    """
    ref_frac = np.bincount(reference, minlength=NUM_GROUPS) / len(reference)
    have = np.bincount(groups, minlength=NUM_GROUPS)
    present = ref_frac > 0
    if np.any(have[present] == 0):
        raise ValueError(f"groups {np.flatnonzero(present & (have == 0)).tolist()} are absent")
    total = int(np.min(have[present] / ref_frac[present]))
    rng = np.random.default_rng(seed)
    chosen = []
    for g in np.flatnonzero(present):
        members = np.flatnonzero(groups == g)
        take = min(len(members), max(1, int(round(total * ref_frac[g]))))
        chosen.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(chosen))


@register_dataset(INFO)
def build(root: Path, spec: ImageSpec, train_augment: bool) -> dict:
    meta = root / "metadata.csv"
    rows = read_csv(meta, ["img_filename", "y", "split", "place"], INFO)
    files = np.array([root / r["img_filename"] for r in rows], dtype=object)
    y = np.array([parse_int(r["y"], meta, "y", INFO) for r in rows])
    place = np.array([parse_int(r["place"], meta, "place", INFO) for r in rows])
    split = np.array([parse_int(r["split"], meta, "split", INFO) for r in rows])
    for col, values in (("y", y), ("place", place), ("split", split)):
        allowed = {0, 1, 2} if col == "split" else {0, 1}
        bad = set(np.unique(values).tolist()) - allowed
        if bad:
            raise INFO.error(f"{meta}: column {col!r} has values {sorted(bad)} outside {sorted(allowed)}")
    groups = 2 * y + place

    def subset(idx: np.ndarray, name: str, train: bool) -> ImageFiles:
        check_first_file(list(files[idx]), name, INFO)
        transform = waterbirds_transform(spec, train)
        return ImageFiles(list(files[idx]), y[idx], groups[idx], transform, INFO)

    train_idx, val_idx, test_idx = (np.flatnonzero(split == s) for s in (0, 1, 2))
    for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
        if len(idx) == 0:
            raise INFO.error(f"{meta}: split {name!r} has no rows")
    train_groups = groups[train_idx]
    try:
        id_val = val_idx[match_group_proportions(groups[val_idx], train_groups, seed=0)]
        id_test = test_idx[match_group_proportions(groups[test_idx], train_groups, seed=1)]
    except ValueError as e:
        raise INFO.error(f"{meta}: val/test lack a (y, place) group present in train: {e}") from None
    return {
        "train": subset(train_idx, "train", train_augment),
        "id_val": subset(id_val, "id_val", False),
        "id_test": subset(id_test, "id_test", False),
        "ood_test": subset(test_idx, "ood_test", False),
    }
