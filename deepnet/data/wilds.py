"""WILDS-FMoW and WILDS-Camelyon read straight from the WILDS on-disk layout (no wilds package).

FMoW (fmow_v1.1): the WILDS "official" split (time_after_2016) — rows with timestamp before 2013
are ID; 2013-2015 is the OOD validation period (unused here); 2016 and later is OOD test. The paper's
OOD set is "images from Africa" in the OOD period, so ``ood_test`` = WILDS test rows with region
Africa. Groups are regions, in the order of :data:`FMOW_REGIONS` (country codes missing from
``country_code_mapping.csv`` are "Other", as in WILDS). Image ``i`` is ``images/rgb_img_{i}.png``
where ``i`` is the row number in ``rgb_metadata.csv`` (sequestered ``seq`` rows keep their numbers).

Camelyon (camelyon17_v1.0): hospitals 0, 3, 4 are ID (metadata ``split`` 0 train / 1 id_val),
hospital 1 is WILDS's OOD validation (unused), hospital 2 is ``ood_test``. WILDS ships no ID test
split for Camelyon; ``id_test`` is the WILDS ``id_val`` split (the same images as ``id_val``, as in
the WILDS leaderboard's ID numbers). Groups are hospitals.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .common import ImageFiles, check_first_file, parse_int, read_csv
from .registry import DatasetInfo, register_dataset
from .transforms import ImageSpec, camelyon_transform, fmow_transform

FMOW_CATEGORIES = (
    "airport", "airport_hangar", "airport_terminal", "amusement_park", "aquaculture",
    "archaeological_site", "barn", "border_checkpoint", "burial_site", "car_dealership",
    "construction_site", "crop_field", "dam", "debris_or_rubble", "educational_institution",
    "electric_substation", "factory_or_powerplant", "fire_station", "flooded_road", "fountain",
    "gas_station", "golf_course", "ground_transportation_station", "helipad", "hospital",
    "impoverished_settlement", "interchange", "lake_or_pond", "lighthouse", "military_facility",
    "multi-unit_residential", "nuclear_powerplant", "office_building", "oil_or_gas_facility", "park",
    "parking_lot_or_garage", "place_of_worship", "police_station", "port", "prison", "race_track",
    "railway_bridge", "recreational_facility", "road_bridge", "runway", "shipyard", "shopping_mall",
    "single-unit_residential", "smokestack", "solar_farm", "space_facility", "stadium", "storage_tank",
    "surface_mine", "swimming_pool", "toll_booth", "tower", "tunnel_opening", "waste_disposal",
    "water_treatment_facility", "wind_farm", "zoo",
)
FMOW_REGIONS = ("Asia", "Europe", "Africa", "Americas", "Oceania", "Other")
FMOW_OOD_REGION = "Africa"
FMOW_OOD_VAL_YEAR, FMOW_OOD_TEST_YEAR = 2013, 2016

FMOW_LAYOUT = """\
ROOT/rgb_metadata.csv          columns split (train/val/test/seq), category (62 FMoW names),
                               country_code (ISO alpha-3), timestamp (ISO 8601)
ROOT/country_code_mapping.csv  columns alpha-3, region
ROOT/images/rgb_img_{i}.png    i = row number in rgb_metadata.csv (0-based)
(ROOT is the WILDS fmow_v1.1 directory)"""

CAMELYON_LAYOUT = """\
ROOT/metadata.csv   columns patient, node, x_coord, y_coord, tumor (0/1), center (hospital 0-4),
                    split (0 train / 1 id_val; hospitals 1 and 2 are OOD whatever their split)
ROOT/patches/patient_{patient}_node_{node}/patch_patient_{patient}_node_{node}_x_{x_coord}_y_{y_coord}.png
(ROOT is the WILDS camelyon17_v1.0 directory; patient as written in the csv, e.g. 004)"""

FMOW_INFO = DatasetInfo(
    name="fmow", num_classes=len(FMOW_CATEGORIES), ood_splits=("ood_test",), epochs=5,
    metric="acc", layout=FMOW_LAYOUT,
)
CAMELYON_INFO = DatasetInfo(
    name="camelyon", num_classes=2, ood_splits=("ood_test",), epochs=3, metric="acc", layout=CAMELYON_LAYOUT,
)
CAMELYON_OOD_VAL_CENTER, CAMELYON_OOD_TEST_CENTER = 1, 2


def _year(stamp: str, path: Path) -> int:
    try:
        when = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FMOW_INFO.error(f"{path}: unreadable timestamp {stamp!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.year


def _masked_splits(masks: dict[str, np.ndarray], files: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                   transform_for: Callable[[bool], Callable], info: DatasetInfo) -> dict[str, ImageFiles]:
    """One ImageFiles per named boolean mask; ``transform_for(is_train)`` picks the split's transform."""
    out = {}
    for name, mask in masks.items():
        idx = np.flatnonzero(mask)
        check_first_file(list(files[idx]), name, info)
        out[name] = ImageFiles(list(files[idx]), labels[idx], groups[idx], transform_for(name == "train"), info)
    return out


@register_dataset(FMOW_INFO)
def build_fmow(root: Path, spec: ImageSpec, train_augment: bool) -> dict:
    meta = root / "rgb_metadata.csv"
    rows = read_csv(meta, ["split", "category", "country_code", "timestamp"], FMOW_INFO)
    mapping = root / "country_code_mapping.csv"
    code_to_region = {r["alpha-3"]: r["region"] for r in read_csv(mapping, ["alpha-3", "region"], FMOW_INFO)}
    cat_index = {c: i for i, c in enumerate(FMOW_CATEGORIES)}
    unknown = sorted({r["category"] for r in rows} - set(cat_index))
    if unknown:
        raise FMOW_INFO.error(f"{meta}: unknown categories {unknown[:5]}")
    regions = [code_to_region.get(r["country_code"], "Other") for r in rows]
    bad_regions = sorted(set(regions) - set(FMOW_REGIONS))
    if bad_regions:
        raise FMOW_INFO.error(f"{mapping}: regions {bad_regions} not among {FMOW_REGIONS}")

    split = np.array([r["split"] for r in rows])
    year = np.array([_year(r["timestamp"], meta) for r in rows])
    labels = np.array([cat_index[r["category"]] for r in rows])
    groups = np.array([FMOW_REGIONS.index(g) for g in regions])
    files = np.array([root / "images" / f"rgb_img_{i}.png" for i in range(len(rows))], dtype=object)
    id_period = year < FMOW_OOD_VAL_YEAR
    masks = {
        "train": (split == "train") & id_period,
        "id_val": (split == "val") & id_period,
        "id_test": (split == "test") & id_period,
        "ood_test": (split == "test") & (year >= FMOW_OOD_TEST_YEAR)
        & (groups == FMOW_REGIONS.index(FMOW_OOD_REGION)),
    }
    return _masked_splits(masks, files, labels, groups, lambda train: fmow_transform(spec, train_augment and train),
                          FMOW_INFO)


@register_dataset(CAMELYON_INFO)
def build_camelyon(root: Path, spec: ImageSpec, train_augment: bool) -> dict:
    meta = root / "metadata.csv"
    cols = ["patient", "node", "x_coord", "y_coord", "tumor", "center", "split"]
    rows = read_csv(meta, cols, CAMELYON_INFO)
    files = np.array([
        root / "patches" / f"patient_{r['patient']}_node_{r['node']}"
        / f"patch_patient_{r['patient']}_node_{r['node']}_x_{r['x_coord']}_y_{r['y_coord']}.png"
        for r in rows
    ], dtype=object)
    tumor = np.array([parse_int(r["tumor"], meta, "tumor", CAMELYON_INFO) for r in rows])
    center = np.array([parse_int(r["center"], meta, "center", CAMELYON_INFO) for r in rows])
    split = np.array([parse_int(r["split"], meta, "split", CAMELYON_INFO) for r in rows])
    if not set(np.unique(tumor).tolist()) <= {0, 1}:
        raise CAMELYON_INFO.error(f"{meta}: column 'tumor' must be 0/1")
    id_center = ~np.isin(center, [CAMELYON_OOD_VAL_CENTER, CAMELYON_OOD_TEST_CENTER])
    id_val = id_center & (split == 1)
    masks = {
        "train": id_center & (split == 0),
        "id_val": id_val,
        "id_test": id_val,
        "ood_test": center == CAMELYON_OOD_TEST_CENTER,
    }
    return _masked_splits(masks, files, tumor, center,
                          lambda train: camelyon_transform(spec, train_augment and train), CAMELYON_INFO)
