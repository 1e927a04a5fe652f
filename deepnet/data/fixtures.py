"""Tiny fixture trees in each real benchmark's on-disk layout, for tests and smoke runs.

``make_fixture(name, root)`` writes random-noise images (deterministic per name) in exactly the
layout the loader for ``name`` reads, with ``n_per_class`` (or a small multiple, where a loader
holds out ``id_val`` or the layout has decoy rows) images per class in every split, and returns the
directory to pass to ``build_splits`` as the data root. The FMoW and Camelyon trees are also
complete WILDS data directories (with the ``RELEASE_v*.txt`` file): the ``wilds`` package's dataset
classes read them, which is how the tests compare our splits with WILDS's. The offline benchmarks
need no fixture.
"""
from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from common.registry import Registry

FixtureWriter = Callable[[Path, int, int, np.random.Generator], None]
FIXTURES: Registry[FixtureWriter] = Registry("dataset fixture")


def make_fixture(name: str, root: str | Path, n_per_class: int = 2, image_size: int = 16) -> Path:
    """Write a fixture tree for dataset ``name`` under ``root/name`` and return that directory."""
    if n_per_class < 1 or image_size < 1:
        raise ValueError("n_per_class and image_size must be positive")
    writer = FIXTURES.get(name)
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    seed = sum(name.encode())
    writer(out, n_per_class, image_size, np.random.default_rng(seed))
    return out


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _write_image(path: Path, rng: np.random.Generator, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_noise(rng, size)).save(path)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@FIXTURES.register("waterbirds")
def _waterbirds(out: Path, n: int, size: int, rng: np.random.Generator) -> None:
    rows = []
    for split in (0, 1, 2):
        for y in (0, 1):
            for place in (0, 1):
                # train is spuriously correlated (more majority-group images), val/test balanced
                count = n * (2 if split == 0 and y == place else 1)
                for k in range(count):
                    rel = f"{y:03d}.class{y}/s{split}_p{place}_{k}.jpg"
                    _write_image(out / rel, rng, size)
                    rows.append([len(rows) + 1, rel, y, split, place, f"place{place}/{k}.jpg"])
    _write_csv(out / "metadata.csv", ["img_id", "img_filename", "y", "split", "place", "place_filename"], rows)


@FIXTURES.register("fmow")
def _fmow(out: Path, n: int, size: int, rng: np.random.Generator) -> None:
    from .wilds import FMOW_CATEGORIES

    countries = [["USA", "Americas"], ["FRA", "Europe"], ["KEN", "Africa"], ["CHN", "Asia"]]
    _write_csv(out / "country_code_mapping.csv", ["alpha-3", "region"], countries)
    # (split, timestamp, country): ID train/val/test, OOD-val period, OOD test in Africa and
    # elsewhere, sequestered rows, then rows on the period boundaries that no split loads (train
    # at the start of the OOD-val period, test at its end); only the first three, the unmapped
    # train row and "test Africa 2016+" are loaded
    kinds = [
        ("train", "2010-05-01T10:00:00Z", "USA"), ("val", "2011-05-01T10:00:00Z", "FRA"),
        ("test", "2012-12-31T23:59:59Z", "CHN"), ("val", "2014-05-01T10:00:00Z", "USA"),
        ("test", "2016-01-01T00:00:00Z", "KEN"), ("test", "2017-03-01T10:00:00Z", "USA"),
        ("seq", "2016-06-01T10:00:00Z", "KEN"), ("train", "2009-01-01T00:00:00Z", "ZZZ"),
        ("train", "2013-01-01T00:00:00Z", "FRA"), ("test", "2015-12-31T23:59:59Z", "KEN"),
    ]
    rows = []
    for split, stamp, country in kinds:
        for category in FMOW_CATEGORIES:
            for _ in range(n):
                _write_image(out / "images" / f"rgb_img_{len(rows)}.png", rng, size)
                rows.append([split, f"img_{len(rows)}.jpg", category, country, stamp])
    _write_csv(out / "rgb_metadata.csv", ["split", "img_filename", "category", "country_code", "timestamp"], rows)
    (out / "RELEASE_v1.1.txt").write_text("fixture in the WILDS fmow_v1.1 layout\n")


@FIXTURES.register("camelyon")
def _camelyon(out: Path, n: int, size: int, rng: np.random.Generator) -> None:
    # (center, split): ID hospitals 0/3/4 train and id_val, OOD-val hospital 1 (with either split
    # value: WILDS assigns by hospital), OOD-test hospital 2
    kinds = [(0, 0), (3, 0), (4, 1), (1, 0), (2, 0), (2, 1), (1, 1)]
    rows = []
    for center, split in kinds:
        for tumor in (0, 1):
            for k in range(n):
                patient, node, x, y = f"{10 * center + tumor:03d}", k % 2, 32 * k, 32 * split
                rel = f"patches/patient_{patient}_node_{node}/patch_patient_{patient}_node_{node}_x_{x}_y_{y}.png"
                _write_image(out / rel, rng, size)
                rows.append([len(rows), patient, node, x, y, tumor, 2 * center + node, center, split])
    _write_csv(out / "metadata.csv",
               ["", "patient", "node", "x_coord", "y_coord", "tumor", "slide", "center", "split"], rows)
    (out / "RELEASE_v1.0.txt").write_text("fixture in the WILDS camelyon17_v1.0 layout\n")


@FIXTURES.register("cifar10")
def _cifar10(out: Path, n: int, size: int, rng: np.random.Generator) -> None:
    """CIFAR/STL files have fixed image sizes (32 and 96 px), so ``size`` is not used here."""
    del size
    batches = out / "cifar-10-batches-py"
    batches.mkdir(exist_ok=True)
    labels = np.repeat(np.arange(10), n)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (len(labels), 3 * 32 * 32), dtype=np.uint8)
        with open(batches / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels.tolist(), b"batch_label": name.encode()}, f)
    np.save(out / "cifar10.1_v6_data.npy", rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8))
    np.save(out / "cifar10.1_v6_labels.npy", labels)
    stl = out / "stl10_binary"
    stl.mkdir(exist_ok=True)
    rng.integers(0, 256, len(labels) * 3 * 96 * 96, dtype=np.uint8).tofile(stl / "test_X.bin")
    (labels + 1).astype(np.uint8).tofile(stl / "test_y.bin")


@FIXTURES.register("domainnet")
def _domainnet(out: Path, n: int, size: int, rng: np.random.Generator) -> None:
    from .domainnet import NUM_CLASSES

    # clipart is written but unused (only real is OOD); train gets 3n per class for the id_val hold-out
    for domain, split, count in (("sketch", "train", 3 * n), ("sketch", "test", n), ("real", "test", n),
                                 ("clipart", "test", n)):
        lines = []
        for label in range(NUM_CLASSES):
            for k in range(count):
                rel = f"{domain}/class_{label:03d}/{domain}_{split}_{label:03d}_{k:06d}.jpg"
                _write_image(out / rel, rng, size)
                lines.append(f"{rel} {label}")
        (out / f"{domain}_{split}_mini.txt").write_text("\n".join(lines) + "\n")


@FIXTURES.register("living17")
def _living17(out: Path, n: int, size: int, rng: np.random.Generator) -> None:
    """A toy hierarchy with the BREEDS shape: entity -> living thing -> 3 levels -> 17 superclasses
    at depth 5, each with 2 children of 3 ImageNet leaves. Decoys check the selection rules: a
    depth-5 node under a non-living branch, one with only 3 leaves, and a shortcut edge that must
    not lower a superclass's (longest-path) depth."""
    from .living17 import LIVING_THING, ROOT_WNID

    edges = [(ROOT_WNID, LIVING_THING), (LIVING_THING, "n90000002"), ("n90000002", "n90000003"),
             ("n90000003", "n90000004"), (ROOT_WNID, "n80000001"), ("n80000001", "n80000002"),
             ("n80000002", "n80000003"), ("n80000003", "n80000004")]
    names, leaves = {ROOT_WNID: "entity", LIVING_THING: "living thing"}, []

    def superclass(wnid: str, parent: str, n_leaves: int) -> None:
        edges.append((parent, wnid))
        names[wnid] = f"super {wnid}"
        for c in range(2):
            child = f"{wnid}{c}"
            edges.append((wnid, child))
            for k in range(n_leaves if c == 0 else min(n_leaves, 3)):
                leaf = f"{child}{k}"
                edges.append((child, leaf))
                leaves.append(leaf)

    for s in range(17):
        superclass(f"n91{s:03d}", "n90000004", 3)
    edges.append((LIVING_THING, "n91000"))  # shortcut: n91000 stays at depth 5 (longest path)
    superclass("n92000", "n90000004", 0)    # only 3 leaves (all under its second child)
    superclass("n93000", "n80000004", 3)    # depth 5 but not a living thing
    info = out / "breeds"
    info.mkdir(exist_ok=True)
    (info / "dataset_class_info.json").write_text(json.dumps([[i, w, f"class {w}"] for i, w in enumerate(leaves)]))
    (info / "class_hierarchy.txt").write_text("".join(f"{p} {c}\n" for p, c in edges))
    (info / "node_names.txt").write_text("".join(f"{w}\t{name}\n" for w, name in names.items()))
    for split in ("train", "val"):
        for leaf in leaves:
            for k in range(n):
                _write_image(out / split / leaf / f"{leaf}_{k}.JPEG", rng, size)
